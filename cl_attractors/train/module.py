"""The LightningModule: an injected network, cross-entropy on the task's outputs, an injected
optimizer, and a CL method's hooks around every optimizer step."""

from __future__ import annotations

from typing import Protocol

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.plugins.precision import Precision
from torch import Tensor, nn

from cl_attractors.errors import require
from cl_attractors.methods.base import CLMethod, MethodContext, Vanilla
from cl_attractors.train.batches import Chunk
from cl_attractors.train.families import TaskFamily
from cl_attractors.train.protocols import reinitialise


class TaskSource(Protocol):
    """What the module needs of the datamodule: the family and examples of a task."""

    family: TaskFamily
    seed: int

    def sample(self, task: int, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]: ...

    def output_mask(self, task: int, trained: int, training: bool = False) -> Tensor | None: ...


class CLModule(pl.LightningModule):
    """A network trained on a task sequence, with a continual-learning method plugged in.

    Args:
        net: the network (``class_path``; the paper's 784-2000-10 MLP is configs/model/mlp.yaml).
        method: the CL method (``None`` = :class:`Vanilla`); ``training_step`` calls its ``loss``
            (an extra loss term), ``on_before_optimizer_step`` (edit ``p.grad`` in place) and
            ``on_after_optimizer_step`` (gate the update) around every optimizer step.
        optimizer: optimizer factory (LightningCLI ``class_path``/``init_args``); the paper uses
            Adam with lr 1e-4, whose state the task-sequence callback clears at every task.
        check_finite_every_n_steps: check the loss for NaN/inf every this many steps; 1 names the
            exact step (a host sync per step, free on CPU; raise it on GPUs).
    """

    def __init__(
        self,
        net: nn.Module,
        method: CLMethod | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        check_finite_every_n_steps: int = 1,
    ) -> None:
        super().__init__()
        every = check_finite_every_n_steps
        require(
            isinstance(every, int) and every >= 1,
            "model.check_finite_every_n_steps",
            every,
            "an integer >= 1",
        )
        self.net = net
        self.method = method if method is not None else Vanilla()
        self.method.attach(self.net)
        self.optimizer_factory = optimizer
        self.check_finite_every_n_steps = check_finite_every_n_steps
        self.context = MethodContext(self.net, self._sample, output_mask=self._training_mask)
        self.data: TaskSource | None = None
        self.counted: dict[tuple[int, int, bool], Tensor | None] = {}  # output_mask's, on the device
        self.masks: dict[tuple[int, int, bool], Tensor | None] = {}  # their complements (logits)
        self.input_plugin: Precision | None = None  # the trainer's, from setup: converts sampled inputs
        # the module steps the optimizer itself: the method's hooks sit between backward and step
        self.automatic_optimization = False

    @property
    def task(self) -> int:
        """The task in training (told by the task sequence)."""
        return self.context.task

    def set_task(self, task: int) -> None:
        """Train ``task`` from now on (the task sequence calls this; the method sees it in its context)."""
        self.context.task = task

    def reset_network(self, task: int) -> None:
        """A fresh network for ``task`` (``data.protocol: independent``), seeded by data.seed and
        the task (:func:`~cl_attractors.train.protocols.reinitialise`)."""
        reinitialise(self.net, getattr(self.data, "seed", 0), task)

    def setup(self, stage: str) -> None:
        # the method hooks see p.grad as backward leaves it, which a loss scaler would have scaled
        scaled = getattr(self.trainer.precision_plugin, "scaler", None) is not None
        precision = self.trainer.precision
        require(not scaled, "trainer.precision", precision, "32-true, bf16-mixed or 16-true (no loss scaler)")
        self.data = self.trainer.datamodule
        self.input_plugin = self.trainer.precision_plugin
        self.counted, self.masks = {}, {}

    def _sample(self, task: int, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        if self.data is None:
            raise RuntimeError("CLModule.setup has not run: no datamodule to sample from")
        batch = self.transfer_batch_to_device(self.data.sample(task, n, generator), self.device, 0)
        if self.input_plugin is not None:  # as Lightning's loops do (a bare module has no trainer)
            batch = self.input_plugin.convert_input(batch)
        return batch[0], batch[1]

    def output_mask(self, task: int, trained: int, training: bool) -> Tensor | None:
        """The outputs that count for ``task``'s examples while ``trained`` is the newest task
        trained (the datamodule's mask, on the device, made once); None: all of them."""
        key = (task, trained, training)
        if key not in self.counted:
            mask = self.data.output_mask(*key) if self.data is not None else None
            self.counted[key] = None if mask is None else mask.to(self.device)
        return self.counted[key]

    def _training_mask(self, task: int, trained: int) -> Tensor | None:
        """The method context's :data:`~cl_attractors.methods.base.MaskLookup`: the mask this
        module trains ``task``'s examples with once ``trained`` is the newest task trained."""
        return self.output_mask(task, trained, training=True)

    def logits(self, x: Tensor, task: int) -> Tensor:
        """The network's outputs for ``task``: those the family does not count are ``-inf``."""
        return self.mask_outputs(self.net(x), task)

    def mask_outputs(self, out: Tensor, task: int) -> Tensor:
        """``out`` (the network's outputs) with those the family does not count for ``task`` at ``-inf``."""
        key = (task, self.context.task, self.training)
        if key not in self.masks:
            mask = self.output_mask(*key)
            self.masks[key] = None if mask is None else ~mask
        hidden = self.masks[key]
        return out if hidden is None else out.masked_fill(hidden, -torch.inf)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())

    def training_step(self, chunk: Chunk, chunk_idx: int) -> Tensor:
        """One optimizer step per mini-batch of the chunk (Lightning's training batch: see
        :mod:`cl_attractors.train.data`)."""
        optimizer = self.optimizers(use_pl_optimizer=True)
        assert isinstance(optimizer, LightningOptimizer)  # configure_optimizers returns one
        for x, y in chunk:
            loss = self.step(x, y, optimizer)
        return loss

    def step(self, x: Tensor, y: Tensor, optimizer: LightningOptimizer) -> Tensor:
        """One optimizer step on the mini-batch ``(x, y)``, with the method's hooks around it."""
        ctx = self.context
        outputs = self.net(x)
        loss = F.cross_entropy(self.mask_outputs(outputs, ctx.task), y)
        extra = self.method.loss(ctx, x, y, outputs)
        if extra is not None:
            loss = loss + extra
        step = self.global_step  # optimizer steps taken so far
        if step % self.check_finite_every_n_steps == 0 and not torch.isfinite(loss):
            raise FloatingPointError(
                f"training diverged: loss is {loss.item()} at task {ctx.task}, "
                f"global step {step}; lower the learning rate or the method's strength"
            )
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self.method.on_before_optimizer_step(ctx, optimizer.optimizer)  # edits p.grad in place
        optimizer.step()
        self.method.on_after_optimizer_step(ctx, optimizer.optimizer)  # may gate the update
        if step % self.trainer.log_every_n_steps == 0:  # x-axis: optimizer steps taken before this one
            for logger in self.loggers:
                logger.log_metrics({"train/loss": float(loss.detach())}, step=step)
        return loss

    def validation_step(
        self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor]:
        """Correct predictions on a batch of task ``dataloader_idx`` (one loader per task)."""
        return self.count_correct(batch, dataloader_idx)

    def count_correct(self, batch: tuple[Tensor, Tensor], task: int) -> dict[str, Tensor]:
        x, y = batch
        return {"correct": (self.logits(x, task).argmax(1) == y).sum(), "count": y.new_tensor(len(y))}
