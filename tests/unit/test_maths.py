"""The formulas of the CL methods, against hand-computed values and the reference forms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cl_attractors.methods import formulas
from cl_attractors.methods.formulas import (
    plasticity,
    quadratic_pull_grad,
    si_importance,
)
from cl_attractors.methods.importance import _linear_weighted_grads, fisher_diagonal, mas_importance
from cl_attractors.methods.si import si_step_expr
from tests.reference import away_mask, si_path_step, si_penalty_grad, sticky_multiplier

A1, LAM, GAMMA = 0.279, 4.12, 4.70


def test_plasticity_matches_eq1_and_floor() -> None:
    w = torch.tensor([A1, A1 + 0.1, -0.2, 5.0])
    expected = -LAM * torch.exp(-GAMMA * (w - A1) ** 2) + LAM
    assert torch.allclose(plasticity(w, A1, LAM, GAMMA), expected)
    assert plasticity(w, A1, LAM, GAMMA)[0] == 0.0
    floored = plasticity(w, A1, LAM, GAMMA, f_min=0.5)
    assert floored[0] == pytest.approx(0.5)
    assert floored[3] == pytest.approx(LAM)
    assert torch.all(floored >= 0.5)
    # hand value: 0.5 + (4.12 - 0.5) * (1 - exp(-4.7 * 0.01))
    assert floored[1].item() == pytest.approx(0.5 + 3.62 * (1 - math.exp(-0.047)), rel=1e-5)


def test_away_mask_every_sign_case() -> None:
    #                 above a1 / g>0 (toward), above / g<0 (away), below / g>0 (away),
    #                 below / g<0 (toward), at a1 / g>0, at a1 / g<0, zero gradient above, at a1
    w = torch.tensor([0.5, 0.5, 0.0, 0.0, A1, A1, 0.5, A1])
    g = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 0.0, 0.0])
    expected = torch.tensor([False, True, True, False, True, True, True, False])
    assert torch.equal(away_mask(w, g, A1), expected)


def test_toward_is_the_complement_of_algorithm_1s_test_wherever_g_is_nonzero() -> None:
    w = torch.tensor([0.5, 0.5, 0.0, 0.0, A1, A1, 0.5, A1])
    g = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 0.0, 0.0])
    nonzero = g != 0
    assert torch.equal(formulas.toward(w, g, A1)[nonzero], ~away_mask(w, g, A1)[nonzero])
    assert not formulas.toward(w, g, A1)[~nonzero].any()  # g == 0: "away", and g * f stays 0


def test_l1_gradient_and_its_in_place_twins() -> None:
    w, g = torch.tensor([-2.0, 0.0, 0.3]), torch.tensor([1.0, 1.0, -1.0])
    assert torch.equal(formulas.l1_grad(w, 0.5), torch.tensor([-0.5, 0.0, 0.5]))
    out = torch.empty(3)
    formulas.l1_grad_(out, w, 0.5)
    assert torch.equal(out, formulas.l1_grad(w, 0.5))
    formulas.add_l1_(g, w, torch.empty(3), 0.5)
    assert torch.equal(g, torch.tensor([0.5, 1.0, -0.5]))


def test_sticky_multiplier_freezes_at_a1_and_ignores_zero_gradient() -> None:
    w = torch.tensor([0.5, 0.5, A1, A1, 0.0])
    g = torch.tensor([1.0, -1.0, 2.0, 0.0, 0.0])
    mult = sticky_multiplier(w, g, A1, LAM, GAMMA)
    assert mult[0] == 1.0  # toward the attractor: untouched
    assert mult[1].item() == pytest.approx(LAM * (1 - math.exp(-GAMMA * (0.5 - A1) ** 2)))
    assert mult[2] == 0.0  # at a1 exactly, moving off it: frozen (f(a1) = 0)
    assert (g * mult)[3:].abs().sum() == 0.0  # zero gradient stays zero whatever the mask says


@pytest.mark.parametrize("f_min", [0.0, 0.3])
def test_eager_and_pure_gates_agree_with_reference(f_min: float) -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(64, 33, generator=gen) * 0.3
    w[0, :5] = A1
    g = torch.randn(64, 33, generator=gen)
    g[1, :7] = 0.0
    dip = formulas.Dip(A1, LAM, GAMMA, f_min)
    reference = g * sticky_multiplier(w, g, A1, LAM, GAMMA, f_min)
    assert torch.allclose(formulas.gate(g, w, dip), reference, rtol=1e-5, atol=1e-5)
    inplace = g.clone()
    formulas.gate_(inplace, w, torch.empty_like(w), torch.empty_like(w), dip)
    assert torch.allclose(inplace, reference, rtol=1e-5, atol=1e-5)


def test_quadratic_pull_matches_hand_value() -> None:
    theta = torch.tensor([1.0, -2.0])
    fisher, anchor = torch.tensor([0.5, 3.0]), torch.tensor([0.0, -1.0])
    grad = quadratic_pull_grad(theta, fisher * anchor, fisher, scale=10.0)
    assert torch.allclose(grad, torch.tensor([10 * 0.5 * 1.0, 10 * 3.0 * (-1.0)]))


def test_accumulated_pull_equals_explicit_sum_over_tasks() -> None:
    gen = torch.Generator().manual_seed(1)
    theta = torch.randn(20, generator=gen)
    fishers = [torch.rand(20, generator=gen) for _ in range(5)]
    anchors = [torch.randn(20, generator=gen) for _ in range(5)]
    explicit = sum(1000.0 * f * (theta - a) for f, a in zip(fishers, anchors))
    accumulated = quadratic_pull_grad(
        theta, sum(f * a for f, a in zip(fishers, anchors)), sum(fishers), scale=1000.0
    )
    assert torch.allclose(accumulated, explicit, rtol=1e-5, atol=1e-3)
    grads = [torch.zeros(20)]
    formulas.pull_(grads, [theta], [sum(fishers)], [sum(f * a for f, a in zip(fishers, anchors))], 1000.0)
    assert torch.allclose(grads[0], explicit, rtol=1e-5, atol=1e-3)


def _two_param_model() -> nn.Module:
    """logits = [w0 * x, w1 * x]: two parameters, two classes."""
    model = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5], [-1.0]]))
    return model


def _hand_grads(x: float, label: int) -> torch.Tensor:
    """d CE / d w for logits (0.5 x, -x): (softmax - onehot) * x."""
    p = torch.softmax(torch.tensor([0.5 * x, -x]), dim=0)
    return (p - F.one_hot(torch.tensor(label), 2).float()) * x


# fast=True: the Linear-layer identity; fast=False: the definition (vmap of per-sample gradients)
@pytest.mark.parametrize("fast", [True, False])
def test_empirical_fisher_is_mean_of_squared_per_sample_grads(fast: bool) -> None:
    model = _two_param_model()
    x, y = torch.tensor([[1.0], [2.0], [-1.5]]), torch.tensor([0, 1, 1])
    fisher = fisher_diagonal(
        model, dict(model.named_parameters()), x, y, "empirical", chunk_size=2, fast=fast
    )
    hand = sum(_hand_grads(xi, yi) ** 2 for xi, yi in zip([1.0, 2.0, -1.5], [0, 1, 1])) / 3
    assert torch.allclose(fisher["weight"].flatten(), hand, rtol=1e-5)


@pytest.mark.parametrize("fast", [True, False])
def test_true_fisher_is_expectation_over_predicted_classes(fast: bool) -> None:
    model = _two_param_model()
    xs = [1.0, 2.0, -1.5]
    x, y = torch.tensor(xs).unsqueeze(1), torch.tensor([0, 0, 0])
    fisher = fisher_diagonal(model, dict(model.named_parameters()), x, y, "true", fast=fast)
    hand = torch.zeros(2)
    for xi in xs:
        p = torch.softmax(torch.tensor([0.5 * xi, -xi]), dim=0)
        hand += sum(p[c] * _hand_grads(xi, c) ** 2 for c in range(2)) / len(xs)
    assert torch.allclose(fisher["weight"].flatten(), hand, rtol=1e-5)


def test_batched_fisher_squares_minibatch_gradients() -> None:
    model = _two_param_model()
    xs, ys = [1.0, 2.0, -1.5, 0.5], [0, 1, 1, 0]
    fisher = fisher_diagonal(
        model,
        dict(model.named_parameters()),
        torch.tensor(xs).unsqueeze(1),
        torch.tensor(ys),
        "batched",
        batch_size=2,
    )
    b1 = (_hand_grads(1.0, 0) + _hand_grads(2.0, 1)) / 2
    b2 = (_hand_grads(-1.5, 1) + _hand_grads(0.5, 0)) / 2
    assert torch.allclose(fisher["weight"].flatten(), (b1**2 + b2**2) / 2, rtol=1e-5)


@pytest.mark.parametrize("fast", [True, False])
def test_mas_importance_matches_hand_value(fast: bool) -> None:
    # ||f(x)||^2 = (w0 x)^2 + (w1 x)^2: d/dw = 2 w x^2 = (x^2, -2 x^2) at w = (0.5, -1)
    model = _two_param_model()
    xs = [1.0, 2.0, -1.5]
    x = torch.tensor(xs).unsqueeze(1)
    omega = mas_importance(model, dict(model.named_parameters()), x, chunk_size=2, fast=fast)
    mean_x2 = sum(x * x for x in xs) / 3
    assert torch.allclose(omega["weight"].flatten(), torch.tensor([mean_x2, 2 * mean_x2]), rtol=1e-6)


@pytest.mark.parametrize("fast", [True, False])
def test_mas_importance_is_the_mean_abs_gradient_of_the_squared_output_norm(fast: bool) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = torch.randn(7, 3)
    per_sample = [torch.autograd.grad(net(xi.unsqueeze(0)).pow(2).sum(), list(net.parameters())) for xi in x]
    want = [sum(g[k].abs() for g in per_sample) / len(x) for k in range(4)]
    got = mas_importance(net, dict(net.named_parameters()), x, chunk_size=3, fast=fast)  # chunks of 3, 3, 1
    for g, w in zip(got.values(), want):
        assert torch.allclose(g, w, rtol=1e-5, atol=1e-7)


def test_si_importance_on_hand_worked_trajectory() -> None:
    # theta: 1.0 -> 0.8 -> 0.5 -> 0.6 with unregularised gradients 2.0, 1.5, -0.5
    thetas, grads = [1.0, 0.8, 0.5, 0.6], [2.0, 1.5, -0.5]
    omega = torch.zeros(1)
    for t, g in enumerate(grads):
        omega = si_path_step(omega, torch.tensor([g]), torch.tensor([thetas[t + 1] - thetas[t]]))
    # omega = sum -g * dtheta = -(2.0)(-0.2) - (1.5)(-0.3) - (-0.5)(0.1) = 0.4 + 0.45 + 0.05
    assert omega.item() == pytest.approx(0.9)
    importance = torch.tensor([0.1]) + si_importance(omega, torch.tensor([0.6 - 1.0]), xi=0.1)
    assert importance.item() == pytest.approx(0.1 + 0.9 / (0.16 + 0.1))
    pull = si_penalty_grad(torch.tensor([0.7]), torch.tensor([0.6]), importance, c=0.5)
    assert pull.item() == pytest.approx(2 * 0.5 * importance.item() * 0.1, rel=1e-5)


@pytest.mark.parametrize("form", ["eager", "expression"])
def test_si_one_step_late_kernel_integrates_the_hand_worked_trajectory(form: str) -> None:
    # the trajectory of test_si_importance_on_hand_worked_trajectory, on two elements (x and -x)
    thetas, grads = [1.0, 0.8, 0.5, 0.6], [2.0, 1.5, -0.5]
    omega, prev = torch.zeros(2), torch.zeros(2)
    for t, g in enumerate(grads):
        theta, grad = torch.tensor([thetas[t], -thetas[t]]), torch.tensor([g, -g])
        if form == "eager":
            formulas.si_path_([grad], [theta], [prev], [omega])
        else:
            si_step_expr([grad], [theta], [prev], [omega], [torch.ones(2)], [theta], 0.0)
        grad.zero_()  # the optimizer may change p.grad: SI keeps its own copy
    formulas.si_flush_([torch.tensor([0.6, -0.6])], [prev], [omega])
    assert torch.allclose(omega, torch.tensor([0.9, 0.9]))
    assert torch.equal(prev, torch.zeros(2))


class _Twice(nn.Module):
    """One Linear layer applied twice: per-sample gradients are no longer one outer product."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.relu(self.lin(x)))


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3)),
        lambda: _Twice(),  # falls back to the definition
        lambda: (lambda lin: nn.Sequential(lin, nn.ReLU(), lin))(nn.Linear(5, 5)),  # one layer run twice
        lambda: nn.Sequential(nn.Linear(5, 6), nn.Dropout(0.0), nn.Linear(6, 3)),  # not row-wise: falls back
    ],
)
@pytest.mark.parametrize("estimator", ["empirical", "true", "mas"])
def test_the_fast_importance_equals_the_definition(make: object, estimator: str) -> None:
    torch.manual_seed(0)
    net = make()  # type: ignore[operator]
    x = torch.randn(11, 5 if not isinstance(net, _Twice) else 3)
    y = torch.randint(0, 3, (11,))
    named = dict(net.named_parameters())
    for params in (named, {k: v for k, v in named.items() if k.endswith("weight")}):
        if estimator == "mas":
            fast, slow = (mas_importance(net, params, x, chunk_size=4, fast=f) for f in (True, False))
        else:
            fast, slow = (
                fisher_diagonal(net, params, x, y, estimator, chunk_size=4, fast=f) for f in (True, False)
            )
        assert fast.keys() == slow.keys() == params.keys()
        for k in params:
            assert torch.allclose(fast[k], slow[k], rtol=1e-4, atol=1e-7), k


def test_the_fast_path_applies_to_row_wise_linear_networks_only() -> None:
    x, w = torch.randn(4, 3), torch.full((4,), 0.25)
    mlp = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    twice, dropout = _Twice(), nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.0))
    shared = nn.Linear(3, 3)
    reused = nn.Sequential(shared, nn.ReLU(), shared)

    def fast(net: nn.Module, x: torch.Tensor = x) -> object:
        return _linear_weighted_grads(net, dict(net.named_parameters()), x, (), lambda o: o.sum(), w, "abs")

    assert fast(mlp) is not None
    assert fast(twice) is None  # a container other than Sequential: its forward could mix rows
    assert fast(dropout) is None and fast(reused) is None  # a layer not row-wise; a layer run twice
    assert fast(mlp, torch.randn(4, 2, 3)) is None  # 3-D inputs: a sum over positions per sample
