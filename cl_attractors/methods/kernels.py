"""Per-step kernels of the CL methods, over lists of target tensors.

Two forms of the sticky gate: :func:`gate` is a pure expression (what ``torch.compile`` fuses
into one pass per tensor), :func:`gate_` is its eager in-place twin writing only into
preallocated scratch (no large allocation per step). The quadratic pull and SI's path-integral
step are ``torch._foreach_*`` in-place ops with fused twins for ``torch.compile``; :class:`Kernel`
picks one.
No Python loop over elements, no host sync.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from cl_attractors.errors import require

LOG2E = math.log2(math.e)


@dataclass(frozen=True)
class Dip:
    """Parameters of the plasticity function f.

    Args:
        a1: attractor.
        lam: plateau of f.
        gamma: width parameter of the dip.
        f_min: value of f at the attractor.
    """

    a1: float
    lam: float
    gamma: float
    f_min: float


Compile = bool | str
"""``True``, ``False`` or ``"auto"``; typed loosely so that the method's own check, not the
parser, rejects anything else (with the one-line error naming ``method.compile``)."""

AUTO_COMPILE_MIN_NUMEL = 1 << 16
"""``compile: auto`` compiles when the method's targets hold at least this many elements."""


def check_compile(compile: Compile) -> None:
    """Reject a ``compile`` setting other than true, false or ``"auto"`` (one-line error)."""
    require(compile in (True, False, "auto"), "method.compile", compile, "true, false or 'auto'")


def compile_wanted(compile: Compile, targets: list[Tensor]) -> bool:
    """Whether a method's ``compile`` setting asks for compiled kernels on these targets.

    ``auto``: yes for models big enough that the per-step pass matters (the paper's MLP has
    1.6 M weights); small ones stay eager and skip the compile time.
    """
    if compile == "auto":
        return sum(t.numel() for t in targets) >= AUTO_COMPILE_MIN_NUMEL
    return bool(compile)


class Kernel:
    """A per-step kernel: ``torch.compile(fused)`` when ``compiled``, else ``eager``.

    ``fused`` is a pure expression that inductor turns into one pass per tensor; ``eager`` is
    its in-place twin (same results up to float rounding). If compiling fails (no C++ compiler,
    an unsupported backend) on the first call, the kernel warns once and stays eager: compile
    failures happen before anything is written, so that call is simply re-run eagerly.

    Static shapes and one compile worker: inductor's pool of compile workers otherwise
    competes for the CPU cores with training long after compilation on small machines.
    """

    def __init__(self, fused: Callable[..., Any], eager: Callable[..., Any], compiled: bool) -> None:
        self.eager = eager
        self.fused = torch.compile(fused, dynamic=False, options={"compile_threads": 1}) if compiled else None
        self._proven = False

    @property
    def compiled(self) -> bool:
        """Whether calls go through the compiled kernel."""
        return self.fused is not None

    def __call__(self, *args: Any) -> Any:
        if self.fused is None:
            return self.eager(*args)
        if self._proven:
            return self.fused(*args)
        try:
            out = self.fused(*args)
        except Exception as err:
            warnings.warn(
                f"torch.compile failed ({type(err).__name__}: "
                f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}); "
                "this per-step kernel runs eagerly (set the method's compile: false to silence)",
                RuntimeWarning,
                stacklevel=2,
            )
            self.fused = None
            return self.eager(*args)
        self._proven = True
        return out


def gate(g: Tensor, w: Tensor, dip: Dip) -> Tensor:
    """``g * f(w)`` where ``sgn(w - a1) != sgn(g)``, else ``g`` (Algorithm 1, pure form).

    The test is written ``(w - a1) * g > 0`` for "keep g" (two vector ops instead of two
    ``sign``s; it differs only where the product underflows, ``|(w - a1) g| < 1e-45``, where
    ``g`` is negligible either way), and ``exp(x)`` as ``exp2(x log2 e)``: together 30% less
    time per pass, which is compute-bound on a CPU.
    """
    d = w - dip.a1
    f = dip.lam - (dip.lam - dip.f_min) * torch.exp2((-dip.gamma * LOG2E) * d * d)
    return torch.where(d * g > 0, g, g * f)


def gate_(g: Tensor, w: Tensor, s: Tensor, f: Tensor, dip: Dip) -> None:
    """In-place :func:`gate` writing only into the scratch ``s`` and ``f`` (shaped like ``w``).

    ``q = sgn(w - a1) * g`` is exactly ``±g`` or 0 (no underflow), and ``sgn(w - a1) != sgn(g)``
    is ``q <= 0`` for ``g != 0``, including ``w == a1``; ``g == 0`` stays 0 either way. With
    ``keep = sgn(max(q, 0))`` (1 toward a1, else 0): ``g *= f * (1 - keep) + keep`` (exactly 0
    at ``w == a1`` when ``f_min = 0``).
    Float arithmetic only: bool masks and ``masked_fill_`` are slow eager CPU kernels.
    """
    torch.sub(w, dip.a1, out=s)
    torch.mul(s, s, out=f).mul_(-dip.gamma * LOG2E).exp2_()
    f.mul_(dip.f_min - dip.lam).add_(dip.lam)
    s.sign_().mul_(g).clamp_(min=0.0).sign_()  # keep
    f.addcmul_(s, f, value=-1.0).add_(s)
    g.mul_(f)


