"""Per-step kernels of the CL methods, over lists of target tensors.

Two forms of the sticky gate: :func:`gate` is a pure expression (what ``torch.compile`` fuses
into one pass per tensor), :func:`gate_` is its eager in-place twin writing only into
preallocated scratch (no large allocation per step). The quadratic pull and SI's path-integral
steps are ``torch._foreach_*`` in-place ops, fast eagerly and fused by ``torch.compile``.
No Python loop over elements, no host sync.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import math

import torch
from torch import Tensor

LOG2E = math.log2(math.e)
Fn = TypeVar("Fn", bound=Callable)


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


def maybe_compile(fn: Fn, enabled: bool) -> Fn:
    """``torch.compile(fn)`` (static shapes, one compile worker) when ``enabled``, else ``fn``.

    One compile thread: inductor's pool of compile workers otherwise competes for the CPU
    cores with training long after compilation on small machines.
    """
    if not enabled:
        return fn
    return torch.compile(fn, dynamic=False, options={"compile_threads": 1})


def gate(g: Tensor, w: Tensor, dip: Dip) -> Tensor:
    """``g * f(w)`` where ``sgn(w - a1) != sgn(g)``, else ``g`` (Algorithm 1, pure form).

    ``exp(x)`` is computed as ``exp2(x log2 e)``: the same function, a cheaper vector kernel.
    """
    d = w - dip.a1
    f = dip.lam - (dip.lam - dip.f_min) * torch.exp2((-dip.gamma * LOG2E) * d * d)
    return torch.where(torch.sign(d) != torch.sign(g), g * f, g)


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


def add_l1_(grads: list[Tensor], params: list[Tensor], scratch: list[Tensor], zeta: float) -> None:
    """``g += zeta * sgn(w)``: the gradient of ``zeta * |w|`` (0 at w = 0)."""
    for g, w, s in zip(grads, params, scratch):
        torch.sign(w, out=s)
        g.add_(s, alpha=zeta)


def l1_grad_expr(grads: list[Tensor], params: list[Tensor], zeta: float,
                 dip: Dip | None) -> None:
    """Compile-friendly: ``g = gate(g + zeta sgn(w), w)`` for each pair (no gate if ``dip`` None)."""
    for g, w in zip(grads, params):
        h = g + zeta * torch.sign(w) if zeta else g
        g.copy_(gate(h, w, dip) if dip is not None else h)


def gated_update_expr(params: list[Tensor], olds: list[Tensor], lr_zetas: list[float],
                      dip: Dip) -> None:
    """Compile-friendly update gating: ``w = old - gate(old - w + lr zeta sgn(old), old)``."""
    for w, old, lz in zip(params, olds, lr_zetas):
        u = old - w + lz * torch.sign(old) if lz else old - w
        w.copy_(old - gate(u, old, dip))


def decoupled_l1_expr(params: list[Tensor], lr_zetas: list[float], dip: Dip | None) -> None:
    """Compile-friendly decoupled L1 after the step: ``w -= gate(lr zeta sgn(w), w)``."""
    for w, lz in zip(params, lr_zetas):
        u = lz * torch.sign(w)
        w.sub_(gate(u, w, dip) if dip is not None else u)


def pull_(grads: list[Tensor], params: list[Tensor], weight_sums: list[Tensor],
          anchor_sums: list[Tensor], scale: float) -> None:
    """``g += scale * (W * theta - A)``: the O(1) quadratic pull (see ``quadratic_pull_grad``)."""
    torch._foreach_addcmul_(grads, weight_sums, params, value=scale)
    torch._foreach_add_(grads, anchor_sums, alpha=-scale)


def si_before_(grads: list[Tensor], params: list[Tensor], saved_grads: list[Tensor],
               saved_params: list[Tensor]) -> None:
    """Save the unregularised gradient and the pre-step parameters for :func:`si_after_`."""
    torch._foreach_copy_(saved_grads, grads)
    torch._foreach_copy_(saved_params, params)


def si_after_(params: list[Tensor], saved_grads: list[Tensor], saved_params: list[Tensor],
              omega: list[Tensor]) -> None:
    """SI's path integral ``omega -= g * (theta_new - theta_old)``; overwrites ``saved_params``."""
    torch._foreach_sub_(saved_params, params)
    torch._foreach_addcmul_(omega, saved_grads, saved_params)
