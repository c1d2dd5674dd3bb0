"""The once-per-task importances of EWC (diagonal Fisher) and MAS for R replicas at once.

The single-run estimators (``methods/importance.py``) use, for Linear layers, the identity
``sum_i w_i reduce(d_i a_i^T) = (w * reduce(d))^T reduce(a)``: output gradient ``d_i`` and input
``a_i`` of each sample. A :class:`~cl_attractors.replicas.stacked.StackedMLP` applies it per
replica with one ``bmm``: each replica's importance from its own samples ``x[r]``, in one
forward and one backward for all of them. On a family that masks outputs per task, each replica
uses its own mask ``[R, outputs]`` (the same pure maps as a single run: ``counted_logits``,
``counted_squared_norm``, ``counted_classes``), so a replica still equals its single run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from cl_attractors.methods.importance import (
    LINEAR_ROWS,
    REDUCERS,
    counted_classes,
    counted_logits,
    counted_squared_norm,
)
from cl_attractors.replicas.stacked import StackedLinear, StackedMLP


def stacked_weighted_grads(
    net: StackedMLP,
    x: Tensor,
    targets: tuple[Tensor, ...],
    summed_loss: Callable[..., Tensor],
    weights: Tensor,
    reduce: Literal["square", "abs"],
) -> list[Tensor]:
    """Per replica ``r``: ``sum_i weights[r, i] * reduce(g_ri)``, ``g_ri`` the gradient of sample
    ``i``'s loss in replica ``r``; one tensor per stacked parameter (``net.stacked_parameters()``).

    Args:
        net: the stacked network.
        x: inputs ``[R, n, ...]``.
        targets: per-sample targets ``[R, n]`` passed to ``summed_loss`` after the outputs.
        summed_loss: ``summed_loss(outputs [R, n, C], *targets)``: the sum of every per-sample loss.
        weights: ``[R, n]``.
        reduce: ``"square"`` (Fisher) or ``"abs"`` (MAS).
    """
    f = REDUCERS[reduce]
    params = net.stacked_parameters()
    out = [torch.zeros_like(p) for p in params]
    index = {id(p): i for i, p in enumerate(params)}
    linears = net.linears()
    for xc, *tc, wc in zip(
        x.split(LINEAR_ROWS, 1), *(t.split(LINEAR_ROWS, 1) for t in targets), weights.split(LINEAR_ROWS, 1)
    ):
        for layer, (a, d) in zip(linears, _inputs_and_output_grads(net, linears, xc, tc, summed_loss)):
            dw = f(d) * wc[..., None]
            out[index[id(layer.weight)]] += torch.bmm(dw.transpose(1, 2), f(a))
            if layer.bias is not None:
                out[index[id(layer.bias)]] += dw.sum(1, keepdim=True)
    return out


def _inputs_and_output_grads(
    net: StackedMLP,
    linears: list[StackedLinear],
    x: Tensor,
    targets: list[Tensor],
    summed_loss: Callable[..., Tensor],
) -> list[tuple[Tensor, Tensor]]:
    """Each stacked layer's input ``[R, n, in]`` and the summed loss's gradient at its output."""
    seen: dict[StackedLinear, tuple[Tensor, Tensor]] = {}

    def record(module: torch.nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        assert isinstance(module, StackedLinear)
        seen[module] = (inputs[0].detach(), output)

    handles = [m.register_forward_hook(record) for m in linears]
    try:
        with torch.enable_grad():
            loss = summed_loss(net(x), *targets)
            grads = torch.autograd.grad(loss, [seen[m][1] for m in linears], materialize_grads=True)
    finally:
        for handle in handles:
            handle.remove()
    return [(seen[m][0], g.detach()) for m, g in zip(linears, grads, strict=True)]


def _per_replica(masks: Tensor | None) -> Tensor | None:
    """``[R, outputs]`` masks as ``[R, 1, outputs]``, broadcast over each replica's rows."""
    return None if masks is None else masks[:, None, :]


def fisher_diagonals(
    net: StackedMLP, x: Tensor, y: Tensor, estimator: str, batch_size: int = 50, masks: Tensor | None = None
) -> list[Tensor]:
    """Each replica's diagonal Fisher on its own samples ``x [R, n, ...]``, ``y [R, n]``:
    ``importance.fisher_diagonal``'s estimators (``empirical``, ``true``, ``batched``), on each
    replica's counted outputs (``masks``: bool ``[R, outputs]``; None: all)."""
    r, n = y.shape
    counted = _per_replica(masks)

    def summed(out: Tensor, yb: Tensor) -> Tensor:
        return F.cross_entropy(counted_logits(out, counted).flatten(0, 1), yb.flatten(), reduction="sum")

    if estimator == "batched":
        return _batched_fisher(net, x, y, batch_size, counted)
    if estimator == "true":
        with torch.no_grad():
            probs = torch.softmax(counted_logits(net(x), counted), dim=-1)
        outputs = probs.shape[-1]
        classes = (
            torch.arange(outputs, device=y.device).expand(r, outputs)
            if masks is None
            else counted_classes(masks)
        )
        k = classes.shape[1]
        x = x.repeat_interleave(k, dim=1)
        y = classes.repeat(1, n)
        weights = probs.gather(-1, classes[:, None, :].expand(r, n, k)).reshape(r, -1) / n
    else:
        weights = torch.full((r, n), 1.0 / n, device=x.device, dtype=net.stacked_parameters()[0].dtype)
    return stacked_weighted_grads(net, x, (y,), summed, weights, "square")


def mas_importances(net: StackedMLP, x: Tensor, masks: Tensor | None = None) -> list[Tensor]:
    """Each replica's MAS importance ``mean_i |d ||f(x_ri)||^2 / d theta|`` on its own inputs, the
    norm over its counted outputs (``masks``: bool ``[R, outputs]``; None: all)."""
    r, n = x.shape[:2]
    weights = torch.full((r, n), 1.0 / n, device=x.device, dtype=net.stacked_parameters()[0].dtype)
    counted = _per_replica(masks)
    return stacked_weighted_grads(net, x, (), lambda out: counted_squared_norm(out, counted), weights, "abs")


def _batched_fisher(
    net: StackedMLP, x: Tensor, y: Tensor, batch_size: int, counted: Tensor | None
) -> list[Tensor]:
    """Mean over full mini-batches of each replica's squared mini-batch gradient."""
    batches = y.shape[1] // batch_size
    params = net.stacked_parameters()
    out = [torch.zeros_like(p) for p in params]
    with torch.enable_grad():
        for b in range(batches):
            sl = slice(b * batch_size, (b + 1) * batch_size)
            out_b = counted_logits(net(x[:, sl]), counted)
            loss = F.cross_entropy(out_b.flatten(0, 1), y[:, sl].flatten(), reduction="none")
            grads = torch.autograd.grad(loss.view(len(y), -1).mean(1).sum(), params)
            torch._foreach_addcmul_(out, grads, grads, value=1.0 / batches)
    return out
