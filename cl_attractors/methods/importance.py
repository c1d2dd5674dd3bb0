"""Importance estimators, run once per task: the diagonal Fisher (EWC) and MAS's output
sensitivity, each a weighted sum over samples of a function of per-sample gradients.

The definition (:func:`_weighted_grads`) takes per-sample gradients with ``vmap(grad(...))``, for
any network. Its fast twin (:func:`_linear_weighted_grads`) uses the identity behind it for
``nn.Linear`` layers applied once to a batch of vectors: the per-sample gradient of a weight is the
outer product ``g_i = d_i a_i^T`` (output gradient, input), and for ``reduce`` = square or abs,
``reduce(d_i a_i^T) = reduce(d_i) reduce(a_i)^T``, so ``sum_i w_i reduce(g_i)`` is one matrix
product; no per-sample copy of the parameters is ever made. The estimators use it whenever it
applies and the definition otherwise; the tests hold the two equal.

On a family that masks outputs per task (a head per task, the classes seen so far), each
estimator takes the task's mask and uses only the outputs its training loss counts
(:func:`counted_logits`, :func:`counted_squared_norm`): the mask is the same for every sample, so
it only zeroes columns of the output gradient ``d_i`` and the identity still holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

REDUCERS: dict[str, Callable[[Tensor], Tensor]] = {"square": torch.square, "abs": torch.abs}
LINEAR_ROWS = 1024  # rows per pass of the fast path (bounds the activations kept)


FisherEstimator = Literal["empirical", "true", "batched"]
FISHER_ESTIMATORS: tuple[str, ...] = ("empirical", "true", "batched")


def counted_logits(out: Tensor, counted: Tensor | None) -> Tensor:
    """``out`` with the outputs that do not count at ``-inf``, as the module masks its logits in
    training (a softmax of them spans the counted outputs only). ``counted``: bool, broadcast
    against ``out`` (``[outputs]``; a replica group's ``[R, 1, outputs]``); None: all count."""
    return out if counted is None else out.masked_fill(~counted, -torch.inf)


def counted_squared_norm(out: Tensor, counted: Tensor | None) -> Tensor:
    """``sum_i ||f(x_i)||_2^2`` over the rows of ``out`` and its counted outputs only (MAS's
    function of the outputs); ``counted`` as in :func:`counted_logits`."""
    return (out if counted is None else out.masked_fill(~counted, 0.0)).square().sum()


def counted_classes(counted: Tensor) -> Tensor:
    """The indices of the counted outputs of each row of ``counted`` (bool ``[..., outputs]``),
    ascending: ``[..., k]`` (every row counts ``k``: the replicas of a group share their family's
    masks); the classes the true Fisher sums over."""
    return counted.nonzero()[:, -1].view(*counted.shape[:-1], -1)


def fisher_diagonal(
    model: nn.Module,
    params: dict[str, Tensor],
    x: Tensor,
    y: Tensor,
    estimator: FisherEstimator,
    chunk_size: int = 32,
    batch_size: int = 50,
    fast: bool = True,
    mask: Tensor | None = None,
) -> dict[str, Tensor]:
    """Diagonal Fisher information of a classifier (cross-entropy on its logits).

    * ``empirical``: mean over samples of the squared per-sample gradient at the true label.
    * ``true``: mean over samples of ``sum_c p_c(x) g_c(x)^2``, exact over the classes.
    * ``batched``: mean over mini-batches of ``batch_size`` of the squared *mini-batch* gradient.
      Its scale differs: ``E[g_B^2] = mean(g)^2 + Var(g)/B``, roughly ``1/B`` of the empirical
      Fisher when per-sample gradients are noise-dominated (so EWC's lambda must grow by ~B).

    Per-sample gradients come from ``vmap(grad(...))`` over chunks of ``chunk_size`` rows (the
    loop is over chunks, bounding memory to ``chunk_size`` copies of the parameters), or, with
    ``fast`` and a network of row-wise layers (Linear and activations), from the outer-product
    identity of the module docstring.

    Args:
        model: the network (logits out).
        params: name -> parameter of ``model`` for the parameters to estimate (others stay fixed).
        x: inputs ``[n, ...]``.
        y: integer labels ``[n]``.
        estimator: ``empirical``, ``true`` or ``batched``.
        chunk_size: rows per vmap chunk.
        batch_size: mini-batch size of the ``batched`` estimator (the remainder is dropped).
        fast: use the Linear-layer identity where it applies (same values up to float rounding).
        mask: bool ``[outputs]``, the outputs the task's training loss counts: the log-softmax
            spans only them (the others ``-inf``, as the module masks its logits), and ``true``
            sums over them; None: all.
    """
    detached = {k: v.detach() for k, v in params.items()}
    if estimator == "batched":
        return _batched_fisher(model, detached, x, y, batch_size, mask)
    n = len(y)
    if estimator == "true":
        with torch.no_grad():
            probs = torch.softmax(counted_logits(functional_call(model, detached, (x,)), mask), dim=-1)
        classes = torch.arange(probs.shape[1], device=y.device) if mask is None else counted_classes(mask)
        x = x.repeat_interleave(len(classes), dim=0)
        y = classes.repeat(n)
        weights = probs[:, classes].reshape(-1) / n
    elif estimator == "empirical":
        weights = torch.full((n,), 1.0 / n, device=x.device, dtype=x.dtype)
    else:
        raise ValueError(f"method.fisher={estimator!r} is not allowed; use one of {FISHER_ESTIMATORS}")

    def loss(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        out = functional_call(model, p, (xi.unsqueeze(0),))
        return F.cross_entropy(counted_logits(out, mask), yi.unsqueeze(0))

    def summed(out: Tensor, yb: Tensor) -> Tensor:
        return F.cross_entropy(counted_logits(out, mask), yb, reduction="sum")

    if fast and (linear := _linear_weighted_grads(model, detached, x, (y,), summed, weights, "square")):
        return linear
    return _weighted_grads(loss, detached, (x, y), weights, chunk_size, torch.square)


def mas_importance(
    model: nn.Module,
    params: dict[str, Tensor],
    x: Tensor,
    chunk_size: int = 32,
    fast: bool = True,
    mask: Tensor | None = None,
) -> dict[str, Tensor]:
    """MAS's importance (Aljundi et al., 2018): ``mean_i |d ||f(x_i)||_2^2 / d theta|``.

    How much the squared norm of the network's output moves with each parameter, per sample,
    averaged over the samples ``x``; no labels. The norm is over the outputs the task's training
    loss counts (``mask``).

    Args:
        model: the network (its output ``f(x)``: the logits).
        params: name -> parameter of ``model`` for the parameters to estimate (others stay fixed).
        x: inputs ``[n, ...]``.
        chunk_size: rows per vmap chunk of per-sample gradients.
        fast: use the Linear-layer identity where it applies (same values up to float rounding).
        mask: bool ``[outputs]``, the outputs the task's training loss counts; None: all.
    """

    def squared_norm(p: dict[str, Tensor], xi: Tensor) -> Tensor:
        return counted_squared_norm(functional_call(model, p, (xi.unsqueeze(0),)), mask)

    weights = torch.full((len(x),), 1.0 / len(x), device=x.device, dtype=x.dtype)
    detached = {k: v.detach() for k, v in params.items()}

    def summed(out: Tensor) -> Tensor:
        return counted_squared_norm(out, mask)

    if fast and (linear := _linear_weighted_grads(model, detached, x, (), summed, weights, "abs")):
        return linear
    return _weighted_grads(squared_norm, detached, (x,), weights, chunk_size, torch.abs)


def _weighted_grads(
    loss: Callable[..., Tensor],
    params: dict[str, Tensor],
    rows: tuple[Tensor, ...],
    weights: Tensor,
    chunk_size: int,
    reduce: Callable[[Tensor], Tensor],
) -> dict[str, Tensor]:
    """``sum_i weights_i * reduce(g_i)`` over the per-sample gradients ``g_i`` of
    ``loss(params, *rows[:][i])``, in vmap chunks of ``chunk_size`` rows."""
    per_sample = vmap(grad(loss), in_dims=(None, *(0 for _ in rows)))
    out = {k: torch.zeros_like(v) for k, v in params.items()}
    for *chunk, ws in zip(*(t.split(chunk_size) for t in rows), weights.split(chunk_size)):
        for k, g in per_sample(params, *chunk).items():
            out[k] += torch.tensordot(ws, reduce(g), dims=1)
    return out


ROWWISE = (nn.Linear, nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.SiLU, nn.Identity)


def _linear_weighted_grads(
    model: nn.Module,
    params: dict[str, Tensor],
    x: Tensor,
    targets: tuple[Tensor, ...],
    summed_loss: Callable[..., Tensor],
    weights: Tensor,
    reduce: Literal["square", "abs"],
) -> dict[str, Tensor] | None:
    """What :func:`_weighted_grads` computes, by the outer-product identity: for ``params`` that
    are all weights and biases of ``nn.Linear`` layers, in an ``nn.Sequential`` of row-wise
    layers only (each sample's output depends on its own row), each run once on 2-D inputs.
    ``summed_loss(output, *targets)`` is the sum of the per-sample losses. None where the
    identity does not apply (the caller then uses the definition)."""
    owners = _linear_owners(model, params)
    if owners is None:
        return None
    f = REDUCERS[reduce]
    out = {k: torch.zeros_like(v) for k, v in params.items()}
    for xc, *tc, wc in zip(
        x.split(LINEAR_ROWS), *(t.split(LINEAR_ROWS) for t in targets), weights.split(LINEAR_ROWS)
    ):
        layers = _inputs_and_output_grads(model, params, list(owners), xc, tc, summed_loss)
        if layers is None:
            return None
        for layer, (a, d) in layers.items():
            dw = f(d) * wc[:, None]
            names = owners[layer]
            if "weight" in names:
                out[names["weight"]] += dw.T @ f(a)
            if "bias" in names:
                out[names["bias"]] += dw.sum(0)
    return out


def _linear_owners(model: nn.Module, params: dict[str, Tensor]) -> dict[nn.Module, dict[str, str]] | None:
    """Each Linear layer holding some of ``params``: its ``weight``/``bias`` -> the parameter's
    name; None unless every parameter is a Linear layer's and the network is ``nn.Sequential``
    containers of row-wise layers only (another container's forward could mix the rows)."""
    modules = list(model.modules())
    if not all(isinstance(m, nn.Sequential if list(m.children()) else ROWWISE) for m in modules):
        return None
    owners: dict[nn.Module, dict[str, str]] = {}
    for prefix, module in model.named_modules():
        for local, _ in module.named_parameters(recurse=False):
            name = f"{prefix}.{local}" if prefix else local
            if name in params and isinstance(module, nn.Linear):
                owners.setdefault(module, {})[local] = name
    return owners if sum(map(len, owners.values())) == len(params) else None


def _inputs_and_output_grads(
    model: nn.Module,
    params: dict[str, Tensor],
    layers: list[nn.Module],
    x: Tensor,
    targets: list[Tensor],
    summed_loss: Callable[..., Tensor],
) -> dict[nn.Module, tuple[Tensor, Tensor]] | None:
    """Each layer's input ``a`` and the gradient ``d`` of the summed loss at its output (one row
    per sample); None if a layer ran other than once, or on other than 2-D inputs."""
    seen: dict[nn.Module, list[tuple[Tensor, Tensor]]] = {m: [] for m in layers}

    def record(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        seen[module].append((inputs[0].detach(), output))

    handles = [m.register_forward_hook(record) for m in layers]
    try:
        with torch.enable_grad():
            live = {k: v.detach().requires_grad_() for k, v in params.items()}
            loss = summed_loss(functional_call(model, live, (x,)), *targets)
            if any(len(calls) != 1 or calls[0][0].dim() != 2 for calls in seen.values()):
                return None
            outputs = [seen[m][0][1] for m in layers]
            grads = torch.autograd.grad(loss, outputs, allow_unused=True, materialize_grads=True)
    finally:
        for handle in handles:
            handle.remove()
    return {m: (seen[m][0][0], g.detach()) for m, g in zip(layers, grads, strict=True)}


def _batched_fisher(
    model: nn.Module, params: dict[str, Tensor], x: Tensor, y: Tensor, batch_size: int, mask: Tensor | None
) -> dict[str, Tensor]:
    """Mean over full mini-batches of the squared mini-batch gradient (on the counted outputs)."""
    batches = len(y) // batch_size
    if batches < 1:
        raise ValueError(
            f"method.fisher_samples={len(y)} is not allowed with the batched Fisher; "
            f"use at least one batch ({batch_size})"
        )

    def batch_loss(p: dict[str, Tensor], xb: Tensor, yb: Tensor) -> Tensor:
        return F.cross_entropy(counted_logits(functional_call(model, p, (xb,)), mask), yb)

    xb = x[: batches * batch_size].reshape(batches, batch_size, *x.shape[1:])
    yb = y[: batches * batch_size].reshape(batches, batch_size)
    grads = vmap(grad(batch_loss), in_dims=(None, 0, 0))(params, xb, yb)
    return {k: g.square().mean(0) for k, g in grads.items()}
