"""EWC's Fisher and MAS's importance on the outputs a task's loss counts (a head per task, the
classes seen so far): the pure maps on tiny tensors, then every estimator on a 2-head toy against
values worked by hand, the fast path against the definition, and the replica forms per replica."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cl_attractors.methods.importance import (
    counted_classes,
    counted_logits,
    counted_squared_norm,
    fisher_diagonal,
    mas_importance,
)
from cl_attractors.replicas.importance import fisher_diagonals, mas_importances
from cl_attractors.replicas.stacked import StackedMLP
from cl_attractors.train.networks import MLP

W = [0.5, -1.0, 2.0, 0.3]  # logits (w_c x): head 0 = outputs 0, 1; head 1 = outputs 2, 3
XS = [1.0, 2.0, -1.5]
HEAD0, HEAD1 = torch.tensor([True, True, False, False]), torch.tensor([False, False, True, True])
SEEN3 = torch.tensor([True, True, True, False])  # class-incremental: classes 0..2 seen


def test_the_pure_maps_keep_only_the_counted_outputs() -> None:
    out = torch.tensor([[1.0, -2.0, 3.0, 0.5], [0.0, 1.0, -1.0, 2.0]])
    assert counted_logits(out, None) is out
    assert counted_logits(out, HEAD1).tolist() == [
        [-torch.inf, -torch.inf, 3.0, 0.5],
        [-torch.inf, -torch.inf, -1.0, 2.0],
    ]
    assert counted_squared_norm(out, None).item() == 1 + 4 + 9 + 0.25 + 0 + 1 + 1 + 4
    assert counted_squared_norm(out, HEAD1).item() == 9 + 0.25 + 1 + 4
    assert counted_classes(SEEN3).tolist() == [0, 1, 2]
    assert counted_classes(torch.stack([HEAD0, HEAD1])).tolist() == [[0, 1], [2, 3]]  # per replica


def two_heads() -> nn.Module:
    model = nn.Linear(1, 4, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(W).unsqueeze(1))
    return model


def hand_grad(x: float, label: int, counted: Tensor) -> Tensor:
    """d CE / d w of one sample, the softmax over the counted outputs only: ``(p - onehot) x`` on
    them, 0 elsewhere."""
    rows = counted.nonzero().flatten()
    p = torch.softmax(torch.tensor(W)[rows] * x, dim=0)
    g = torch.zeros(4)
    g[rows] = (p - F.one_hot(torch.tensor(rows.tolist().index(label)), len(rows)).float()) * x
    return g


def fisher(estimator: str, y: list[int], mask: Tensor | None, fast: bool = True, **kw: int) -> Tensor:
    model = two_heads()
    x = torch.tensor(XS[: len(y)] if len(y) <= 3 else [*XS, 0.5]).unsqueeze(1)
    got = fisher_diagonal(
        model, dict(model.named_parameters()), x, torch.tensor(y), estimator, fast=fast, mask=mask, **kw
    )  # type: ignore[arg-type]
    return got["weight"].flatten()


@pytest.mark.parametrize("fast", [True, False])
def test_one_sample_on_the_second_head_by_hand(fast: bool) -> None:
    # x = 1, label 2, head 1's logits (2, 0.3): p = (1 - s, s), s = 1 / (1 + e^1.7); the gradient
    # (p - onehot) x on w2, w3 is (-s, s) at label 2, (1 - s, s - 1) at 3; head 0 (logits 0.5,
    # -1) is outside the softmax: 0. True Fisher: (1 - s) s^2 + s (1 - s)^2 = s (1 - s)
    s = 1 / (1 + torch.e**1.7)
    torch.testing.assert_close(fisher("empirical", [2], HEAD1, fast), torch.tensor([0.0, 0.0, s * s, s * s]))
    true = s * (1 - s)
    torch.testing.assert_close(fisher("true", [2], HEAD1, fast), torch.tensor([0.0, 0.0, true, true]))


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize(("mask", "labels"), [(HEAD0, [0, 1, 1]), (HEAD1, [2, 3, 2]), (SEEN3, [2, 0, 1])])
def test_empirical_fisher_on_the_counted_outputs(fast: bool, mask: Tensor, labels: list[int]) -> None:
    hand = sum(hand_grad(x, y, mask) ** 2 for x, y in zip(XS, labels)) / 3
    got = fisher("empirical", labels, mask, fast)
    torch.testing.assert_close(got, hand, rtol=1e-5, atol=0.0)  # exactly 0 outside the mask
    assert not torch.allclose(fisher("empirical", labels, None, fast), got)  # all 4: another softmax


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("mask", [HEAD1, SEEN3])
def test_true_fisher_sums_over_the_counted_classes(fast: bool, mask: Tensor) -> None:
    hand = torch.zeros(4)
    for x in XS:
        rows = mask.nonzero().flatten()
        p = torch.softmax(torch.tensor(W)[rows] * x, dim=0)
        hand += sum(p[i] * hand_grad(x, int(c), mask) ** 2 for i, c in enumerate(rows)) / 3
    torch.testing.assert_close(fisher("true", [2, 2, 2], mask, fast), hand, rtol=1e-5, atol=0.0)


def test_batched_fisher_on_the_counted_outputs() -> None:
    labels = [2, 3, 3, 2]
    b1 = (hand_grad(1.0, 2, HEAD1) + hand_grad(2.0, 3, HEAD1)) / 2
    b2 = (hand_grad(-1.5, 3, HEAD1) + hand_grad(0.5, 2, HEAD1)) / 2
    got = fisher("batched", labels, HEAD1, batch_size=2)
    torch.testing.assert_close(got, (b1**2 + b2**2) / 2, rtol=1e-5, atol=0.0)


@pytest.mark.parametrize("fast", [True, False])
def test_mas_importance_on_the_counted_outputs(fast: bool) -> None:
    # ||f(x)||^2 over head 1 = (2 x)^2 + (0.3 x)^2: |d/dw| = 2 |w| x^2 on w2, w3, 0 on head 0
    model, x = two_heads(), torch.tensor(XS).unsqueeze(1)
    got = mas_importance(model, dict(model.named_parameters()), x, chunk_size=2, fast=fast, mask=HEAD1)
    m = sum(x * x for x in XS) / 3
    torch.testing.assert_close(got["weight"].flatten(), torch.tensor([0.0, 0.0, 4 * m, 0.6 * m]))


@pytest.mark.parametrize("estimator", ["empirical", "true", "batched", "mas"])
def test_the_fast_path_takes_the_mask_and_equals_the_definition(estimator: str) -> None:
    """The mask only zeroes output-gradient columns, so the Linear-layer identity holds: no
    fallback to the definition for masked families."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 4))
    x, y = torch.randn(12, 5), torch.tensor([2, 3] * 6)
    params = dict(net.named_parameters())
    if estimator == "mas":
        fast, slow = (mas_importance(net, params, x, 4, fast=f, mask=HEAD1) for f in (True, False))
    else:
        kw = {"chunk_size": 4, "batch_size": 4, "mask": HEAD1}
        fast, slow = (fisher_diagonal(net, params, x, y, estimator, fast=f, **kw) for f in (True, False))  # type: ignore[arg-type]
    for k in params:
        torch.testing.assert_close(fast[k], slow[k], rtol=1e-4, atol=1e-7)
    assert float(fast["2.weight"][:2].abs().sum()) == 0.0  # head 0's read-out: not counted


