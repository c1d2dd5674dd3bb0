"""R single-run CL methods of one class as one method over a :class:`StackedMLP`.

Every method here is elementwise in the weights, so replica ``r``'s formula on its slice is its
own run's formula: the formulas of ``methods/formulas.py`` are called on the stacked targets with
each numeric hyperparameter as a ``[R, 1, 1]`` tensor (one value per replica, broadcast over a
weight ``[R, out, in]`` and a bias ``[R, 1, out]``). The settings that change what is computed
(which ingredients, modes, estimators, sample counts) must agree within a group. State is kept
stacked under the single method's buffer names and sliced back per replica for its checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from cl_attractors.errors import ConfigError
from cl_attractors.methods import formulas
from cl_attractors.methods.base import CLMethod, Vanilla
from cl_attractors.methods.ewc import EWC
from cl_attractors.methods.formulas import Dip
from cl_attractors.methods.kernels import Kernel, compile_wanted
from cl_attractors.methods.mas import MAS
from cl_attractors.methods.penalty import QuadraticPenalty
from cl_attractors.methods.si import SI
from cl_attractors.methods.sticky import StickyGradient
from cl_attractors.methods.sticky_steps import algorithm1, decoupled_l1, gated_update
from cl_attractors.replicas.importance import fisher_diagonals, mas_importances
from cl_attractors.replicas.method_base import ReplicaMasks, ReplicaMethod, ReplicaSampler
from cl_attractors.replicas.stacked import StackedMLP


class ReplicaSticky(ReplicaMethod):
    """:class:`StickyGradient` (Algorithm 1 and its variants) per replica: the method's own pure
    steps (``sticky_steps.algorithm1``, ``gated_update``, ``decoupled_l1``) with ``a1, lam, gamma,
    f_min, zeta`` per replica. The smart init ran in each replica's own network. The gating
    statistics (TensorBoard only in a single run) are not sampled."""

    structure = (*ReplicaMethod.structure, "switches")

    def __init__(self, methods: Sequence[CLMethod], net: StackedMLP) -> None:
        super().__init__(methods, net)
        sticky = [m for m in methods if isinstance(m, StickyGradient)]
        self.switches, self.gate_update = sticky[0].switches, sticky[0].gate_update
        self.l1_pre = any(m.zeta_pre for m in sticky)
        self.l1_post = any(m.zeta_post for m in sticky)
        for name in ("a1", "lam", "gamma", "f_min"):
            self.phi(name, [getattr(m.dip, name) for m in sticky])
        self.phi("zeta_pre", [m.zeta_pre for m in sticky])
        self.zeta_post = [m.zeta_post for m in sticky]
        self._step = 0
        if self.gate_update:
            self.stacked_state("_old", persistent=False)
        # the single run's compile setting: its pure steps fused by torch.compile (one pass per
        # stacked tensor), else run as they are
        fuse = compile_wanted(sticky[0].compile_mode, self.targets)
        self._algorithm1 = Kernel(algorithm1, algorithm1, fuse)
        self._gated_update = Kernel(gated_update, gated_update, fuse)
        self._decoupled_l1 = Kernel(decoupled_l1, decoupled_l1, fuse)

    def dip(self) -> Dip:
        """f's parameters, one per replica (read afresh: moving the module replaces the buffers)."""
        return Dip(self.hyper("a1"), self.hyper("lam"), self.hyper("gamma"), self.hyper("f_min"))

    @torch.no_grad()
    def on_before_optimizer_step(self) -> None:
        self._step += 1
        if self.gate_update:  # the gate acts on the update, after the step; L1 may sit in g
            torch._foreach_copy_(self.stacked_state("_old"), [p.detach() for p in self.targets])
        pre_dip = self.dip() if self.switches.sticky and not self.gate_update else None
        if self.l1_pre or pre_dip is not None:
            grads = [p.grad for p in self.targets]
            self._algorithm1(grads, self.targets, self.hyper("zeta_pre") if self.l1_pre else 0.0, pre_dip)

    @torch.no_grad()
    def on_after_optimizer_step(self, lr: float) -> None:
        if not self.gate_update and not self.l1_post:
            return
        lr_zeta: Any = 0.0
        if self.l1_post:
            lr_zeta = self.per_replica([lr * z for z in self.zeta_post])
        lr_zetas = [lr_zeta] * len(self.targets)
        if self.gate_update:
            self._gated_update(self.targets, self.stacked_state("_old"), lr_zetas, self.dip())
        else:
            self._decoupled_l1(self.targets, lr_zetas, self.dip() if self.switches.sticky else None)


