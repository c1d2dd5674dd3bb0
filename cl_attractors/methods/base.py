"""Base class of continual-learning methods (every hook a no-op) and what a method sees of a run.

A method is an ``nn.Module`` attached to the LightningModule, so its tensor state (anchors, Fisher
diagonals, importances) lives in buffers: Lightning moves them with the model and saves them in
every checkpoint. Methods act in gradient space: they edit ``p.grad`` in place between backward
and the optimizer step; a method that needs a loss term (distillation, replay) adds it through
:meth:`CLMethod.loss`. A method sees the run only through :class:`MethodContext`: no Lightning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal, cast

import torch
from torch import Tensor, nn

from cl_attractors.errors import ConfigError, require

ParamSelection = Literal["all", "weights"]
Sampler = Callable[[int, int, torch.Generator], tuple[Tensor, Tensor]]
"""``(task, n, generator) -> (inputs, labels)``: ``n`` training examples of a task, on the device."""
MaskLookup = Callable[[int, int], Tensor | None]
"""``(task, trained) -> mask``: bool ``[outputs]`` on the device, the outputs that count for
``task``'s examples while ``trained`` is the newest task trained, as the module masks them in
training (task-incremental: the task's head; class-incremental: every class seen); None: all."""


@dataclass(frozen=True)
class DataFacts:
    """What a method may check before training (:meth:`CLMethod.check_data`): the training
    examples of each task."""

    train_sizes: tuple[int, ...]


def every_output(task: int, trained: int) -> Tensor | None:
    """The mask lookup of a run whose family masks nothing: every output counts."""
    return None


@dataclass
class MethodContext:
    """What a method sees of the run: the network, the task in training, a way to draw examples,
    the outputs that count for a task.

    The LightningModule owns it and tells it the task (``task`` is the task being trained, or the
    one that just ended in ``on_task_end``). ``sample`` draws with the caller's generator, so the
    global RNG is untouched; the examples come on the network's device. ``output_mask`` is the
    family's per-task mask (:data:`MaskLookup`; a family that masks nothing: always None).
    """

    net: nn.Module
    sample: Sampler
    task: int = 0
    output_mask: MaskLookup = every_output
    _hidden: dict[int, Tensor | None] = field(default_factory=dict, repr=False)  # hidden_outputs'

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def hidden_outputs(self, tasks: Tensor, trained: int) -> Tensor | None:
        """``[n, outputs]`` bool: True where an output does not count for example ``i``, of task
        ``tasks[i]`` (any of ``0..trained``), while ``trained`` is the newest task trained; None
        when every output counts for every task."""
        if trained not in self._hidden:  # made once per task trained: replay asks every step
            masks = [self.output_mask(t, trained) for t in range(trained + 1)]
            given = [m for m in masks if m is not None]
            counted = [torch.ones_like(given[0]) if m is None else m for m in masks] if given else []
            self._hidden = {trained: ~torch.stack(counted) if counted else None}
        hidden = self._hidden[trained]
        return None if hidden is None else hidden[tasks]


class CLMethod(nn.Module):
    """A continual-learning method plugged into training through hooks.

    Per-target state is registered as buffers ``<name><i>`` (one per target ``i``) and read back
    with :meth:`per_target`; integer attributes named in ``counters`` are checkpointed too.

    Args:
        params: which parameters the method acts on: ``"all"`` or ``"weights"`` (no biases).
        layers: indices of the linear layers it acts on (0 = first); ``None`` = every layer.
    """

    counters: tuple[str, ...] = ()
    hyperparameters: ClassVar[tuple[str, ...]] = ()
    """The constructor arguments that define the method (its φ and switches, as opposed to how it
    is computed): a method's YAML gives every one (the paper's values live in configs/method/)."""

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

    def named_targets(self, net: nn.Module) -> dict[str, Tensor]:
        """The targets keyed by their names in ``net`` (for ``torch.func``)."""
        names = {id(p): n for n, p in net.named_parameters()}
        return {names[id(p)]: p for p in self._targets}

    def check_data(self, data: DataFacts) -> None:
        """Refuse, before training, a task sequence this method cannot serve (a one-line
        ConfigError); a check run once when the fit is set up, not a hook. Accepts all here."""

    # ---- hooks (no-ops); a method overrides at most three --------------------------------------
    def on_task_start(self, ctx: MethodContext) -> None:
        """Training on ``ctx.task`` begins (the optimizer state was just cleared)."""

    def loss(self, ctx: MethodContext, x: Tensor, y: Tensor, outputs: Tensor) -> Tensor | None:
        """A term added to the mini-batch's loss (LwF, replay), or None; called every step after the
        forward pass of ``x`` (``outputs``: every output of the network, the family's mask not
        applied; ``ctx.output_mask(ctx.task, ctx.task)`` says which ones the cross-entropy counts)."""
        return None

    def on_before_optimizer_step(self, ctx: MethodContext, optimizer: torch.optim.Optimizer) -> None:
        """After backward, before the optimizer step: edit ``p.grad`` in place."""

    def on_after_optimizer_step(self, ctx: MethodContext, optimizer: torch.optim.Optimizer) -> None:
        """Right after the optimizer step: edit the update if the method gates updates."""

    def on_task_end(self, ctx: MethodContext) -> dict[str, float]:
        """After training on ``ctx.task`` and evaluating every task; returns statistics to log."""
        return {}


HOOKS = ("on_task_start", "loss", "on_before_optimizer_step", "on_after_optimizer_step", "on_task_end")
"""The hooks of :class:`CLMethod`; a method overrides at most three (a contract test counts)."""


class Vanilla(CLMethod):
    """Plain training: the control of the paper (PyTorch default init, no regularisation)."""