R, N = 2, 40
MASKS = torch.stack([HEAD1, HEAD0])  # each replica its own head (the same count)


def replicas() -> tuple[list[nn.Sequential], StackedMLP, Tensor, Tensor]:
    nets = []
    for r in range(R):
        torch.manual_seed(r)
        nets.append(MLP(3, [5], 4).double())
    g = torch.Generator().manual_seed(3)
    x = torch.randn(R, N, 3, dtype=torch.float64, generator=g)
    y = torch.stack([torch.randint(2, 4, (N,), generator=g), torch.randint(0, 2, (N,), generator=g)])
    return nets, StackedMLP(nets), x, y


@pytest.mark.parametrize("estimator", ["empirical", "true", "batched", "mas"])
def test_each_replica_uses_its_own_mask_as_its_single_run(estimator: str) -> None:
    nets, stacked, x, y = replicas()
    if estimator == "mas":
        batched = mas_importances(stacked, x, MASKS)
        single = [
            mas_importance(n, dict(n.named_parameters()), x[r], mask=MASKS[r]) for r, n in enumerate(nets)
        ]
    else:
        batched = fisher_diagonals(stacked, x, y, estimator, batch_size=10, masks=MASKS)
        single = [
            fisher_diagonal(
                n, dict(n.named_parameters()), x[r], y[r], estimator, batch_size=10, mask=MASKS[r]
            )  # type: ignore[arg-type]
            for r, n in enumerate(nets)
        ]
    for r, expected in enumerate(single):
        for name, shape, value in zip(stacked.names, stacked.shapes, batched):
            torch.testing.assert_close(value[r].reshape(shape), expected[name], rtol=1e-10, atol=1e-14)
