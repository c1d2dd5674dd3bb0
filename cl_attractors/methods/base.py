"""Base class of continual-learning methods: every hook is a no-op.

A method is an ``nn.Module`` attached to the LightningModule, so its tensor state (anchors, Fisher
diagonals, importances) lives in buffers: Lightning moves them with the model and saves them in
every checkpoint. Methods act in gradient space: they edit ``p.grad`` in place between backward
and the optimizer step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, cast

import torch
from torch import Tensor, nn

from cl_attractors.errors import ConfigError, require

if TYPE_CHECKING:
    import lightning.pytorch as pl

ParamSelection = Literal["all", "weights"]


class CLMethod(nn.Module):
    """A continual-learning method plugged into training through hooks.

    Per-target state is registered as buffers ``<name><i>`` (one per target ``i``) and read back
    with :meth:`per_target`; integer attributes named in ``counters`` are checkpointed too.

    Args:
        params: which parameters the method acts on: ``"all"`` or ``"weights"`` (no biases).
        layers: indices of the linear layers it acts on (0 = first); ``None`` = every layer.
    """

    counters: tuple[str, ...] = ()

    def __init__(self, params: ParamSelection = "all", layers: list[int] | None = None) -> None:
        super().__init__()
        require(params in ("all", "weights"), "method.params", params, "'all' or 'weights'")
        require(
            layers is None or all(i >= 0 for i in layers), "method.layers", layers, "indices >= 0 or null"
        )
        self.params = params
        self.layers = layers
        self._targets: list[Tensor] = []

    @property
    def targets(self) -> list[Tensor]:
        """The parameters this method acts on (set by :meth:`attach`)."""
        return self._targets

    def attach(self, net: nn.Module) -> None:
        """Select the target parameters of ``net`` and allocate state; called once at construction."""
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        if self.layers is not None and max(self.layers, default=-1) >= len(linears):
            raise ConfigError(
                f"method.layers={self.layers} is not allowed; the model has {len(linears)} linear "
                f"layers (indices 0..{len(linears) - 1})"
            )
        chosen = linears if self.layers is None else [linears[i] for i in self.layers]
        self._targets = [
            p
            for layer in chosen
            for name, p in layer.named_parameters()
            if self.params == "all" or name == "weight"
        ]
        self.setup_state(self._targets)

    def setup_state(self, targets: list[Tensor]) -> None:
        """Allocate buffers sized like ``targets`` (override when the method has state)."""

    def per_target(self, name: str) -> list[Tensor]:
        """The buffers ``<name>0, <name>1, ...`` registered for each target, in target order."""
        return cast(list[Tensor], [self._buffers[f"{name}{i}"] for i in range(len(self._targets))])

    def get_extra_state(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.counters}

    def set_extra_state(self, state: dict[str, int]) -> None:
        for name in self.counters:
            setattr(self, name, state[name])

    # ---- hooks (no-ops) -------------------------------------------------------------------
    def on_task_start(self, module: pl.LightningModule, task: int) -> None:
        """Called when training on ``task`` begins, after the optimizer state was cleared."""

    def on_before_optimizer_step(self, module: pl.LightningModule, optimizer: torch.optim.Optimizer) -> None:
        """Called after backward, before the optimizer step: edit ``p.grad`` in place."""

    def on_after_optimizer_step(self, module: pl.LightningModule, optimizer: torch.optim.Optimizer) -> None:
        """Called right after the optimizer step: edit the update if the method gates updates."""

    def on_task_end(self, module: pl.LightningModule, task: int, datamodule: Any) -> dict[str, float]:
        """Called after training on ``task`` and evaluating; returns statistics to log."""
        return {}


class Vanilla(CLMethod):
    """Plain training: the control of the paper (PyTorch default init, no regularisation)."""
