"""Pure tensor maths of the CL methods: plasticity, away-mask, Fisher diagonals, quadratic pulls, SI.

Reference implementations, written for clarity and used by the tests; the per-step hot path lives
in :mod:`cl_attractors.methods.kernels`. No Lightning import here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

FisherEstimator = Literal["empirical", "true", "batched"]
FISHER_ESTIMATORS: tuple[str, ...] = ("empirical", "true", "batched")


def plasticity(w: Tensor, a1: float, lam: float, gamma: float, f_min: float = 0.0) -> Tensor:
    """The weight-dependent learning-rate multiplier f (paper Eq. 1, with an optional floor).

    ``f(w) = f_min + (lam - f_min) * (1 - exp(-gamma * (w - a1)^2))``; ``f_min = 0`` gives the
    paper's ``-lam * exp(-gamma (w - a1)^2) + lam``.

    Args:
        w: weights.
        a1: centre of the dip (the attractor).
        lam: the plateau value far from the dip.
        gamma: width parameter of the dip (larger = narrower).
        f_min: the value at the bottom of the dip (Discussion section's extension).
    """
    return f_min + (lam - f_min) * (1.0 - torch.exp(-gamma * (w - a1) ** 2))


def away_mask(w: Tensor, g: Tensor, a1: float) -> Tensor:
    """Algorithm 1's test ``sgn(w - a1) != sgn(g)``: the descent step ``-g`` moves away from a1.

    At ``w == a1`` exactly with ``g != 0`` the test says "away" (so ``f(a1)`` applies); with
    ``g == 0`` the result does not matter since the gradient is zero.

    Args:
        w: weights.
        g: gradients, same shape.
        a1: the attractor.
    """
    return torch.sign(w - a1) != torch.sign(g)


def sticky_multiplier(
    w: Tensor, g: Tensor, a1: float, lam: float, gamma: float, f_min: float = 0.0
) -> Tensor:
    """The per-component multiplier of Algorithm 1: ``f(w)`` where the gradient is away, else 1.

    Args:
        w: weights.
        g: gradients (including the L1 term when it is part of the gradient).
        a1: the attractor.
        lam: plateau of f.
        gamma: width parameter of f.
        f_min: floor of f.
    """
    f = plasticity(w, a1, lam, gamma, f_min)
    return torch.where(away_mask(w, g, a1), f, torch.ones_like(f))


def quadratic_pull_grad(theta: Tensor, anchor_sum: Tensor, weight_sum: Tensor, scale: float = 1.0) -> Tensor:
    """Gradient of ``scale/2 * sum_k F_k (theta - theta*_k)^2`` from accumulated sums.

    Since the gradient is ``scale * sum_k F_k (theta - theta*_k)``, keeping
    ``weight_sum = sum_k F_k`` and ``anchor_sum = sum_k F_k * theta*_k`` makes it O(1) in the
    number of tasks: ``scale * (weight_sum * theta - anchor_sum)``.

    Args:
        theta: current parameters.
        anchor_sum: ``sum_k F_k * theta*_k``.
        weight_sum: ``sum_k F_k``.
        scale: the penalty strength (EWC's lambda; ``2c`` for SI).
    """
    return scale * (weight_sum * theta - anchor_sum)


def si_path_step(omega: Tensor, g: Tensor, delta: Tensor) -> Tensor:
    """One step of SI's path integral: ``omega - g * delta`` (Zenke et al., 2017).

    Args:
        omega: running per-parameter contribution to the loss decrease in this task.
        g: the unregularised gradient used at this step.
        delta: the actual parameter change of this step.
    """
    return omega - g * delta


def si_consolidate(big_omega: Tensor, omega: Tensor, task_delta: Tensor, xi: float) -> Tensor:
    """SI's importance after a task: ``Omega + omega / (task_delta^2 + xi)``.

    Args:
        big_omega: importance accumulated over previous tasks.
        omega: the task's path integral.
        task_delta: parameter change over the whole task.
        xi: damping (keeps the ratio bounded when a parameter barely moved).
    """
    return big_omega + omega / (task_delta**2 + xi)


def si_penalty_grad(theta: Tensor, anchor: Tensor, big_omega: Tensor, c: float) -> Tensor:
    """Gradient ``2c * Omega * (theta - anchor)`` of SI's penalty ``c * sum Omega (theta - anchor)^2``.

    Args:
        theta: current parameters.
        anchor: parameters at the end of the previous task.
        big_omega: importance.
        c: penalty strength.
    """
    return 2.0 * c * big_omega * (theta - anchor)


def fisher_diagonal(
    model: nn.Module,
    params: dict[str, Tensor],
    x: Tensor,
    y: Tensor,
    estimator: FisherEstimator,
    chunk_size: int = 32,
    batch_size: int = 50,
) -> dict[str, Tensor]:
    """Diagonal Fisher information of a classifier (cross-entropy on its logits).

    * ``empirical``: mean over samples of the squared per-sample gradient at the true label.
    * ``true``: mean over samples of ``sum_c p_c(x) g_c(x)^2``, exact over the classes.
    * ``batched``: mean over mini-batches of ``batch_size`` of the squared *mini-batch* gradient.
      Its scale differs: ``E[g_B^2] = mean(g)^2 + Var(g)/B``, roughly ``1/B`` of the empirical
      Fisher when per-sample gradients are noise-dominated (so EWC's lambda must grow by ~B).

    Per-sample gradients come from ``vmap(grad(...))`` over chunks of ``chunk_size`` rows (the
    loop is over chunks, bounding memory to ``chunk_size`` copies of the parameters).

    Args:
        model: the network (logits out).
        params: name -> parameter of ``model`` for the parameters to estimate (others stay fixed).
        x: inputs ``[n, ...]``.
        y: integer labels ``[n]``.
        estimator: ``empirical``, ``true`` or ``batched``.
        chunk_size: rows per vmap chunk.
        batch_size: mini-batch size of the ``batched`` estimator (the remainder is dropped).
    """
    detached = {k: v.detach() for k, v in params.items()}
    if estimator == "batched":
        return _batched_fisher(model, detached, x, y, batch_size)
    n = len(y)
    if estimator == "true":
        with torch.no_grad():
            probs = torch.softmax(functional_call(model, detached, (x,)), dim=-1)
        classes = probs.shape[1]
        x = x.repeat_interleave(classes, dim=0)
        y = torch.arange(classes, device=y.device).repeat(n)
        weights = probs.reshape(-1) / n
    elif estimator == "empirical":
        weights = torch.full((n,), 1.0 / n, device=x.device, dtype=x.dtype)
    else:
        raise ValueError(f"method.fisher={estimator!r} is not allowed; use one of {FISHER_ESTIMATORS}")
    return _weighted_squared_grads(model, detached, x, y, weights, chunk_size)


def _sample_loss(model: nn.Module) -> Callable[[dict[str, Tensor], Tensor, Tensor], Tensor]:
    """Cross-entropy of one sample, as a function of the parameters (for ``grad``)."""

    def loss(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(model, params, (x.unsqueeze(0),)), y.unsqueeze(0))

    return loss


def _weighted_squared_grads(
    model: nn.Module, params: dict[str, Tensor], x: Tensor, y: Tensor, weights: Tensor, chunk_size: int
) -> dict[str, Tensor]:
    """``sum_i weights_i * g_i^2`` over per-sample gradients ``g_i``."""
    per_sample = vmap(grad(_sample_loss(model)), in_dims=(None, 0, 0))
    out = {k: torch.zeros_like(v) for k, v in params.items()}
    for xs, ys, ws in zip(x.split(chunk_size), y.split(chunk_size), weights.split(chunk_size)):
        grads = per_sample(params, xs, ys)
        for k, g in grads.items():
            out[k] += torch.tensordot(ws, g.square(), dims=1)
    return out


def _batched_fisher(
    model: nn.Module, params: dict[str, Tensor], x: Tensor, y: Tensor, batch_size: int
) -> dict[str, Tensor]:
    """Mean over full mini-batches of the squared mini-batch gradient."""
    batches = len(y) // batch_size
    if batches < 1:
        raise ValueError(
            f"method.fisher_samples={len(y)} is not allowed with the batched Fisher; "
            f"use at least one batch ({batch_size})"
        )

    def batch_loss(p: dict[str, Tensor], xb: Tensor, yb: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(model, p, (xb,)), yb)

    xb = x[: batches * batch_size].reshape(batches, batch_size, *x.shape[1:])
    yb = y[: batches * batch_size].reshape(batches, batch_size)
    grads = vmap(grad(batch_loss), in_dims=(None, 0, 0))(params, xb, yb)
    return {k: g.square().mean(0) for k, g in grads.items()}
