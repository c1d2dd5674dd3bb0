"""The comparison set's formulas (LwF, A-GEM, metaplasticity, the episodic memory, L2's pull)
against values worked out by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cl_attractors.methods.baseline_formulas import (
    agem_project,
    agem_project_,
    class_balanced_order,
    distillation_loss,
    distillation_over_heads,
    kept_rows,
    masked_cross_entropy,
    metaplastic_,
    metaplastic_gate,
    metaplastic_multiplier,
    task_quotas,
)
from cl_attractors.methods.formulas import quadratic_pull_grad


def test_distillation_loss_hand_values() -> None:
    # equal outputs of two classes: the target is (1/2, 1/2) and the loss is ln 2 at any T
    zeros = torch.zeros(1, 2)
    assert distillation_loss(zeros, zeros, 1.0).item() == pytest.approx(math.log(2))
    assert distillation_loss(zeros, zeros, 5.0).item() == pytest.approx(math.log(2))
    # new logits (ln 3, 0): q = (3/4, 1/4); old logits equal: p = (1/2, 1/2);
    # -(1/2 ln 3/4 + 1/2 ln 1/4) = ln 4 - (1/2) ln 3
    new = torch.tensor([[math.log(3), 0.0]])
    assert distillation_loss(new, zeros, 1.0).item() == pytest.approx(math.log(4) - 0.5 * math.log(3))
    # T = 2 halves the logits: q = (sqrt 3, 1) / (sqrt 3 + 1)
    q = torch.tensor([math.sqrt(3), 1.0]) / (math.sqrt(3) + 1)
    assert distillation_loss(new, zeros, 2.0).item() == pytest.approx(-0.5 * q.log().sum().item())


def test_distillation_loss_is_the_batch_mean_and_its_gradient_is_q_minus_p_over_t() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, generator=gen, requires_grad=True)
    old = torch.randn(4, 3, generator=gen)
    t = 2.0
    loss = distillation_loss(logits, old, t)
    per_row = [distillation_loss(logits[i : i + 1], old[i : i + 1], t) for i in range(4)]
    assert loss.item() == pytest.approx(sum(r.item() for r in per_row) / 4)
    (grad,) = torch.autograd.grad(loss, logits)
    expected = (F.softmax(logits.detach() / t, -1) - F.softmax(old / t, -1)) / (t * 4)
    assert torch.allclose(grad, expected, atol=1e-7)
    # KL(p || q) differs by the target's entropy only
    p = F.softmax(old / t, -1)
    kl = F.kl_div(F.log_softmax(logits / t, -1), p, reduction="batchmean")
    entropy = -(p * p.log()).sum(-1).mean()
    assert kl.item() == pytest.approx(loss.item() - entropy.item(), abs=1e-6)


def test_agem_projection_hand_values() -> None:
    g_ref = torch.tensor([-1.0, 1.0])
    # conflict: g . g_ref = -1, |g_ref|^2 = 2 -> g + (1/2) g_ref = (1/2, 1/2), orthogonal to g_ref
    projected = agem_project(torch.tensor([1.0, 0.0]), g_ref)
    assert torch.equal(projected, torch.tensor([0.5, 0.5]))
    assert torch.dot(projected, g_ref).item() == 0.0
    # no conflict (dot >= 0), or no reference gradient: unchanged
    assert torch.equal(agem_project(torch.tensor([0.0, 3.0]), g_ref), torch.tensor([0.0, 3.0]))
    assert torch.equal(agem_project(torch.tensor([1.0, 1.0]), g_ref), torch.tensor([1.0, 1.0]))
    assert torch.equal(agem_project(torch.tensor([1.0, 0.0]), torch.zeros(2)), torch.tensor([1.0, 0.0]))


def test_agem_in_place_twin_projects_the_concatenation() -> None:
    gen = torch.Generator().manual_seed(1)
    for sign in (-1.0, 1.0):
        refs = [torch.randn(3, 2, generator=gen), torch.randn(4, generator=gen)]
        grads = [sign * r + 0.1 * torch.randn(r.shape, generator=gen) for r in refs]
        flat = agem_project(torch.cat([g.flatten() for g in grads]), torch.cat([r.flatten() for r in refs]))
        conflict = agem_project_(grads, refs)
        assert bool(conflict) == (sign < 0)
        assert torch.allclose(torch.cat([g.flatten() for g in grads]), flat, atol=1e-6)


def test_metaplastic_multiplier_and_gate_hand_values() -> None:
    # 1 - tanh^2(x) = sech^2(x); sech^2(0.5) = 1 / cosh(0.5)^2 = 0.786448...
    m = metaplastic_multiplier(torch.tensor([0.0, 0.5, -0.5]), 1.0)
    assert m[0] == 1.0
    assert m[1].item() == pytest.approx(1 / math.cosh(0.5) ** 2) and m[1] == m[2]
    old = torch.tensor([0.5, 0.5, -0.5, -0.5, 0.0, 0.5])
    update = torch.tensor([-0.1, 0.1, 0.1, -0.1, 0.1, 0.0])
    #          towards 0 (scaled), away, towards 0 (scaled), away, at 0 (untouched), no update
    f = 1 / math.cosh(1.0) ** 2  # m = 2, |w| = 0.5
    expected = torch.tensor([-0.1 * f, 0.1, 0.1 * f, -0.1, 0.1, 0.0])
    assert torch.allclose(metaplastic_gate(old, update, 2.0), expected)
    # a step across zero moves towards zero first: gated too (Laborieux et al.'s sign test)
    assert metaplastic_gate(torch.tensor([0.05]), torch.tensor([-0.2]), 2.0).item() == pytest.approx(
        -0.2 / math.cosh(0.1) ** 2
    )


@pytest.mark.parametrize("m", [1.35, torch.tensor(30.0)])
def test_metaplastic_in_place_twin_matches_the_gate(m: float | torch.Tensor) -> None:
    gen = torch.Generator().manual_seed(2)
    old = torch.randn(40, 7, generator=gen) * 0.1
    old[0, :3] = 0.0
    new = old + 1e-3 * torch.randn(40, 7, generator=gen)
    expected = old + metaplastic_gate(old, new - old, m)
    w = new.clone()
    metaplastic_(w, old, torch.empty_like(w), torch.empty_like(w), m)
    assert torch.allclose(w, expected, atol=1e-8)


def test_l2_pull_is_the_quadratic_pull_with_unit_importance() -> None:
    # L2: lam * sum (theta - theta*)^2 -> gradient 2 lam (theta - theta*)
    theta, anchor, lam = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.5, 0.0, 0.5]), 0.25
    ones = torch.ones(3)
    got = quadratic_pull_grad(theta, ones * anchor, ones, 2 * lam)
    assert torch.equal(got, torch.tensor([0.25, -1.0, 0.0]))


def test_task_quotas_share_the_memory_exactly() -> None:
    assert task_quotas(10, 3) == [4, 3, 3]
    assert task_quotas(200, 1) == [200]
    assert task_quotas(1100, 10) == [110] * 10
    assert task_quotas(200, 3) == [67, 67, 66]
    assert sum(task_quotas(7, 7)) == 7 and task_quotas(2, 3) == [1, 1, 0]


def test_class_balanced_order_every_prefix_is_balanced() -> None:
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    order = class_balanced_order(labels, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(13))
    for n in range(1, 10):  # classes 0-2 each have >= 3 examples: balanced up to n = 9
        counts = torch.bincount(labels[order[:n]], minlength=3)
        assert counts.max() - counts.min() <= 1, (n, counts)
    again = class_balanced_order(labels, torch.Generator().manual_seed(0))
    assert torch.equal(order, again)
    other = class_balanced_order(labels, torch.Generator().manual_seed(1))
    assert not torch.equal(order, other)


def test_kept_rows_keeps_each_tasks_prefix_in_memory_order() -> None:
    row_task = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    assert kept_rows(row_task, [2, 3]).tolist() == [0, 1, 4, 5, 6]
    assert kept_rows(row_task, [4, 0]).tolist() == [0, 1, 2, 3]
    assert kept_rows(torch.zeros(0, dtype=torch.long), [3]).tolist() == []


def test_distillation_loss_ignores_outputs_masked_in_both() -> None:
    logits = torch.tensor([[math.log(3), 0.0, -math.inf]], requires_grad=True)
    old = torch.tensor([[0.0, 0.0, -math.inf]])
    loss = distillation_loss(logits, old, 1.0)
    assert loss.item() == pytest.approx(math.log(4) - 0.5 * math.log(3))
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(grad).all() and grad[0, 2] == 0.0


def test_masked_cross_entropy_scores_each_row_on_its_own_outputs() -> None:
    # row 0 counts outputs {0, 1} (ln 3, 0): label 0 has p = 3/4; the 9s it hides count for nothing
    # row 1 counts outputs {2, 3} (0, 0): label 3 has p = 1/2; its own 9s, outside, likewise
    logits = torch.tensor([[math.log(3), 0.0, 9.0, 9.0], [9.0, 9.0, 0.0, 0.0]], requires_grad=True)
    hidden = torch.tensor([[False, False, True, True], [True, True, False, False]])
    labels = torch.tensor([0, 3])
    loss = masked_cross_entropy(logits, labels, hidden)
    assert loss.item() == pytest.approx((math.log(4 / 3) + math.log(2)) / 2)
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.equal(grad[hidden], torch.zeros(4))  # a hidden output gets no gradient
    # (softmax - one-hot) / rows on the counted outputs: row 0 (3/4 - 1, 1/4) / 2, row 1 (1/2, -1/2) / 2
    expected = torch.tensor([[-1 / 8, 1 / 8], [1 / 4, -1 / 4]])
    assert torch.allclose(grad[~hidden].view(2, 2), expected)
    # None: every output counts, the plain cross-entropy bit for bit
    assert torch.equal(masked_cross_entropy(logits, labels, None), F.cross_entropy(logits, labels))


def test_distillation_over_heads_sums_one_softmax_per_head() -> None:
    # head {0, 1}: new (ln 3, 0), old (0, 0): ln 4 - (1/2) ln 3 (as in the hand values above)
    # head {2, 3}: new (0, 0), old (ln 3, 0): target (3/4, 1/4), q = (1/2, 1/2): ln 2
    new = torch.tensor([[math.log(3), 0.0, 0.0, 0.0]])
    old = torch.tensor([[0.0, 0.0, math.log(3), 0.0]])
    heads = [torch.tensor([True, True, False, False]), torch.tensor([False, False, True, True])]
    got = distillation_over_heads(new, old, heads, 1.0)
    assert got.item() == pytest.approx(math.log(4) - 0.5 * math.log(3) + math.log(2))
    # each head is its own softmax: the same as distilling the sliced outputs one head at a time
    gen = torch.Generator().manual_seed(1)
    new, old = torch.randn(5, 6, generator=gen), torch.randn(5, 6, generator=gen)
    heads = [torch.arange(6) // 2 == k for k in range(3)]
    sliced = sum(distillation_loss(new[:, h], old[:, h], 2.0) for h in heads)
    assert distillation_over_heads(new, old, heads, 2.0).item() == pytest.approx(float(sliced))
    # one head of every output: the plain distillation
    whole = [torch.ones(6, dtype=torch.bool)]
    assert distillation_over_heads(new, old, whole, 2.0).item() == pytest.approx(
        distillation_loss(new, old, 2.0).item()
    )


def test_distillation_over_heads_with_the_current_outputs_pads_the_target_with_zeros() -> None:
    # class scenario: old classes {0, 1}, current {2, 3}; new (ln 3, 0, ln 2, 0), old (0, 0, 9, 9)
    # target over {0, 1}: (1/2, 1/2), then 0 for {2, 3}; softmax of new over {0..3}: (3, 1, 2, 1)/7
    # loss = -(1/2) ln(3/7) - (1/2) ln(1/7) = ln 7 - (1/2) ln 3
    new = torch.tensor([[math.log(3), 0.0, math.log(2), 0.0, 5.0]])
    old = torch.tensor([[0.0, 0.0, 9.0, 9.0, 9.0]])
    head, current = torch.tensor([1, 1, 0, 0, 0]).bool(), torch.tensor([1, 1, 1, 1, 0]).bool()
    got = distillation_over_heads(new, old, [head], 1.0, current)
    assert got.item() == pytest.approx(math.log(7) - 0.5 * math.log(3))
    # van de Ven & Tolias's loss_fn_kd: the old model's softmax zero-padded to the trained one's outputs
    gen = torch.Generator().manual_seed(2)
    new, old = torch.randn(5, 5, generator=gen), torch.randn(5, 5, generator=gen)
    target = torch.cat([F.softmax(old[:, :2] / 2.0, -1), torch.zeros(5, 2)], 1)
    theirs = -(target * F.log_softmax(new[:, :4] / 2.0, -1)).sum(1).mean()
    assert distillation_over_heads(new, old, [head], 2.0, current).item() == pytest.approx(theirs.item())
    # without the current outputs: the head's own softmax, as Li & Hoiem
    assert distillation_over_heads(new, old, [head], 2.0).item() == pytest.approx(
        distillation_loss(new[:, :2], old[:, :2], 2.0).item()
    )
