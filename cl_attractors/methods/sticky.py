"""Sticky gradient (the paper's Algorithm 1): a weight-dependent plasticity with an attractor."""

from __future__ import annotations

import functools
import math
from typing import Any, Literal

import torch
from torch import Tensor

from cl_attractors.errors import require, require_finite
from cl_attractors.methods.base import CLMethod, ParamSelection
from cl_attractors.methods.formulas import Dip, add_l1_, gate, gate_, l1_grad, l1_grad_, toward
from cl_attractors.methods.kernels import Compile, Kernel, check_compile, compile_wanted

ApplyTo = Literal["gradient", "update"]

# ---- fused kernels (torch.compile: one pass per tensor); eager twins: StickyGradient._*_eager ----


def grad_expr(grads: list[Tensor], params: list[Tensor], zeta: float, dip: Dip | None) -> None:
    """``g = gate(g + l1_grad(w, zeta), w)`` for each pair (no gate if ``dip`` is None)."""
    for g, w in zip(grads, params):
        h = g + l1_grad(w, zeta) if zeta else g
        g.copy_(gate(h, w, dip) if dip is not None else h)


def update_expr(params: list[Tensor], olds: list[Tensor], lr_zetas: list[float], dip: Dip) -> None:
    """Update gating: ``w = old - gate(u, old)``, ``u = old - w + l1_grad(old, lr zeta)``."""
    for w, old, lz in zip(params, olds, lr_zetas):
        u = old - w + l1_grad(old, lz) if lz else old - w
        w.copy_(old - gate(u, old, dip))


def decoupled_l1_expr(params: list[Tensor], lr_zetas: list[float], dip: Dip | None) -> None:
    """Decoupled L1 after the step: ``w -= gate(l1_grad(w, lr zeta), w)`` (no gate if ``dip`` None)."""
    for w, lz in zip(params, lr_zetas):
        u = l1_grad(w, lz)
        w.sub_(gate(u, w, dip) if dip is not None else u)


def count_gated(pseudo_grads: list[Tensor], weights: list[Tensor], dip: Dip) -> Tensor:
    """``[gated components, sum of f over them]``: components with ``u != 0`` whose step moves
    ``w`` away from a1 (not :func:`~cl_attractors.methods.formulas.toward`), so f applies."""
    gated, f_sum = [], []
    for u, w in zip(pseudo_grads, weights):
        away = ~toward(w, u, dip.a1) & (u != 0)
        gated.append(away.sum(dtype=torch.float32))
        f_sum.append(torch.where(away, dip.f(w), 0.0).sum())
    return torch.stack([torch.stack(gated).sum(), torch.stack(f_sum).sum()])


def grad_stats_expr(grads: list[Tensor], params: list[Tensor], zeta: float, dip: Dip) -> Tensor:
    """:func:`count_gated` of the gradient the gate sees: ``g + l1_grad(w, zeta)`` at ``w``."""
    return count_gated([g + l1_grad(w, zeta) if zeta else g for g, w in zip(grads, params)], params, dip)


