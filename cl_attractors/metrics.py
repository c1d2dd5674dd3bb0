"""Pure functions of the accuracy matrix A.

``A[i, j]`` is the accuracy on task ``i`` after training task ``j`` (rows = evaluated task,
columns = training stage), for every ``i`` including ``i > j``. Columns not yet filled are NaN.
No Lightning here: every summary is a plain tensor function tested on hand-written matrices.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _check_square(A: Tensor) -> int:
    if A.dim() != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
        raise ValueError(f"accuracy matrix must be square N x N with N >= 1, got shape {tuple(A.shape)}")
    return A.shape[0]


def avg_acc_seen(A: Tensor) -> Tensor:
    """Mean accuracy over tasks ``0..j`` after training task ``j``, for every ``j`` (length N)."""
    n = _check_square(A)
    seen = torch.triu(torch.ones(n, n, dtype=torch.bool))  # seen[i, j] = i <= j
    return (A.double() * seen).sum(0).div(seen.sum(0)).to(A.dtype)


def avg_acc_previous(A: Tensor) -> Tensor:
    """Mean accuracy over tasks ``0..j-1`` after training task ``j`` (NaN for ``j = 0``)."""
    n = _check_square(A)
    prev = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)  # prev[i, j] = i < j
    counts = prev.sum(0).double()
    out = (A.double() * prev).sum(0) / counts
    out[counts == 0] = math.nan
    return out.to(A.dtype)


def current_acc(A: Tensor) -> Tensor:
    """Accuracy on task ``j`` right after training it: the diagonal."""
    _check_square(A)
    return A.diagonal().clone()


def bwt(A: Tensor) -> float:
    """Backward transfer: mean over ``i < N-1`` of ``A[i, N-1] - A[i, i]`` (NaN for N = 1)."""
    n = _check_square(A)
    if n == 1:
        return math.nan
    return float((A[:-1, -1] - A.diagonal()[:-1]).double().mean())


def forgetting(A: Tensor) -> float:
    """Average forgetting: mean over ``i < N-1`` of ``max_{i <= j < N-1} A[i, j] - A[i, N-1]``."""
    n = _check_square(A)
    if n == 1:
        return math.nan
    best = torch.stack([A[i, i : n - 1].max() for i in range(n - 1)])
    return float((best - A[:-1, -1]).double().mean())


def fwt(A: Tensor, initial: Tensor | None) -> float:
    """Forward transfer: mean over ``i >= 1`` of ``A[i, i-1] - initial[i]``.

    ``initial[i]`` is the accuracy on task ``i`` of the untrained network; without it, or for
    N = 1, forward transfer is undefined and NaN is returned.
    """
    n = _check_square(A)
    if initial is None or n == 1:
        return math.nan
    return float((A.diagonal(offset=-1) - initial[1:]).double().mean())


def fwt_independent(A: Tensor, independent: Tensor) -> float:
    """Forward transfer against the ``independent`` reference run (a fresh network per task):
    mean over ``i >= 1`` of ``A[i, i] - independent[i, i]``, how much better task ``i`` is learnt
    after the tasks before it than from scratch with the same steps (NaN for N = 1).

    :func:`fwt` (Lopez-Paz & Ranzato's, in every run's metrics.json) measures instead what the
    earlier tasks give task ``i`` *before* training on it, against the untrained network."""
    n = _check_square(A)
    if independent.shape != A.shape:
        raise ValueError(f"reference matrix has shape {tuple(independent.shape)}, expected {tuple(A.shape)}")
    if n == 1:
        return math.nan
    return float((A.diagonal()[1:] - independent.diagonal()[1:]).double().mean())


def eq2(A: Tensor) -> float:
    """The paper's meta-objective (Eq. 2), with its normalisation exactly as printed.

    ``sum_{j=1..N} log(j)/j * sum_{i=1..j} A(i, j)  /  (N * sum_{j=1..N} log(j))``.
    Its maximum is ``1/N`` (all accuracies 1): the printed ``N`` in the denominator scales the
    log-weighted mean of the seen-task averages down by ``N``; see :func:`eq2_weighted_mean`.
    For N = 1 the printed formula is 0/0; we return ``A(1, 1)``, the limit in which the single
    column carries all the weight (the same convention as ``N * eq2 = weighted mean``).
    """
    n = _check_square(A)
    return eq2_weighted_mean(A) / n


def eq2_weighted_mean(A: Tensor) -> float:
    """``N * eq2(A)``: the log(j)-weighted mean over j of the mean accuracy on tasks seen, in [0, 1]."""
    n = _check_square(A)
    if n == 1:
        return float(A[0, 0])
    j = torch.arange(1, n + 1, dtype=torch.float64)
    w = torch.log(j)
    return float((w * avg_acc_seen(A.double())).sum() / w.sum())


def filled_columns(A: Tensor | None) -> int:
    """Number of leading columns of A that hold no NaN (tasks evaluated so far)."""
    if A is None:
        return 0
    full = (~A.isnan()).all(0).tolist()
    return full.index(False) if False in full else len(full)


def eq2_so_far(A: Tensor) -> float:
    """Eq. 2's numerator summed over the evaluated columns of A, over its full denominator.

    ``sum_{j <= k} log(j) * mean_{i <= j} A(i, j) / (N * sum_{j <= N} log(j))`` after k tasks:
    non-decreasing in k and equal to :func:`eq2` once all N tasks are evaluated. The
    pruner needs this form: Optuna's median pruner compares a trial's *best* value so far with
    the others' values at the current step, and the partial Eq. 2 (``cl/eq2``, renormalised by
    the k tasks done) falls as tasks accumulate, so its best is always its first report and no
    trial would ever be pruned.
    """
    n, done = A.shape[0], filled_columns(A)
    if done == 0:
        return 0.0
    if n == 1 or done == n:
        return eq2(A[:done, :done])
    w = torch.log(torch.arange(1, n + 1, dtype=torch.float64))
    seen = avg_acc_seen(A[:done, :done].double())
    return float((w[:done] * seen).sum() / (n * w.sum()))


def summarize(A: Tensor, initial: Tensor | None = None) -> dict:
    """Every summary of a complete matrix, as plain Python numbers (JSON-ready)."""

    def as_list(t: Tensor) -> list[float | None]:
        return [None if math.isnan(v) else v for v in t.double().tolist()]

    def num(v: float) -> float | None:
        return None if math.isnan(v) else v

    return {
        "num_tasks": A.shape[0],
        "avg_acc_seen": as_list(avg_acc_seen(A)),
        "avg_acc_previous": as_list(avg_acc_previous(A)),
        "current_acc": as_list(current_acc(A)),
        "final_avg_acc": float(avg_acc_seen(A)[-1]),
        "bwt": num(bwt(A)),
        "forgetting": num(forgetting(A)),
        "fwt": num(fwt(A, initial)),
        "eq2": eq2(A),
        "eq2_weighted_mean": eq2_weighted_mean(A),
    }