class ReplicaPenalty(ReplicaMethod):
    """:class:`QuadraticPenalty` (EWC, MAS) per replica: the O(1) pull with ``scale`` per replica,
    the importance of each replica from its own samples in one batched pass, then the
    consolidation (separate or online, ``decay`` per replica)."""

    structure = (*ReplicaMethod.structure, "mode")

    def __init__(self, methods: Sequence[CLMethod], net: StackedMLP) -> None:
        super().__init__(methods, net)
        penalties = [m for m in methods if isinstance(m, QuadraticPenalty)]
        self.weight_name, self.mode = penalties[0].weight_name, penalties[0].mode
        self.phi("scale", [m.scale for m in penalties])
        self.phi("decay", [m.decay for m in penalties])
        self.net = [net]  # a list: not a submodule of the method
        self.singles = penalties
        self.stacked_state(self.weight_name)
        self.stacked_state("anchor_sum")
        self.tasks_consolidated = 0

    @torch.no_grad()
    def on_before_optimizer_step(self) -> None:
        if self.tasks_consolidated > 0:
            self.pull()

    def pull(self) -> None:
        """``g += quadratic_pull_grad(theta, anchor_sum, weight_sum, scale)`` on every target, in
        ``formulas.pull_``'s order of operations (``g + scale weight theta - scale anchor``), so a
        replica rounds as its single run does."""
        scale = self.hyper("scale")
        sums = zip(self.stacked_state(self.weight_name), self.stacked_state("anchor_sum"))
        for p, (weight, anchor) in zip(self.targets, sums):
            assert p.grad is not None
            p.grad.addcmul_(scale * weight, p).addcmul_(anchor, -scale)

    def on_task_end(self, task: int, sample: ReplicaSampler, masks: ReplicaMasks) -> None:
        new = self.importance(task, sample, masks)
        with torch.no_grad():
            params = [p.detach() for p in self.targets]
            weights, anchors = self.stacked_state(self.weight_name), self.stacked_state("anchor_sum")
            if self.mode == "online":
                for weight, anchor, imp, w in zip(weights, anchors, new, params):
                    weight.mul_(self.hyper("decay")).add_(imp)
                    anchor.copy_(weight * w)
            else:
                torch._foreach_add_(weights, new)
                torch._foreach_addcmul_(anchors, new, params)
        self.tasks_consolidated += 1

    def importance(self, task: int, sample: ReplicaSampler, masks: ReplicaMasks) -> list[Tensor]:
        """Each replica's importance for ``task``, on the outputs its training counted (``masks``)."""
        raise NotImplementedError

    def draw(self, task: int, sample: ReplicaSampler, n: int, seeds: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Each replica's ``n`` examples, drawn as its own run draws them, stacked ``[R, n, ...]``."""
        drawn = [sample(r, task, n, torch.Generator().manual_seed(s + task)) for r, s in enumerate(seeds)]
        return torch.stack([x for x, _ in drawn]), torch.stack([y for _, y in drawn])

    def selected(self, importances: list[Tensor]) -> list[Tensor]:
        return [importances[i] for i in self.target_index]


class ReplicaEWC(ReplicaPenalty):
    """:class:`EWC` per replica (``lam``, ``gamma_online`` per replica; its seed per replica)."""

    structure = (*ReplicaPenalty.structure, "fisher", "fisher_samples")

    def importance(self, task: int, sample: ReplicaSampler, masks: ReplicaMasks) -> list[Tensor]:
        singles = [m for m in self.singles if isinstance(m, EWC)]
        x, y = self.draw(task, sample, singles[0].fisher_samples, [m.seed for m in singles])
        return self.selected(fisher_diagonals(self.net[0], x, y, singles[0].fisher, masks=masks(task, task)))


class ReplicaMAS(ReplicaPenalty):
    """:class:`MAS` per replica (``lam`` per replica; its seed per replica)."""

    structure = (*ReplicaPenalty.structure, "samples")

    def importance(self, task: int, sample: ReplicaSampler, masks: ReplicaMasks) -> list[Tensor]:
        singles = [m for m in self.singles if isinstance(m, MAS)]
        x, _ = self.draw(task, sample, singles[0].samples, [m.seed for m in singles])
        return self.selected(mas_importances(self.net[0], x, masks(task, task)))


class ReplicaSI(ReplicaPenalty):
    """:class:`SI` per replica (``c``, ``xi`` per replica): the path integral of each replica's
    own gradient and steps (``formulas.si_path_`` on the stacked tensors), then the pull."""

    def __init__(self, methods: Sequence[CLMethod], net: StackedMLP) -> None:
        super().__init__(methods, net)
        self.phi("xi", [m.xi for m in methods if isinstance(m, SI)])
        self.stacked_state("omega")
        self.stacked_state("prev_grad")
        with torch.no_grad():
            torch._foreach_copy_(self.stacked_state("task_start"), [p.detach() for p in self.targets])

    @torch.no_grad()
    def on_before_optimizer_step(self) -> None:
        grads = [p.grad for p in self.targets]
        omega, prev = self.stacked_state("omega"), self.stacked_state("prev_grad")
        formulas.si_path_(grads, self.targets, prev, omega)  # type: ignore[arg-type]
        if self.tasks_consolidated > 0:
            self.pull()

    @torch.no_grad()
    def importance(self, task: int, sample: ReplicaSampler, masks: ReplicaMasks) -> list[Tensor]:
        params = [p.detach() for p in self.targets]
        omega, starts = self.stacked_state("omega"), self.stacked_state("task_start")
        formulas.si_flush_(params, self.stacked_state("prev_grad"), omega)
        new = [formulas.si_importance(om, w - s, self.hyper("xi")) for om, w, s in zip(omega, params, starts)]
        torch._foreach_copy_(starts, params)
        torch._foreach_zero_(omega)
        return new


BATCHED: dict[type, type[ReplicaMethod]] = {
    Vanilla: ReplicaMethod,
    StickyGradient: ReplicaSticky,
    EWC: ReplicaEWC,
    MAS: ReplicaMAS,
    SI: ReplicaSI,
}
"""Each method class that runs batched, and its replica form (exact class: a subclass may add
behaviour the replica form does not have)."""


def replica_method(methods: Sequence[CLMethod], net: StackedMLP) -> ReplicaMethod:
    """The replica form of the group's methods, or a one-line refusal naming the method."""
    kinds = {type(m) for m in methods}
    if len(kinds) > 1:
        names = ", ".join(sorted(k.__name__ for k in kinds))
        raise ConfigError(f"model.method differs between the replicas of one group ({names}); use one method")
    kind = kinds.pop()
    check_batched(kind)
    return BATCHED[kind](methods, net)


def check_batched(kind: type) -> None:
    """Refuse a method class without a replica form (one line naming it)."""
    if kind not in BATCHED:
        allowed = ", ".join(k.__name__ for k in BATCHED)
        raise ConfigError(f"model.method={kind.__name__} is not allowed with replicas; use one of {allowed}")