def gate_stats(pseudo_grads: list[Tensor], weights: list[Tensor], dip: Dip) -> Tensor:
    """``[gated components, sum of f over them]``: components with ``u != 0`` pointing away
    from a1 (``(w - a1) u <= 0``, the complement of :func:`gate`'s keep test), so f applies."""
    gated, f_sum = [], []
    for u, w in zip(pseudo_grads, weights):
        d = w - dip.a1
        away = (d * u <= 0) & (u != 0)
        f = dip.lam - (dip.lam - dip.f_min) * torch.exp2((-dip.gamma * LOG2E) * d * d)
        gated.append(away.sum(dtype=torch.float32))
        f_sum.append(torch.where(away, f, 0.0).sum())
    return torch.stack([torch.stack(gated).sum(), torch.stack(f_sum).sum()])


def grad_stats_expr(grads: list[Tensor], params: list[Tensor], zeta: float, dip: Dip) -> Tensor:
    """:func:`gate_stats` of the gradient the gate sees: ``g + zeta sgn(w)`` at ``w``."""
    return gate_stats([g + zeta * torch.sign(w) if zeta else g for g, w in zip(grads, params)], params, dip)


def update_stats_expr(params: list[Tensor], olds: list[Tensor], lr_zetas: list[float], dip: Dip) -> Tensor:
    """:func:`gate_stats` of the update gate's pseudo-gradient ``old - w + lr zeta sgn(old)`` at ``old``."""
    return gate_stats(
        [o - w + lz * torch.sign(o) if lz else o - w for w, o, lz in zip(params, olds, lr_zetas)], olds, dip
    )


def add_l1_(grads: list[Tensor], params: list[Tensor], scratch: list[Tensor], zeta: float) -> None:
    """``g += zeta * sgn(w)``: the gradient of ``zeta * |w|`` (0 at w = 0)."""
    for g, w, s in zip(grads, params, scratch):
        torch.sign(w, out=s)
        g.add_(s, alpha=zeta)


def l1_grad_expr(grads: list[Tensor], params: list[Tensor], zeta: float, dip: Dip | None) -> None:
    """Compile-friendly: ``g = gate(g + zeta sgn(w), w)`` for each pair (no gate if ``dip`` None)."""
    for g, w in zip(grads, params):
        h = g + zeta * torch.sign(w) if zeta else g
        g.copy_(gate(h, w, dip) if dip is not None else h)


def gated_update_expr(params: list[Tensor], olds: list[Tensor], lr_zetas: list[float], dip: Dip) -> None:
    """Compile-friendly update gating: ``w = old - gate(old - w + lr zeta sgn(old), old)``."""
    for w, old, lz in zip(params, olds, lr_zetas):
        u = old - w + lz * torch.sign(old) if lz else old - w
        w.copy_(old - gate(u, old, dip))


def decoupled_l1_expr(params: list[Tensor], lr_zetas: list[float], dip: Dip | None) -> None:
    """Compile-friendly decoupled L1 after the step: ``w -= gate(lr zeta sgn(w), w)``."""
    for w, lz in zip(params, lr_zetas):
        u = lz * torch.sign(w)
        w.sub_(gate(u, w, dip) if dip is not None else u)


def pull_(
    grads: list[Tensor],
    params: list[Tensor],
    weight_sums: list[Tensor],
    anchor_sums: list[Tensor],
    scale: float,
) -> None:
    """``g += scale * (W * theta - A)``: the O(1) quadratic pull (see ``quadratic_pull_grad``)."""
    torch._foreach_addcmul_(grads, weight_sums, params, value=scale)
    torch._foreach_add_(grads, anchor_sums, alpha=-scale)


def pull_expr(
    grads: list[Tensor],
    params: list[Tensor],
    weight_sums: list[Tensor],
    anchor_sums: list[Tensor],
    scale: float,
) -> None:
    """Compile-friendly :func:`pull_` (one pass per tensor)."""
    for g, w, weight, anchor in zip(grads, params, weight_sums, anchor_sums):
        g.add_(scale * (weight * w - anchor))


def si_path_(
    grads: list[Tensor], params: list[Tensor], prev_grads: list[Tensor], omega: list[Tensor]
) -> None:
    """SI's path integral, one step late: ``omega += (g - g_prev) * theta``, then ``g_prev = g``.

    Called before step t (``theta = theta_t``), the sum telescopes to
    ``-sum_t g_t (theta_{t+1} - theta_t)`` once :func:`si_flush_` adds the last
    ``-g_T theta_end``: Zenke et al.'s integral without a copy of theta or a hook after the step.
    """
    torch._foreach_sub_(prev_grads, grads)
    torch._foreach_addcmul_(omega, prev_grads, params, value=-1.0)
    torch._foreach_copy_(prev_grads, grads)


def si_flush_(params: list[Tensor], prev_grads: list[Tensor], omega: list[Tensor]) -> None:
    """Close :func:`si_path_`'s sum at the end of a task: ``omega -= g_prev * theta``, ``g_prev = 0``."""
    torch._foreach_addcmul_(omega, prev_grads, params, value=-1.0)
    torch._foreach_zero_(prev_grads)


def si_step_expr(
    grads: list[Tensor],
    params: list[Tensor],
    prev_grads: list[Tensor],
    omega: list[Tensor],
    importance: list[Tensor],
    anchor_sums: list[Tensor],
    scale: float,
) -> None:
    """Compile-friendly :func:`si_path_` followed by the pull (``scale = 0``: no pull)."""
    for g, w, prev, om, imp, anchor in zip(grads, params, prev_grads, omega, importance, anchor_sums):
        om.add_((g - prev) * w)
        # "+ 0.0": inductor drops a plain copy of an input that is mutated afterwards and
        # copies the pulled g instead (pytorch/pytorch#198131, open in torch 2.14)
        prev.copy_(g + 0.0)
        if scale:
            g.add_(scale * (imp * w - anchor))
