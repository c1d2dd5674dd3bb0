"""The LightningModule: an MLP, cross-entropy, an injected optimizer and a CL method's hooks."""

from __future__ import annotations

import itertools
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor, nn

from cl_attractors.errors import require
from cl_attractors.methods.base import CLMethod, Vanilla


def build_mlp(input_size: int, hidden_sizes: list[int], num_classes: int) -> nn.Sequential:
    """``Linear-ReLU`` blocks then a linear read-out, with PyTorch's default (Kaiming) init."""
    sizes = [input_size, *hidden_sizes]
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], num_classes))


class CLModule(pl.LightningModule):
    """MLP classifier trained on a task sequence, with a continual-learning method plugged in.

    Args:
        hidden_sizes: widths of the hidden ReLU layers (required; the paper's ``[2000]`` is in
            configs/model/mlp.yaml).
        input_size: number of input features.
        num_classes: number of output classes.
        method: the CL method (``None`` = :class:`Vanilla`); ``training_step`` calls its
            ``on_before_optimizer_step`` (edit ``p.grad`` in place) and ``on_after_optimizer_step``
            (gate the update) around every optimizer step.
        optimizer: optimizer factory (LightningCLI ``class_path``/``init_args``); the paper uses
            Adam with lr 1e-4, whose state the task-sequence callback clears at every task.
        check_finite_every_n_steps: check the loss for NaN/inf every this many steps; 1 names the
            exact step (a host sync per step, free on CPU; raise it on GPUs).
    """

    def __init__(
        self,
        hidden_sizes: list[int],
        input_size: int = 784,
        num_classes: int = 10,
        method: CLMethod | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        check_finite_every_n_steps: int = 1,
    ) -> None:
        super().__init__()
        for name, value in (
            ("input_size", input_size),
            ("num_classes", num_classes),
            ("check_finite_every_n_steps", check_finite_every_n_steps),
            *((f"hidden_sizes[{i}]", h) for i, h in enumerate(hidden_sizes)),
        ):
            require(isinstance(value, int) and value >= 1, f"model.{name}", value, "an integer >= 1")
        self.save_hyperparameters(ignore=["method", "optimizer"])
        self.net = build_mlp(input_size, list(hidden_sizes), num_classes)
        self.method = method if method is not None else Vanilla()
        self.method.attach(self.net)
        self.optimizer_factory = optimizer
        self.check_finite_every_n_steps = check_finite_every_n_steps
        self.current_task = 0  # told by the task sequence at every epoch start
        # the steps are written out (forward, backward, step, method hooks), several per
        # Lightning batch: Lightning's per-batch overhead is ~0.3 ms, 6-8% of a batch-50 step
        self.automatic_optimization = False

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def setup(self, stage: str) -> None:
        # the method hooks see p.grad as backward leaves it, which a loss scaler would have scaled
        scaled = getattr(self.trainer.precision_plugin, "scaler", None) is not None
        precision = self.trainer.precision
        require(not scaled, "trainer.precision", precision, "32-true, bf16-mixed or 16-true (no loss scaler)")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())

    def training_step(self, batch: list[tuple[Tensor, Tensor]], batch_idx: int) -> Tensor:
        """One optimizer step per mini-batch of the group (see ``data.steps_per_batch``), with the
        method's two per-step hooks around it."""
        optimizer = self.optimizers(use_pl_optimizer=True)
        assert isinstance(optimizer, LightningOptimizer)  # configure_optimizers returns one
        for x, y in batch:
            loss = F.cross_entropy(self.net(x), y)
            step = self.global_step  # optimizer steps taken so far
            if step % self.check_finite_every_n_steps == 0 and not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training diverged: loss is {loss.item()} at task {self.current_task}, "
                    f"global step {step}; lower the learning rate or the method's strength"
                )
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            self.method.on_before_optimizer_step(self, optimizer.optimizer)  # edits p.grad in place
            optimizer.step()
            self.method.on_after_optimizer_step(self, optimizer.optimizer)  # may gate the update
        # Lightning writes it every trainer.log_every_n_steps batches; "step" sets the x-axis to
        # optimizer steps (and keeps Lightning from adding an "epoch" curve)
        self.log_dict(
            {"train/loss": loss.detach(), "step": float(self.global_step)}, on_step=True, on_epoch=False
        )
        return loss

    def validation_step(
        self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor]:
        x, y = batch
        return {"correct": (self.net(x).argmax(1) == y).sum(), "count": y.new_tensor(len(y))}

    def batch_to_device(self, batch: Any) -> Any:
        """Move a batch to this module's device through Lightning's transfer hook."""
        return self.transfer_batch_to_device(batch, self.device, 0)
