"""The formulas of the CL methods, each written once as a pure tensor expression.

The per-step ones (f, the gate, L1, the quadratic pull, SI's path term) have an in-place twin
here too (``name_``: the same arithmetic writing only into preallocated scratch, checked equal in
the tests); the methods build their per-step kernels from these two forms (``sticky_steps.py``:
``algorithm1`` and ``algorithm1_``). The importance estimators (Fisher, MAS), run once per task,
are in ``importance.py``. Reference implementations written for clarity, which the tests compare
these against, live in ``tests/reference.py``. No Lightning here.

Hyperparameters are :data:`Scalar`: a Python number, or a tensor that broadcasts against the
weights, e.g. ``[R, 1, 1]`` for ``R`` replicas stacked as ``[R, out, in]`` (one φ per replica).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

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

    def centre(self, w: Tensor) -> Scalar:
        """The attractor the gate measures "toward" from: a1."""
        return self.a1

    def gate_(self, g: Tensor, w: Tensor, s: Tensor, f: Tensor) -> None:
        """:func:`gate_` with this f."""
        gate_(g, w, s, f, self)


def plasticity2(
    w: Tensor, a1: Scalar, a2: Scalar, lam: Scalar, gamma: Scalar, gamma2: Scalar, f_min: Scalar = 0.0
) -> Tensor:
    """A plasticity function with two attractors: the product of two dips of their own width.

    ``f(w) = f_min + (lam - f_min) * (1 - exp(-gamma (w - a1)^2)) * (1 - exp(-gamma2 (w - a2)^2))``:
    ``f_min`` at either attractor, ``lam`` far from both; a2 far from every weight gives back
    :func:`plasticity` (its factor is 1 there). ``exp`` as ``exp2`` as in :func:`plasticity`.
    """
    d1, d2 = w - a1, w - a2
    e1 = torch.exp2((-gamma * LOG2E) * d1 * d1)
    e2 = torch.exp2((-gamma2 * LOG2E) * d2 * d2)
    return f_min + (lam - f_min) * (1.0 - e1) * (1.0 - e2)


def nearest(w: Tensor, a1: Scalar, a2: Scalar) -> Tensor:
    """The attractor nearer to each weight: a1 where ``|w - a1| < |w - a2|``, else a2.

    Written ``(w - (a1 + a2)/2)(a1 - a2) > 0`` (the same test, one product); a tie, or
    ``a1 == a2``, gives a2.
    """
    return torch.where((w - (a1 + a2) / 2) * (a1 - a2) > 0, a1, a2)


@dataclass(frozen=True)
class TwoDips:
    """The parameters of :func:`plasticity2`; its gate measures "toward" from the nearer attractor."""

    a1: Scalar
    a2: Scalar
    lam: Scalar
    gamma: Scalar
    gamma2: Scalar
    f_min: Scalar

    def f(self, w: Tensor) -> Tensor:
        """``f(w)``."""
        return plasticity2(w, self.a1, self.a2, self.lam, self.gamma, self.gamma2, self.f_min)

    def centre(self, w: Tensor) -> Tensor:
        """The attractor nearer to ``w`` (:func:`nearest`)."""
        return nearest(w, self.a1, self.a2)

    def gate_(self, g: Tensor, w: Tensor, s: Tensor, f: Tensor) -> None:
        """:func:`gate2_` with this f."""
        gate2_(g, w, s, f, self)


class Plasticity(Protocol):
    """An f the sticky gate uses: :class:`Dip` (the paper's) or :class:`TwoDips`."""

    @property
    def a1(self) -> Scalar: ...
    @property
    def gamma(self) -> Scalar: ...
    def f(self, w: Tensor) -> Tensor: ...
    def centre(self, w: Tensor) -> Scalar | Tensor: ...
    def gate_(self, g: Tensor, w: Tensor, s: Tensor, f: Tensor) -> None: ...


def toward(w: Tensor, g: Tensor, a1: Scalar) -> Tensor:
    """Where the descent step ``-g`` moves ``w`` toward ``a1``: the gate leaves ``g`` alone there.

    The complement is Algorithm 1's ``sgn(w - a1) != sgn(g)``, written ``(w - a1) g > 0`` for
    "toward" (two vector ops instead of two ``sign``s; it differs only where the product
    underflows, ``|(w - a1) g| < 1e-45``, where ``g`` is negligible either way).
    """
    return (w - a1) * g > 0


def gate(g: Tensor, w: Tensor, dip: Plasticity) -> Tensor:
    """Algorithm 1's gate: ``g * f(w)`` where the step moves ``w`` away from a1 (from the nearer
    attractor for :class:`TwoDips`), else ``g``."""
    return torch.where(toward(w, g, dip.centre(w)), g, g * dip.f(w))


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


def gate2_(g: Tensor, w: Tensor, s: Tensor, f: Tensor, dips: TwoDips) -> None:
    """In-place :func:`gate` for :class:`TwoDips`, writing only into the scratch ``s`` and ``f``.

    f's two factors go through ``f`` and ``s``; then ``s`` holds, in turn, 1 where ``w`` is
    nearer a1 (:func:`nearest`'s test), the nearer attractor ``c = a2 + that * (a1 - a2)``,
    and ``keep = sgn(max(sgn(w - c) g, 0))`` as in :func:`gate_`.
    """
    a1, a2 = dips.a1, dips.a2
    torch.sub(w, a1, out=f)
    f.mul_(f).mul_(-dips.gamma * LOG2E).exp2_().neg_().add_(1.0)
    torch.sub(w, a2, out=s)
    s.mul_(s).mul_(-dips.gamma2 * LOG2E).exp2_().neg_().add_(1.0)
    f.mul_(s).mul_(dips.lam - dips.f_min).add_(dips.f_min)
    torch.sub(w, (a1 + a2) / 2, out=s).mul_(a1 - a2).clamp_(min=0.0).sign_()
    s.mul_(a1 - a2).add_(a2)
    torch.sub(w, s, out=s).sign_().mul_(g).clamp_(min=0.0).sign_()  # keep
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
