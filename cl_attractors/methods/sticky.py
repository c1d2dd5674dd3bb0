"""Sticky gradient (the paper's Algorithm 1) as a method: a weight-dependent plasticity with an
attractor, its arguments grouped (φ, switches, implementation) and checked, its state and hooks.

The step itself, and its variants after Adam's step, are pure functions in
:mod:`cl_attractors.methods.sticky_steps` (with the equations); this module decides which of
them run, builds their kernels (fused or in place, ``kernels.Kernel``) and keeps the statistics.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from cl_attractors.errors import require, require_finite
from cl_attractors.methods.base import CLMethod, MethodContext, ParamSelection
from cl_attractors.methods.formulas import Dip, Plasticity, Scalar
from cl_attractors.methods.kernels import Compile, Kernel, check_compile, compile_wanted
from cl_attractors.methods.sticky_steps import (
    algorithm1,
    algorithm1_,
    decoupled_l1,
    decoupled_l1_,
    gated_update,
    gated_update_,
    grad_stats,
    update_stats,
)

ApplyTo = Literal["gradient", "update"]


# ---- the method's arguments, grouped -------------------------------------------------------------
@dataclass(frozen=True)
class Phi:
    """φ, the meta-learned values (Table 1): f's dip ``(a1, lam, gamma, f_min)``, L1's ``zeta``,
    the smart init ``N(mu, sigma^2)``."""

    a1: float
    mu: float
    sigma: float
    gamma: float
    zeta: float
    lam: float
    f_min: float


@dataclass(frozen=True)
class Switches:
    """Which ingredients run, and where (the ablations of Fig. 3 and the decoupled variants)."""

    sticky: bool
    l1: bool
    smart_init: bool
    init_params: ParamSelection
    apply_to: ApplyTo
    l1_apply_to: ApplyTo


class StickyGradient(CLMethod):
    """Algorithm 1: ``g = grad(L + zeta |theta|)``, scaled by ``f(theta)`` where it points away from a1.

    Statistics (logged per task): ``dip_fraction`` (targets with ``|w - a1| < 1/sqrt(gamma)`` at
    task end), and, sampled every ``stats_every`` steps with device-side counters (no host sync),
    ``gated_fraction`` (non-zero components whose gradient/update pointed away, so f applied) and
    ``mean_f`` (mean f over those components).

    Args (three groups; flat in YAML):
        φ (:class:`Phi`): ``a1`` attractor (centre of the dip of f); ``mu``, ``sigma``: the smart
            init's mean and standard deviation; ``gamma``: width parameter of the dip; ``zeta``:
            L1 strength; ``lam``: plateau of f (the multiplier far from a1); ``f_min``: floor of f
            (0 = the paper).
        switches (:class:`Switches`): ``sticky`` (the gate), ``l1`` (the L1 term), ``smart_init``
            (targets drawn from ``N(mu, sigma^2)`` with the global RNG at attach), each one
            ingredient of Fig. 3's 8-way ablation; ``init_params``: ``"all"`` or ``"weights"``,
            what the smart init touches; ``apply_to``: ``"gradient"`` (Algorithm 1: before Adam)
            or ``"update"`` (gate Adam's step by its own direction); ``l1_apply_to``:
            ``"gradient"`` (inside g) or ``"update"`` (decoupled, after the step, gated).
        implementation: ``stats_every`` (sample the statistics every this many steps);
            ``compile`` (``true``: fuse the step with ``torch.compile``; ``false``: the in-place
            fast form; ``"auto"``: compile when the targets are large, ``kernels.compile_wanted``);
            ``params`` and ``layers`` (which parameters: see :class:`CLMethod`).
    """

    counters = ("_step",)
    hyperparameters = (*Phi.__dataclass_fields__, "sticky", "l1", "smart_init", "apply_to", "l1_apply_to")
    gate_stats: Tensor  # a buffer: [sampled components, gated components, sum of f over gated ones]

    def __init__(
        self,
        a1: float,
        mu: float,
        sigma: float,
        gamma: float,
        zeta: float,
        lam: float,
        sticky: bool,
        l1: bool,
        smart_init: bool,
        init_params: ParamSelection = "all",
        f_min: float = 0.0,
        apply_to: ApplyTo = "gradient",
        l1_apply_to: ApplyTo = "gradient",
        stats_every: int = 50,
        compile: Compile = "auto",
        params: ParamSelection = "all",
        layers: list[int] | None = None,
    ) -> None:
        super().__init__(params=params, layers=layers)
        self.phi = Phi(a1, mu, sigma, gamma, zeta, lam, f_min)
        self.switches = Switches(sticky, l1, smart_init, init_params, apply_to, l1_apply_to)
        check_arguments(self.phi, self.switches)
        require(stats_every >= 1, "method.stats_every", stats_every, "an integer >= 1")
        check_compile(compile)
        self.stats_every, self.compile_mode = stats_every, compile
        # what runs where, derived once from the switches
        self.gate_update = sticky and apply_to == "update"
        self.zeta_pre = zeta if l1 and l1_apply_to == "gradient" else 0.0
        self.zeta_post = zeta if l1 and l1_apply_to == "update" else 0.0
        self.use_plasticity(Dip(a1=a1, lam=lam, gamma=gamma, f_min=f_min))
        self._step = 0

    def use_plasticity(self, dip: Plasticity) -> None:
        """The f the gate uses (a subclass gives a richer one here, before the state is set up)."""
        self.dip = dip
        self.pre_dip = dip if self.switches.sticky and not self.gate_update else None  # Algorithm 1's gate

    # ---- state ------------------------------------------------------------------------------
    def setup_state(self, targets: list[Tensor]) -> None:
        if self.switches.smart_init:
            with torch.no_grad():
                for p in targets:
                    if self.switches.init_params == "all" or p.dim() > 1:  # weights: the 2-D targets
                        p.normal_(self.phi.mu, self.phi.sigma)
        names = ["s", "f", "u"] if self.switches.sticky or self.switches.l1 else []
        names += ["old"] if self.gate_update else []
        for i, p in enumerate(targets):
            for name in names:
                self.register_buffer(f"_{name}{i}", torch.zeros_like(p), persistent=False)
        self.register_buffer("gate_stats", torch.zeros(3, dtype=torch.float64))
        fuse = compile_wanted(self.compile_mode, targets)
        post_dip = self.dip if self.switches.sticky else None
        pre = functools.partial(algorithm1, zeta=self.zeta_pre, dip=self.pre_dip)
        self._grad_kernel = Kernel(pre, self._algorithm1_fast, fuse)
        after = functools.partial(gated_update, dip=self.dip)
        self._update_kernel = Kernel(after, self._gated_update_fast, fuse)
        decoupled = functools.partial(decoupled_l1, dip=post_dip)
        self._l1_kernel = Kernel(decoupled, self._decoupled_l1_fast, fuse)
        stats = functools.partial(grad_stats, zeta=self.zeta_pre, dip=self.dip)
        self._grad_stats = Kernel(stats, stats, fuse)
        stats_after = functools.partial(update_stats, dip=self.dip)
        self._update_stats = Kernel(stats_after, stats_after, fuse)

    def _scratch(self, name: str) -> list[Tensor]:
        return self.per_target(f"_{name}")

    def _algorithm1_fast(self, grads: list[Tensor], params: list[Tensor]) -> None:
        algorithm1_(grads, params, self._scratch("s"), self._scratch("f"), self.zeta_pre, self.pre_dip)

    def _usf(self) -> list[list[Tensor]]:
        return [list(t) for t in zip(self._scratch("u"), self._scratch("s"), self._scratch("f"))]

    def _gated_update_fast(
        self, params: list[Tensor], olds: list[Tensor], lr_zetas: Sequence[Scalar]
    ) -> None:
        gated_update_(params, olds, lr_zetas, self.dip, self._usf())

    def _decoupled_l1_fast(self, params: list[Tensor], lr_zetas: Sequence[Scalar]) -> None:
        decoupled_l1_(params, lr_zetas, self.dip if self.switches.sticky else None, self._usf())

    # ---- hooks ------------------------------------------------------------------------------
    @torch.no_grad()
    def on_before_optimizer_step(self, ctx: MethodContext, optimizer: torch.optim.Optimizer) -> None:
        """Algorithm 1 on ``p.grad`` (or, gating updates, remember the weights before the step)."""
        params = self.targets
        grads = [p.grad for p in params]
        self._step += 1
        if self.gate_update:
            torch._foreach_copy_(self._scratch("old"), params)
        elif self._sampled() and self.switches.sticky:
            self._add_stats(self._grad_stats(grads, params), params)
        if self.zeta_pre or self.pre_dip is not None:
            self._grad_kernel(grads, params)

    @torch.no_grad()
    def on_after_optimizer_step(self, ctx: MethodContext, optimizer: torch.optim.Optimizer) -> None:
        """The variants after Adam's step: the gated update, or the decoupled L1."""
        if not self.gate_update and not self.zeta_post:
            return
        lr_zetas = self._lr_zetas(optimizer)
        params = self.targets
        if self.gate_update:
            if self._sampled():
                self._add_stats(self._update_stats(params, self._scratch("old"), lr_zetas), params)
            self._update_kernel(params, self._scratch("old"), lr_zetas)
        else:
            self._l1_kernel(params, lr_zetas)

    def on_task_end(self, ctx: MethodContext) -> dict[str, float]:
        with torch.no_grad():
            radius = 1.0 / math.sqrt(self.dip.gamma)
            inside = sum(((p - self.dip.a1).abs() < radius).sum() for p in self.targets)
            stats = {"dip_fraction": float(inside) / sum(p.numel() for p in self.targets)}
            sampled, gated, f_sum = self.gate_stats.tolist()
            if sampled > 0:
                stats["gated_fraction"] = gated / sampled
            if gated > 0:
                stats["mean_f"] = f_sum / gated
            self.gate_stats.zero_()
        return stats

    # ---- helpers ----------------------------------------------------------------------------
    def _sampled(self) -> bool:
        """Whether the step in progress (counted before the optimizer step) samples the stats."""
        return (self._step - 1) % self.stats_every == 0

    def _add_stats(self, gated_and_f_sum: Tensor, weights: list[Tensor]) -> None:
        """Device-side counters of the sampled step (no host sync)."""
        self.gate_stats[0] += sum(w.numel() for w in weights)
        self.gate_stats[1:] += gated_and_f_sum

    def _lr_zetas(self, optimizer: torch.optim.Optimizer) -> list[float]:
        lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
        return [float(lr_of[id(p)]) * self.zeta_post for p in self.targets]


def check_arguments(phi: Phi, switches: Switches) -> None:
    """One-line errors naming ``method.<field>`` for a φ or a switch out of range."""
    require_finite(vars(phi), "method")
    require(phi.lam >= 0, "method.lam", phi.lam, "a number >= 0")
    require(phi.gamma > 0, "method.gamma", phi.gamma, "a number > 0")
    require(phi.sigma > 0, "method.sigma", phi.sigma, "a number > 0")
    require(phi.zeta >= 0, "method.zeta", phi.zeta, "a number >= 0")
    require(0 <= phi.f_min <= phi.lam, "method.f_min", phi.f_min, f"a number in [0, lam={phi.lam}]")
    for name in ("apply_to", "l1_apply_to"):
        value = getattr(switches, name)
        require(value in ("gradient", "update"), f"method.{name}", value, "'gradient' or 'update'")
    init = switches.init_params
    require(init in ("all", "weights"), "method.init_params", init, "'all' or 'weights'")
