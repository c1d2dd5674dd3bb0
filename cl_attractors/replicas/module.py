"""The LightningModule of a replica group: R runs as one stacked network, one optimizer, one method.

Each optimizer step is every replica's own step: the loss is the sum of the active replicas' mean
losses (each replica's gradient is its own run's), the method edits each replica's slice with its
own hyperparameters, and the optimizer (elementwise: Adam) is R optimizers. A replica whose loss
turns NaN or infinite is recorded as failed and leaves the sum; the others go on. Device handling
is Lightning's.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning.pytorch as pl
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor

from cl_attractors.errors import require
from cl_attractors.replicas.data import Batch, ReplicaData
from cl_attractors.replicas.methods import replica_method
from cl_attractors.replicas.stacked import StackedMLP, replica_losses
from cl_attractors.train.module import CLModule
from cl_attractors.train.protocols import reinitialise


class ReplicaModule(pl.LightningModule):
    """R single-run modules trained as one.

    Args:
        modules: each replica's own module as its single run builds it (network initialised from
            its seed, method attached); their optimizer settings must agree.
    """

    active: Tensor

    def __init__(self, modules: Sequence[CLModule]) -> None:
        super().__init__()
        self.replicas = len(modules)
        self.net = StackedMLP([m.net for m in modules])
        self.singles = [m.net for m in modules]  # (not submodules) re-drawn by reset_network
        self.method = replica_method([m.method for m in modules], self.net)
        self.optimizer_factory = modules[0].optimizer_factory
        self.check_finite_every_n_steps = modules[0].check_finite_every_n_steps
        self.register_buffer("active", torch.ones(self.replicas, dtype=torch.bool))
        self.failures: dict[int, str] = {}
        self.task = 0
        self.data: ReplicaData | None = None
        self.counted: dict[tuple[int, int, bool], Tensor | None] = {}  # output_masks', on the device
        self.masks: dict[tuple[int, int, bool], Tensor | None] = {}  # their complements (logits)
        self.resumed_optimizer: dict | None = None  # set by a group that resumes
        self.automatic_optimization = False

    def setup(self, stage: str) -> None:
        scaled = getattr(self.trainer.precision_plugin, "scaler", None) is not None
        precision = self.trainer.precision
        require(not scaled, "trainer.precision", precision, "32-true, bf16-mixed or 16-true (no loss scaler)")
        self.data = self.trainer.datamodule
        self.counted, self.masks = {}, {}

    @torch.no_grad()
    def reset_network(self, task: int) -> None:
        """A fresh network for ``task`` in every replica (``data.protocol: independent``), each
        drawn as its single run draws it (:func:`~cl_attractors.train.protocols.reinitialise`)."""
        assert self.data is not None
        dtype = self.net.stacked_parameters()[0].dtype  # a single run draws in its own precision
        for r, (net, dm) in enumerate(zip(self.singles, self.data.members)):
            reinitialise(net.to(dtype=dtype), dm.seed, task)
            self.net.load_replica(r, net.state_dict())

    def sample(self, replica: int, task: int, n: int, generator: torch.Generator) -> Batch:
        """Replica ``replica``'s ``n`` training examples of ``task``, on this module's device."""
        assert self.data is not None
        x, y = self.to_device(self.data.sample(replica, task, n, generator))
        return x, y

    def to_device(self, batch: Batch) -> Batch:
        """A batch on this module's device in its precision (as Lightning's loops hand batches over)."""
        x, y = self.trainer.precision_plugin.convert_input(
            self.transfer_batch_to_device(batch, self.device, 0)
        )
        return x, y

    def output_masks(self, task: int, trained: int, training: bool) -> Tensor | None:
        """``[R, outputs]``: the outputs that count for ``task`` in each replica while ``trained``
        is the newest task trained (the data's masks, on the device, made once); None: all."""
        key = (task, trained, training)
        if key not in self.counted:
            masks = self.data.output_masks(*key) if self.data is not None else None
            self.counted[key] = None if masks is None else masks.to(self.device)
        return self.counted[key]

    def training_masks(self, task: int, trained: int) -> Tensor | None:
        """The method's :data:`~cl_attractors.replicas.method_base.ReplicaMasks`: the masks this
        module trains ``task``'s examples with once ``trained`` is the newest task trained."""
        return self.output_masks(task, trained, training=True)

    def logits(self, x: Tensor, task: int) -> Tensor:
        """``[R, B, outputs]``; each replica's outputs that its family does not count are ``-inf``."""
        out = self.net(x)
        key = (task, self.task, self.training)
        if key not in self.masks:
            masks = self.output_masks(*key)
            self.masks[key] = None if masks is None else ~masks[:, None, :]
        hidden = self.masks[key]
        return out if hidden is None else out.masked_fill(hidden, -torch.inf)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())

    def training_step(self, chunk: list[Batch], chunk_idx: int) -> Tensor:
        optimizer = self.optimizers(use_pl_optimizer=True)
        assert isinstance(optimizer, LightningOptimizer)
        for x, y in chunk:
            loss = self.step(x, y, optimizer)
        return loss

    def step(self, x: Tensor, y: Tensor, optimizer: LightningOptimizer) -> Tensor:
        """One optimizer step of every replica on its own mini-batch ``x[r], y[r]``."""
        losses = replica_losses(self.logits(x, self.task), y)
        step = self.global_step
        if step % self.check_finite_every_n_steps == 0:
            self._check_finite(losses, step)
        loss = torch.where(self.active, losses, 0.0).sum()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self.method.on_before_optimizer_step()
        optimizer.step()
        self.method.on_after_optimizer_step(float(optimizer.optimizer.param_groups[0]["lr"]))
        if step % self.trainer.log_every_n_steps == 0:
            for logger in self.loggers:
                logger.log_metrics({"train/loss": float(loss.detach()) / self.replicas}, step=step)
        return loss

    def _check_finite(self, losses: Tensor, step: int) -> None:
        """Record each active replica whose loss is not finite as failed (one host sync)."""
        bad = ~torch.isfinite(losses.detach()) & self.active
        if bool(bad.any()):
            for r in bad.nonzero().flatten().tolist():
                self.failures[r] = (
                    f"training diverged: loss is {float(losses[r])} at task {self.task}, "
                    f"global step {step}; lower the learning rate or the method's strength"
                )
            self.active &= ~bad

    def drop(self, r: int) -> None:
        """Stop training replica ``r`` (a pruned trial): its loss leaves the sum, its outputs stop;
        its slot keeps its place in the stacked tensors until the group ends."""
        self.active[r] = False

    @torch.no_grad()
    def load_replica(self, r: int, state: dict[str, Tensor]) -> None:
        """Set replica ``r`` from its single run's checkpoint ``state_dict`` (network and method)."""
        self.net.load_replica(
            r, {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
        )
        method = {k.removeprefix("method."): v for k, v in state.items() if k.startswith("method.")}
        self.method.load_replica(r, method)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A group resumes from its runs' own checkpoints, loaded replica by replica
        (:meth:`load_replica`) before the fit; Lightning takes the loops from the first run's and
        the optimizer's state from :attr:`resumed_optimizer` (the runs' own, stacked)."""
        checkpoint["state_dict"] = self.state_dict()
        checkpoint["optimizer_states"] = [] if self.resumed_optimizer is None else [self.resumed_optimizer]

    @torch.no_grad()
    def count_correct(self, batch: Batch, task: int) -> Tensor:
        """Correct predictions of each replica on its own batch of ``task``: ``[R]``."""
        x, y = batch
        return (self.logits(x, task).argmax(-1) == y).sum(1)
