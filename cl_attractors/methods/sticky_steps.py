"""Algorithm 1's step and its variants: pure functions, each with its fast in-place form.

Algorithm 1's step, for every target weight ``w`` with the loss gradient ``g`` (paper Sec. 2):

    g <- g + zeta * sgn(w)                          the L1 term (Algorithm 1 adds it to the loss)
    g <- g * f(w)   where sgn(w - a1) != sgn(g)     the sticky gate: only steps away from a1 slow
    w <- Adam(w, g)                                 f(w) = lam - lam * exp(-gamma (w - a1)^2)

:func:`algorithm1` below is that step as one pure expression; :func:`algorithm1_` is its fast
form, the same arithmetic in place in preallocated scratch (derivation in ``formulas.gate_``).
``torch.compile`` fuses the pure form into one pass per tensor (the method's ``compile``);
otherwise the fast form runs. Two variants move an ingredient after Adam's step (``apply_to``/
``l1_apply_to: update``): :func:`gated_update` gates Adam's own update ``u = old - w`` by its
direction, and :func:`decoupled_l1` subtracts ``gate(lr zeta sgn(w))`` after the step (like
AdamW's decay). Every coefficient is a :data:`~cl_attractors.methods.formulas.Scalar`: a number
in a single run (:class:`~cl_attractors.methods.sticky.StickyGradient`), a ``[R, 1, 1]`` tensor
in a replica group (``replicas/methods.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from cl_attractors.methods.formulas import Plasticity, Scalar, add_l1_, gate, l1_grad, l1_grad_, toward


# ---- Algorithm 1 (before Adam): the pure step and its fast form ---------------------------------
def nonzero(x: Scalar) -> bool:
    """Whether a term with this coefficient runs (a tensor, one value per replica, always does)."""
    return isinstance(x, Tensor) or x != 0


def algorithm1(grads: list[Tensor], params: list[Tensor], zeta: Scalar, dip: Plasticity | None) -> None:
    """``g = gate(g + zeta sgn(w), w)`` for each pair (no L1 if ``zeta`` is 0, no gate if ``dip``
    is None); ``torch.compile`` fuses it."""
    for g, w in zip(grads, params):
        h = g + l1_grad(w, zeta) if nonzero(zeta) else g
        g.copy_(gate(h, w, dip) if dip is not None else h)


def algorithm1_(
    grads: list[Tensor],
    params: list[Tensor],
    s: list[Tensor],
    f: list[Tensor],
    zeta: Scalar,
    dip: Plasticity | None,
) -> None:
    """:func:`algorithm1` in place, writing only into the scratch ``s``, ``f`` (shaped like ``w``)."""
    for g, w, s_, f_ in zip(grads, params, s, f):
        if nonzero(zeta):
            add_l1_(g, w, s_, zeta)
        if dip is not None:
            dip.gate_(g, w, s_, f_)


# ---- the variants after Adam's step -------------------------------------------------------------
def gated_update(
    params: list[Tensor], olds: list[Tensor], lr_zetas: Sequence[Scalar], dip: Plasticity
) -> None:
    """Update gating: ``w = old - gate(u, old)``, ``u = old - w + lr zeta sgn(old)``."""
    for w, old, lz in zip(params, olds, lr_zetas):
        u = old - w + l1_grad(old, lz) if nonzero(lz) else old - w
        w.copy_(old - gate(u, old, dip))


def gated_update_(
    params: list[Tensor],
    olds: list[Tensor],
    lr_zetas: Sequence[Scalar],
    dip: Plasticity,
    scratch: list[list[Tensor]],
) -> None:
    """:func:`gated_update` in place (scratch ``u``, ``s``, ``f`` per target)."""
    for w, old, lz, (u, s, f) in zip(params, olds, lr_zetas, scratch):
        torch.sub(old, w, out=u)
        if nonzero(lz):
            add_l1_(u, old, s, lz)
        dip.gate_(u, old, s, f)
        torch.sub(old, u, out=w)


def decoupled_l1(params: list[Tensor], lr_zetas: Sequence[Scalar], dip: Plasticity | None) -> None:
    """Decoupled L1 after the step: ``w -= gate(lr zeta sgn(w), w)`` (no gate if ``dip`` is None)."""
    for w, lz in zip(params, lr_zetas):
        u = l1_grad(w, lz)
        w.sub_(gate(u, w, dip) if dip is not None else u)


def decoupled_l1_(
    params: list[Tensor], lr_zetas: Sequence[Scalar], dip: Plasticity | None, scratch: list[list[Tensor]]
) -> None:
    """:func:`decoupled_l1` in place (scratch ``u``, ``s``, ``f`` per target)."""
    for w, lz, (u, s, f) in zip(params, lr_zetas, scratch):
        l1_grad_(u, w, lz)
        if dip is not None:
            dip.gate_(u, w, s, f)
        w.sub_(u)


# ---- statistics (sampled every stats_every steps, on the device) --------------------------------
def count_gated(pseudo_grads: list[Tensor], weights: list[Tensor], dip: Plasticity) -> Tensor:
    """``[gated components, sum of f over them]``: components with ``u != 0`` whose step moves
    ``w`` away from a1 (not :func:`~cl_attractors.methods.formulas.toward`), so f applies."""
    gated, f_sum = [], []
    for u, w in zip(pseudo_grads, weights):
        away = ~toward(w, u, dip.centre(w)) & (u != 0)
        gated.append(away.sum(dtype=torch.float32))
        f_sum.append(torch.where(away, dip.f(w), 0.0).sum())
    return torch.stack([torch.stack(gated).sum(), torch.stack(f_sum).sum()])


def grad_stats(grads: list[Tensor], params: list[Tensor], zeta: Scalar, dip: Plasticity) -> Tensor:
    """:func:`count_gated` of the gradient the gate sees: ``g + l1_grad(w, zeta)`` at ``w``."""
    return count_gated(
        [g + l1_grad(w, zeta) if nonzero(zeta) else g for g, w in zip(grads, params)], params, dip
    )


def update_stats(
    params: list[Tensor], olds: list[Tensor], lr_zetas: Sequence[Scalar], dip: Plasticity
) -> Tensor:
    """:func:`count_gated` of the update gate's pseudo-gradient ``old - w + l1_grad(old, lr zeta)``."""
    pseudo = [o - w + l1_grad(o, lz) if nonzero(lz) else o - w for w, o, lz in zip(params, olds, lr_zetas)]
    return count_gated(pseudo, olds, dip)
