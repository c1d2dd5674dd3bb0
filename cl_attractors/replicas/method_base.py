"""The base of every method's replica form: R single-run methods of one class as one method over
a :class:`StackedMLP` (the no-op :class:`ReplicaMethod`; each numeric hyperparameter a ``[R, 1, 1]``
tensor, state kept stacked under the single method's buffer names and sliced back per replica for
its checkpoint). The forms of the methods themselves are in :mod:`cl_attractors.replicas.methods`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from cl_attractors.errors import ConfigError
from cl_attractors.methods.base import CLMethod
from cl_attractors.replicas.stacked import StackedLinear, StackedMLP

ReplicaSampler = Callable[[int, int, int, torch.Generator], tuple[Tensor, Tensor]]
"""``(replica, task, n, generator) -> (x, y)``: ``n`` training examples of a replica's task, on
the device."""
ReplicaMasks = Callable[[int, int], Tensor | None]
"""``(task, trained) -> masks``: bool ``[R, outputs]`` on the device, the outputs that count for
each replica's examples of ``task`` while ``trained`` is the newest task trained, as the group's
module masks them in training (its single run's ``MethodContext.output_mask``); None: all."""


class ReplicaMethod(nn.Module):
    """The no-op method (Vanilla) and the base of the others.

    Args:
        methods: the replicas' own methods, attached to their own networks (so their set-up, e.g.
            the smart init, has run exactly as in a single run).
        net: the stacked network built from those networks.
    """

    structure: tuple[str, ...] = ("params", "layers")
    """Attributes that must agree within a group (they change what is computed, not its values)."""

    def __init__(self, methods: Sequence[CLMethod], net: StackedMLP) -> None:
        super().__init__()
        first = methods[0]
        settings = [_settings(m, self.structure) for m in methods]
        for name in settings[0]:
            values = {repr(s[name]) for s in settings}
            if len(values) > 1:
                raise ConfigError(
                    f"method.{name} differs between the replicas of one group ({', '.join(sorted(values))}); "
                    "a group shares every setting but the numeric hyperparameters"
                )
        self.replicas = len(methods)
        self.single_shapes = [tuple(t.shape) for t in first.targets]
        self.target_index = _target_index(net, first)
        self.targets = [net.stacked_parameters()[i] for i in self.target_index]
        self._phi: dict[str, list[float]] = {}
        self._phi_tensors: dict[tuple[str, torch.dtype, torch.device], Tensor] = {}

    def phi(self, name: str, values: Sequence[float]) -> None:
        """Register a per-replica hyperparameter ``name``: one value per replica, kept as the
        single methods hold it (a Python float), so a float64 group rounds it as its runs do."""
        self._phi[name] = [float(v) for v in values]

    def hyper(self, name: str) -> Any:
        """The ``[R, 1, 1]`` tensor of a hyperparameter in the targets' dtype and device, made once
        per dtype and device (typed loosely: formulas take float | Tensor)."""
        target = self.targets[0]
        key = (name, target.dtype, target.device)
        if key not in self._phi_tensors:
            self._phi_tensors[key] = self.per_replica(self._phi[name])
        return self._phi_tensors[key]

    def per_replica(self, values: Sequence[float]) -> Tensor:
        """``values`` (one per replica) as a ``[R, 1, 1]`` tensor in the targets' dtype and device."""
        target = self.targets[0]
        return torch.tensor(list(values), dtype=target.dtype, device=target.device).view(-1, 1, 1)

    def stacked_state(self, name: str, persistent: bool = True) -> list[Tensor]:
        """Per-target stacked buffers ``<name>0, <name>1, ...`` (allocated as zeros shaped like the
        targets on first use; read afresh on every call, as moving the module replaces buffers)."""
        if f"{name}0" not in self._buffers:
            for i, p in enumerate(self.targets):
                self.register_buffer(f"{name}{i}", torch.zeros_like(p.detach()), persistent=persistent)
        return [t for t in (self._buffers[f"{name}{i}"] for i in range(len(self.targets))) if t is not None]

    # ---- hooks: each replica's formula on its slice -------------------------------------------
    def on_task_start(self, task: int) -> None:
        """Training on ``task`` begins (the optimizer state was just cleared)."""

    def on_before_optimizer_step(self) -> None:
        """After backward: edit the stacked ``p.grad`` in place."""

    def on_after_optimizer_step(self, lr: float) -> None:
        """After the optimizer step (``lr``: the learning rate of the step)."""

    def on_task_end(self, task: int, sample: ReplicaSampler, masks: ReplicaMasks) -> None:
        """After training ``task`` and evaluating."""

    # ---- per-replica state (the single method's names) -------------------------------------------
    def replica_state(self, r: int, single: CLMethod) -> dict[str, Any]:
        """Replica ``r``'s method state as its own run's ``method.state_dict()``: its slice of each
        stacked per-target buffer, the counters, the rest as the single method holds it."""
        state = single.state_dict()
        for key in state:
            stacked = self._buffers.get(key)
            if stacked is not None and stacked.shape[0] == self.replicas and key[-1].isdigit():
                state[key] = stacked[r].detach().reshape(self.single_shapes[int(_index(key))]).cpu().clone()
        if "_extra_state" in state:
            state["_extra_state"] = {name: getattr(self, name) for name in single.counters}
        return state

    @torch.no_grad()
    def load_replica(self, r: int, state: dict[str, Any]) -> None:
        """Set replica ``r``'s state from its run's ``method.state_dict()`` (a resume)."""
        for key, value in state.items():
            stacked = self._buffers.get(key)
            if stacked is not None and key[-1].isdigit() and stacked.shape[0] == self.replicas:
                stacked[r].copy_(value.reshape(stacked.shape[1:]))
            elif key == "_extra_state":
                for name, count in value.items():
                    setattr(self, name, count)


def _settings(method: CLMethod, names: Sequence[str]) -> dict[str, Any]:
    """The method's structural settings, a dataclass of them (``switches``) field by field."""
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(method, name)
        is_record = dataclasses.is_dataclass(value) and not isinstance(value, type)
        out |= dataclasses.asdict(value) if is_record else {name: value}
    return out


def _index(key: str) -> str:
    digits = ""
    while key and key[-1].isdigit():
        digits, key = key[-1] + digits, key[:-1]
    return digits


def _target_index(net: StackedMLP, method: CLMethod) -> list[int]:
    """Positions in ``net.stacked_parameters()`` of the targets ``method`` selected in its network."""
    linears: list[StackedLinear] = net.linears()
    chosen = linears if method.layers is None else [linears[i] for i in method.layers]
    wanted = {id(p) for m in chosen for p in (m.weight, m.bias) if p is not None}
    if method.params == "weights":
        wanted = {id(m.weight) for m in chosen}
    return [i for i, p in enumerate(net.stacked_parameters()) if id(p) in wanted]
