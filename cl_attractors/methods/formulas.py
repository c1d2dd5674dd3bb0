"""The formulas of the CL methods, each written once as a pure tensor expression.

The per-step ones (f, the gate, L1, the quadratic pull, SI's path term) have an in-place twin
here too (``name_``: the same arithmetic writing only into preallocated scratch, checked equal in
the tests); the methods build their per-step kernels from these two forms (``sticky.py``:
``algorithm1`` and ``algorithm1_``). The importance estimators (Fisher, MAS), run once per task,
are in ``importance.py``. Reference implementations written for clarity, which the tests compare
these against, live in ``tests/reference.py``. No Lightning here.

Hyperparameters are :data:`Scalar`: a Python number, or a tensor that broadcasts against the
weights, e.g. ``[R, 1, 1]`` for ``R`` replicas stacked as ``[R, out, in]`` (one φ per replica).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

LOG2E = math.log2(math.e)
Scalar = float | Tensor
"""A hyperparameter: a number, or a tensor broadcast over the weights (one value per replica)."""

# ---- sticky gradient: f(w), the away-gate, L1 --------------------------------------------------


def plasticity(w: Tensor, a1: Scalar, lam: Scalar, gamma: Scalar, f_min: Scalar = 0.0) -> Tensor:
    """The weight-dependent learning-rate multiplier f (paper Eq. 1, with an optional floor).

    ``f(w) = lam - (lam - f_min) * exp(-gamma (w - a1)^2)``: ``f_min`` at the attractor, ``lam``
    far from it; ``f_min = 0`` is the paper's ``-lam exp(-gamma (w - a1)^2) + lam``. ``exp(x)``
    is computed as ``exp2(x log2 e)``, cheaper on a CPU where the per-step pass is compute-bound.

    Args:
        w: weights.
        a1: centre of the dip (the attractor).
        lam: the plateau value far from the dip.
        gamma: width parameter of the dip (larger = narrower).
        f_min: the value at the bottom of the dip (the Discussion section's extension).
    """
    d = w - a1
    return lam - (lam - f_min) * torch.exp2((-gamma * LOG2E) * d * d)


@dataclass(frozen=True)
class Dip:
    """The parameters of f (see :func:`plasticity`)."""

    a1: Scalar
    lam: Scalar
    gamma: Scalar
    f_min: Scalar

    def f(self, w: Tensor) -> Tensor:
        """``f(w)``."""
        return plasticity(w, self.a1, self.lam, self.gamma, self.f_min)


def toward(w: Tensor, g: Tensor, a1: Scalar) -> Tensor:
    """Where the descent step ``-g`` moves ``w`` toward ``a1``: the gate leaves ``g`` alone there.

    The complement is Algorithm 1's ``sgn(w - a1) != sgn(g)``, written ``(w - a1) g > 0`` for
    "toward" (two vector ops instead of two ``sign``s; it differs only where the product
    underflows, ``|(w - a1) g| < 1e-45``, where ``g`` is negligible either way).
    """
    return (w - a1) * g > 0


def gate(g: Tensor, w: Tensor, dip: Dip) -> Tensor:
    """Algorithm 1's gate: ``g * f(w)`` where the step moves ``w`` away from a1, else ``g``."""
    return torch.where(toward(w, g, dip.a1), g, g * dip.f(w))


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


def l1_grad(w: Tensor, zeta: Scalar) -> Tensor:
    """``zeta * sgn(w)``: the gradient of ``zeta * |w|`` (0 at w = 0)."""
    return zeta * torch.sign(w)


def l1_grad_(out: Tensor, w: Tensor, zeta: Scalar) -> None:
    """In place: ``out = l1_grad(w, zeta)``."""
    torch.sign(w, out=out).mul_(zeta)


def add_l1_(g: Tensor, w: Tensor, s: Tensor, zeta: Scalar) -> None:
    """In place: ``g += l1_grad(w, zeta)``, ``s`` a scratch shaped like ``w`` (one pass: the
    product ``zeta * sgn(w)`` is exact, so adding it with ``alpha`` rounds the same)."""
    if isinstance(zeta, Tensor):
        g.addcmul_(torch.sign(w, out=s), zeta)
    else:
        g.add_(torch.sign(w, out=s), alpha=zeta)


# ---- the quadratic pull of EWC, SI and MAS ----------------------------------------------------


def quadratic_pull_grad(theta: Tensor, anchor_sum: Tensor, weight_sum: Tensor, scale: Scalar = 1.0) -> Tensor:
    """Gradient of ``scale/2 * sum_k W_k (theta - theta*_k)^2`` from accumulated sums.

    Since the gradient is ``scale * sum_k W_k (theta - theta*_k)``, keeping
    ``weight_sum = sum_k W_k`` and ``anchor_sum = sum_k W_k * theta*_k`` makes it O(1) in the
    number of tasks: ``scale * (weight_sum * theta - anchor_sum)``.

    Args:
        theta: current parameters.
        anchor_sum: ``sum_k W_k * theta*_k``.
        weight_sum: ``sum_k W_k`` (the importances: Fisher diagonals, SI's Omega, MAS's Omega).
        scale: the gradient's multiplier (EWC's lambda; ``2c`` for SI, ``2 lambda`` for MAS).
    """
    return scale * (weight_sum * theta - anchor_sum)


def pull_(
    grads: list[Tensor],
    params: list[Tensor],
    weight_sums: list[Tensor],
    anchor_sums: list[Tensor],
    scale: float,
) -> None:
    """In place: ``g += quadratic_pull_grad(theta, anchor_sum, weight_sum, scale)`` (two foreach passes)."""
    torch._foreach_addcmul_(grads, weight_sums, params, value=scale)
    torch._foreach_add_(grads, anchor_sums, alpha=-scale)


def pull_expr(
    grads: list[Tensor],
    params: list[Tensor],
    weight_sums: list[Tensor],
    anchor_sums: list[Tensor],
    scale: float,
) -> None:
    """The fused form of :func:`pull_` (one pass per tensor under ``torch.compile``)."""
    for g, w, weight, anchor in zip(grads, params, weight_sums, anchor_sums):
        g.add_(quadratic_pull_grad(w, anchor, weight, scale))


# ---- SI's path integral -----------------------------------------------------------------------


def si_path_term(g: Tensor, prev_g: Tensor, w: Tensor) -> Tensor:
    """One term of SI's path integral, one step late: ``(g_t - g_{t-1}) * theta_t``.

    Added before step t (``theta = theta_t``), the terms telescope to
    ``-sum_t g_t (theta_{t+1} - theta_t)`` once :func:`si_flush_` adds the last ``-g_T theta_end``:
    Zenke et al.'s integral without a copy of theta or a hook after the step.
    """
    return (g - prev_g) * w


def si_path_(
    grads: list[Tensor], params: list[Tensor], prev_grads: list[Tensor], omega: list[Tensor]
) -> None:
    """In place: ``omega += si_path_term(g, g_prev, theta)``, then ``g_prev = g``."""
    torch._foreach_sub_(prev_grads, grads)
    torch._foreach_addcmul_(omega, prev_grads, params, value=-1.0)
    torch._foreach_copy_(prev_grads, grads)


def si_flush_(params: list[Tensor], prev_grads: list[Tensor], omega: list[Tensor]) -> None:
    """Close :func:`si_path_`'s sum at the end of a task: ``omega -= g_prev * theta``, ``g_prev = 0``."""
    torch._foreach_addcmul_(omega, prev_grads, params, value=-1.0)
    torch._foreach_zero_(prev_grads)


def si_importance(omega: Tensor, task_delta: Tensor, xi: Scalar) -> Tensor:
    """SI's importance of a finished task: ``omega / (task_delta^2 + xi)``.

    Args:
        omega: the task's path integral.
        task_delta: parameter change over the whole task.
        xi: damping (keeps the ratio bounded when a parameter barely moved).
    """
    return omega / (task_delta**2 + xi)