def update_stats_expr(params: list[Tensor], olds: list[Tensor], lr_zetas: list[float], dip: Dip) -> Tensor:
    """:func:`count_gated` of the update gate's pseudo-gradient ``old - w + l1_grad(old, lr zeta)``."""
    pseudo = [o - w + l1_grad(o, lz) if lz else o - w for w, o, lz in zip(params, olds, lr_zetas)]
    return count_gated(pseudo, olds, dip)


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
        phi = {"a1": a1, "mu": mu, "sigma": sigma, "gamma": gamma, "zeta": zeta, "lam": lam, "f_min": f_min}
        require_finite(phi, "method")
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
        check_compile(compile)
        self.dip = Dip(a1=a1, lam=lam, gamma=gamma, f_min=f_min)
        self.mu, self.sigma, self.zeta = mu, sigma, zeta
        self.sticky, self.l1, self.smart_init, self.init_params = sticky, l1, smart_init, init_params
        self.gate_update = sticky and apply_to == "update"
        self.zeta_pre = zeta if l1 and l1_apply_to == "gradient" else 0.0
        self.zeta_post = zeta if l1 and l1_apply_to == "update" else 0.0
        self.stats_every, self.compile_mode = stats_every, compile
        self._step = 0

    # ---- state ------------------------------------------------------------------------------
    def setup_state(self, targets: list[Tensor]) -> None:
        if self.smart_init:
            with torch.no_grad():
                for p in self._init_targets(targets):
                    p.normal_(self.mu, self.sigma)
        names = (["s", "f", "u"] if self.sticky or self.l1 else []) + (["old"] if self.gate_update else [])
        for i, p in enumerate(targets):
            for name in names:
                self.register_buffer(f"_{name}{i}", torch.zeros_like(p), persistent=False)
        self.register_buffer("gate_stats", torch.zeros(3, dtype=torch.float64))
        fuse = compile_wanted(self.compile_mode, targets)
        dip = self.dip if self.sticky else None
        pre_dip = None if self.gate_update else dip
        self._grad_kernel = Kernel(
            functools.partial(grad_expr, zeta=self.zeta_pre, dip=pre_dip), self._grad_eager, fuse
        )
        self._update_kernel = Kernel(functools.partial(update_expr, dip=self.dip), self._update_eager, fuse)
        self._l1_kernel = Kernel(
            functools.partial(decoupled_l1_expr, dip=dip), self._decoupled_l1_eager, fuse
        )
        grad_stats = functools.partial(grad_stats_expr, zeta=self.zeta_pre, dip=self.dip)
        update_stats = functools.partial(update_stats_expr, dip=self.dip)
        self._grad_stats = Kernel(grad_stats, grad_stats, fuse)
        self._update_stats = Kernel(update_stats, update_stats, fuse)

    def _init_targets(self, targets: list[Tensor]) -> list[Tensor]:
        """The targets the smart init touches (linear weights are the 2-D targets)."""
        return [p for p in targets if self.init_params == "all" or p.dim() > 1]

    def _scratch(self, name: str) -> list[Tensor]:
        return self.per_target(f"_{name}")

    # ---- hooks ------------------------------------------------------------------------------
    @torch.no_grad()
    def on_before_optimizer_step(self, module: Any, optimizer: torch.optim.Optimizer) -> None:
        params = self.targets
        grads = [p.grad for p in params]
        self._step += 1
        if self.gate_update:
            torch._foreach_copy_(self._scratch("old"), params)
        elif self._sampled() and self.sticky:
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
            if self._sampled():
                self._add_stats(self._update_stats(params, self._scratch("old"), lr_zetas), params)
            self._update_kernel(params, self._scratch("old"), lr_zetas)
        else:
            self._l1_kernel(params, lr_zetas)

    # ---- eager kernels (in place, preallocated scratch) ---------------------------------------
    def _grad_eager(self, grads: list[Tensor], params: list[Tensor]) -> None:
        """``g = gate(g + zeta sgn(w), w)`` (no gate in update mode or without ``sticky``)."""
        for g, w, s, f in zip(grads, params, self._scratch("s"), self._scratch("f")):
            if self.zeta_pre:
                add_l1_(g, w, s, self.zeta_pre)
            if self.sticky and not self.gate_update:
                gate_(g, w, s, f, self.dip)

    def _update_eager(self, params: list[Tensor], olds: list[Tensor], lr_zetas: list[float]) -> None:
        """``theta = old - gate(u, old)`` with the pseudo-gradient ``u = old - theta (+ lr zeta sgn)``."""
        for w, old, u, s, f, lz in zip(
            params, olds, self._scratch("u"), self._scratch("s"), self._scratch("f"), lr_zetas
        ):
            torch.sub(old, w, out=u)
            if lz:
                add_l1_(u, old, s, lz)
            gate_(u, old, s, f, self.dip)
            torch.sub(old, u, out=w)

    def _decoupled_l1_eager(self, params: list[Tensor], lr_zetas: list[float]) -> None:
        """``theta -= gate(lr zeta sgn(theta), theta)`` after the step (no gate without ``sticky``)."""
        for w, u, s, f, lz in zip(
            params, self._scratch("u"), self._scratch("s"), self._scratch("f"), lr_zetas
        ):
            l1_grad_(u, w, lz)
            if self.sticky:
                gate_(u, w, s, f, self.dip)
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
