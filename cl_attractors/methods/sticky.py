"""Sticky gradient (the paper's Algorithm 1): a weight-dependent plasticity with an attractor."""

from __future__ import annotations

import functools
import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from cl_attractors.errors import require
from cl_attractors.methods import kernels
from cl_attractors.methods.base import CLMethod, ParamSelection
from cl_attractors.methods.kernels import Compile, Dip, Kernel

ApplyTo = Literal["gradient", "update"]


class StickyGradient(CLMethod):
    """Algorithm 1: ``g = grad(L + zeta |theta|)``, scaled by ``f(theta)`` where it points away from a1.

    Each of ``sticky``, ``l1`` and ``smart_init`` switches one ingredient (the 8-way ablation of
    Fig. 3). Statistics (logged per task): ``dip_fraction`` (targets with ``|w - a1| < 1/sqrt(gamma)``
    at task end), and, sampled every ``stats_every`` steps with device-side counters (no host
    sync), ``gated_fraction`` (non-zero components whose gradient/update pointed away, so f
    applied) and ``mean_f`` (mean f over those components).

    Args:
        a1: attractor (centre of the dip of f).
        mu: mean of the smart init.
        sigma: standard deviation of the smart init.
        gamma: width parameter of the dip.
        zeta: L1 strength.
        lam: plateau of f (the multiplier far from a1).
        sticky: apply the plasticity multiplier.
        l1: add the L1 term.
        smart_init: initialise the init targets from ``N(mu, sigma^2)`` (global RNG, at attach).
        init_params: which targets the smart init touches: ``"all"`` or ``"weights"``.
        f_min: floor of f (0 = the paper).
        apply_to: ``"gradient"`` (Algorithm 1: before Adam) or ``"update"`` (gate Adam's step
            ``dtheta`` by its own direction: ``theta = theta_old + f * dtheta`` where away).
        l1_apply_to: ``"gradient"`` (inside g, as in Algorithm 1) or ``"update"`` (decoupled like
            AdamW: ``theta -= lr * zeta * sgn(theta)`` after the step, gated like the gradient).
        stats_every: sample the gating statistics every this many steps.
        compile: fuse the per-step kernels with ``torch.compile``: ``true``, ``false`` (eager, in
            place, preallocated scratch) or ``"auto"`` (when the targets are large; see
            ``kernels.compile_wanted``).
        params: ``"all"`` or ``"weights"``: which parameters the method acts on.
        layers: linear-layer indices the method acts on (``None`` = all).
    """

    counters = ("_step",)

    def __init__(
        self,
        a1: float = 0.279,
        mu: float = 0.00363,
        sigma: float = 0.0204,
        gamma: float = 4.70,
        zeta: float = 0.000574,
        lam: float = 4.12,
        sticky: bool = True,
        l1: bool = True,
        smart_init: bool = True,
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
        require(lam >= 0, "method.lam", lam, "a number >= 0")
        require(gamma > 0, "method.gamma", gamma, "a number > 0")
        require(sigma > 0, "method.sigma", sigma, "a number > 0")
        require(zeta >= 0, "method.zeta", zeta, "a number >= 0")
        require(0 <= f_min <= lam, "method.f_min", f_min, f"a number in [0, lam={lam}]")
        require(apply_to in ("gradient", "update"), "method.apply_to", apply_to, "'gradient' or 'update'")
        require(
            l1_apply_to in ("gradient", "update"), "method.l1_apply_to", l1_apply_to, "'gradient' or 'update'"
        )
        require(init_params in ("all", "weights"), "method.init_params", init_params, "'all' or 'weights'")
        require(stats_every >= 1, "method.stats_every", stats_every, "an integer >= 1")
        kernels.check_compile(compile)
        self.dip = Dip(a1=a1, lam=lam, gamma=gamma, f_min=f_min)
        self.mu, self.sigma, self.zeta = mu, sigma, zeta
        self.sticky, self.l1, self.smart_init, self.init_params = sticky, l1, smart_init, init_params
        self.gate_update = sticky and apply_to == "update"
        self.zeta_pre = zeta if l1 and l1_apply_to == "gradient" else 0.0
        self.zeta_post = zeta if l1 and l1_apply_to == "update" else 0.0
        self.stats_every, self.compile = stats_every, compile
        self._step = 0

    # ---- state ------------------------------------------------------------------------------
    def setup_state(self, targets: list[nn.Parameter]) -> None:
        if self.smart_init:
            with torch.no_grad():
                for p in self._init_targets(targets):
                    p.normal_(self.mu, self.sigma)
        names = (["s", "f", "u"] if self.sticky or self.l1 else []) + (["old"] if self.gate_update else [])
        for i, p in enumerate(targets):
            for name in names:
                self.register_buffer(f"_{name}{i}", torch.zeros_like(p), persistent=False)
        # [sampled components, gated components, sum of f over gated components]
        self.register_buffer("gate_stats", torch.zeros(3, dtype=torch.float64))
        fuse = kernels.compile_wanted(self.compile, targets)
        dip = self.dip if self.sticky else None
        pre_dip = None if self.gate_update else dip
        self._grad_kernel = Kernel(
            functools.partial(kernels.l1_grad_expr, zeta=self.zeta_pre, dip=pre_dip), self._grad_eager, fuse
        )
        self._update_kernel = Kernel(
            functools.partial(kernels.gated_update_expr, dip=self.dip), self._update_eager, fuse
        )
        self._l1_kernel = Kernel(
            functools.partial(kernels.decoupled_l1_expr, dip=dip), self._decoupled_l1_eager, fuse
        )
        grad_stats = functools.partial(kernels.grad_stats_expr, zeta=self.zeta_pre, dip=self.dip)
        update_stats = functools.partial(kernels.update_stats_expr, dip=self.dip)
        self._grad_stats = Kernel(grad_stats, grad_stats, fuse)
        self._update_stats = Kernel(update_stats, update_stats, fuse)

    def _init_targets(self, targets: list[nn.Parameter]) -> list[nn.Parameter]:
        """The targets the smart init touches (linear weights are the 2-D targets)."""
        return [p for p in targets if self.init_params == "all" or p.dim() > 1]

    def _scratch(self, name: str) -> list[Tensor]:
        return self.per_target(f"_{name}")

    # ---- hooks ------------------------------------------------------------------------------
    @torch.no_grad()
    def on_before_optimizer_step(self, module: Any, optimizer: torch.optim.Optimizer) -> None:
        params = self.targets
        grads = [p.grad for p in params]
        self._sampling = self._step % self.stats_every == 0
        self._step += 1
        if self.gate_update:
            torch._foreach_copy_(self._scratch("old"), params)
        elif self._sampling and self.sticky:
            self._add_stats(self._grad_stats(grads, params), params)
        if self.zeta_pre or (self.sticky and not self.gate_update):
            self._grad_kernel(grads, params)

    @torch.no_grad()
    def on_after_optimizer_step(self, module: Any, optimizer: torch.optim.Optimizer) -> None:
        if not self.gate_update and not self.zeta_post:
            return
        lr_zetas = self._lr_zetas(optimizer)
        params = self.targets
        if self.gate_update:
            if self._sampling:
                self._add_stats(self._update_stats(params, self._scratch("old"), lr_zetas), params)
            self._update_kernel(params, self._scratch("old"), lr_zetas)
        else:
            self._l1_kernel(params, lr_zetas)

    # ---- eager kernels (in place, preallocated scratch) ---------------------------------------
    def _grad_eager(self, grads: list[Tensor], params: list[Tensor]) -> None:
        """``g = gate(g + zeta sgn(w), w)`` (no gate in update mode or without ``sticky``)."""
        if self.zeta_pre:
            kernels.add_l1_(grads, params, self._scratch("s"), self.zeta_pre)
        if self.sticky and not self.gate_update:
            for g, w, s, f in zip(grads, params, self._scratch("s"), self._scratch("f")):
                kernels.gate_(g, w, s, f, self.dip)

    def _update_eager(self, params: list[Tensor], olds: list[Tensor], lr_zetas: list[float]) -> None:
        """``theta = old - gate(u, old)`` with the pseudo-gradient ``u = old - theta (+ lr zeta sgn)``."""
        for w, old, u, s, f, lz in zip(
            params, olds, self._scratch("u"), self._scratch("s"), self._scratch("f"), lr_zetas
        ):
            torch.sub(old, w, out=u)
            if lz:
                u.add_(torch.sign(old, out=s), alpha=lz)
            kernels.gate_(u, old, s, f, self.dip)
            torch.sub(old, u, out=w)

    def _decoupled_l1_eager(self, params: list[Tensor], lr_zetas: list[float]) -> None:
        """``theta -= gate(lr zeta sgn(theta), theta)`` after the step (no gate without ``sticky``)."""
        for w, u, s, f, lz in zip(
            params, self._scratch("u"), self._scratch("s"), self._scratch("f"), lr_zetas
        ):
            torch.sign(w, out=u).mul_(lz)
            if self.sticky:
                kernels.gate_(u, w, s, f, self.dip)
            w.sub_(u)

    def on_task_end(self, module: Any, task: int, datamodule: Any) -> dict[str, float]:
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
    def _add_stats(self, gated_and_f_sum: Tensor, weights: list[Tensor]) -> None:
        """Device-side counters of the sampled step (no host sync)."""
        self.gate_stats[0] += sum(w.numel() for w in weights)
        self.gate_stats[1:] += gated_and_f_sum

    def _lr_zetas(self, optimizer: torch.optim.Optimizer) -> list[float]:
        lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
        return [float(lr_of[id(p)]) * self.zeta_post for p in self.targets]
