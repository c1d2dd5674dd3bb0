"""Behaviour of the CL methods through their hooks, on tiny models with Adam."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cl_attractors.methods.base import HOOKS, CLMethod, Vanilla
from cl_attractors.methods.ewc import EWC
from cl_attractors.methods.importance import fisher_diagonal, mas_importance
from cl_attractors.methods.mas import MAS
from cl_attractors.methods.si import SI
from cl_attractors.methods.sticky import StickyGradient
from tests.helpers import FakeData, fake_context, paper_method, subclasses, tiny_net, train_steps
from tests.reference import sticky_multiplier

A1 = 0.279
OFF = {"sticky": False, "l1": False, "smart_init": False}


def processed_grads(method: CLMethod, net: nn.Module, raw: list[Tensor]) -> list[Tensor]:
    for p, g in zip(net.parameters(), raw):
        p.grad = g.clone()
    method.on_before_optimizer_step(fake_context(net), torch.optim.Adam(net.parameters()))
    return [p.grad for p in net.parameters()]


@pytest.mark.parametrize("switch", ["sticky", "l1", "smart_init"])
def test_each_ablation_switch_changes_exactly_one_thing(switch: str) -> None:
    base, on = paper_method("sticky", **OFF), paper_method("sticky", **{**OFF, switch: True})
    net_base, _ = tiny_net(base)
    net_on, _ = tiny_net(on)
    params_differ = any(not torch.equal(a, b) for a, b in zip(net_base.parameters(), net_on.parameters()))
    assert params_differ == (switch == "smart_init")
    if switch == "smart_init":
        assert abs(torch.cat([p.flatten() for p in net_on.parameters()]).mean() - 0.00363) < 0.01
    net_on.load_state_dict(net_base.state_dict())
    gen = torch.Generator().manual_seed(3)
    raw = [torch.randn(p.shape, generator=gen) for p in net_base.parameters()]
    ws = [p.detach() for p in net_base.parameters()]
    g_base, g_on = processed_grads(base, net_base, raw), processed_grads(on, net_on, raw)
    expected = {
        "smart_init": raw,
        "l1": [g + 0.000574 * torch.sign(w) for g, w in zip(raw, ws)],
        "sticky": [g * sticky_multiplier(w, g, A1, 4.12, 4.70) for g, w in zip(raw, ws)],
    }
    assert all(torch.equal(a, b) for a, b in zip(g_base, raw))
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(g_on, expected[switch]))
    assert any(not torch.equal(a, b) for a, b in zip(g_on, raw)) == (switch != "smart_init")


def test_ewc_pull_is_zero_on_task_0_then_hand_value() -> None:
    method = paper_method("ewc", lam=100.0, fisher_samples=32)
    net, opt = tiny_net(method)
    raw = [torch.zeros_like(p) for p in net.parameters()]
    assert all(torch.equal(g, torch.zeros_like(g)) for g in processed_grads(method, net, raw))
    data = FakeData()
    anchor = [p.detach().clone() for p in net.parameters()]
    x, y = data.sample(0, 32, torch.Generator().manual_seed(0))
    fisher = fisher_diagonal(net, dict(net.named_parameters()), x, y, "empirical")
    stats = method.on_task_end(fake_context(net, 0, data))
    assert stats["fisher_max"] == pytest.approx(max(f.max().item() for f in fisher.values()))
    train_steps(Vanilla(), net, opt, 5)
    got = processed_grads(method, net, raw)
    for g, p, a, f in zip(got, net.parameters(), anchor, fisher.values()):
        assert torch.allclose(g, 100.0 * f * (p.detach() - a), rtol=1e-4, atol=1e-7)
    assert any(g.abs().sum() > 0 for g in got)


def test_ewc_lambda_zero_is_vanilla_bit_for_bit() -> None:
    ewc = paper_method("ewc", lam=0.0, fisher_samples=16)
    net_ewc, opt_ewc = tiny_net(ewc)
    net_van, opt_van = tiny_net(Vanilla())
    ewc.on_task_end(fake_context(net_ewc, 0))
    train_steps(ewc, net_ewc, opt_ewc, 10)
    train_steps(Vanilla(), net_van, opt_van, 10)
    assert all(torch.equal(a, b) for a, b in zip(net_ewc.parameters(), net_van.parameters()))


def test_online_ewc_keeps_decayed_fisher_and_one_anchor() -> None:
    method = paper_method("ewc", mode="online", gamma_online=0.5, fisher_samples=16)
    net, opt = tiny_net(method)
    method.on_task_end(fake_context(net, 0))
    first = [b.clone() for b in method.per_target("fisher_sum")]
    train_steps(Vanilla(), net, opt, 3)
    method.on_task_end(fake_context(net, 1))
    x, y = FakeData().sample(1, 16, torch.Generator().manual_seed(1))
    new = fisher_diagonal(net, dict(net.named_parameters()), x, y, "empirical").values()
    for f_sum, a_sum, f0, f1, p in zip(
        method.per_target("fisher_sum"), method.per_target("anchor_sum"), first, new, net.parameters()
    ):
        assert torch.allclose(f_sum, 0.5 * f0 + f1, rtol=1e-5)
        assert torch.allclose(a_sum, f_sum * p.detach(), rtol=1e-5)


def test_mas_accumulates_its_importance_with_one_anchor_and_pulls_back() -> None:
    method = paper_method("mas", lam=0.5, samples=32)
    net, opt = tiny_net(method)
    data, importance = FakeData(), [torch.zeros_like(p) for p in net.parameters()]
    for task in range(2):
        x, _ = data.sample(task, 32, torch.Generator().manual_seed(task))
        new = mas_importance(net, dict(net.named_parameters()), x).values()
        importance = [i + n for i, n in zip(importance, new)]
        stats = method.on_task_end(fake_context(net, task, data))
        assert stats["importance_max"] == pytest.approx(max(n.max().item() for n in new))
        anchor = [p.detach().clone() for p in net.parameters()]  # online: the latest task's end
        train_steps(Vanilla(), net, opt, 3)
    got = processed_grads(method, net, [torch.zeros_like(p) for p in net.parameters()])
    sums = zip(method.per_target("importance"), method.per_target("anchor_sum"))
    for g, imp, p, a, (w_sum, a_sum) in zip(got, importance, net.parameters(), anchor, sums):
        assert torch.allclose(w_sum, imp, rtol=1e-5) and torch.allclose(a_sum, imp * a, rtol=1e-5)
        assert torch.allclose(g, 2 * 0.5 * imp * (p.detach() - a), rtol=1e-4, atol=1e-7)
    assert any(g.abs().sum() > 0 for g in got)


def test_methods_are_discovered() -> None:
    assert {Vanilla, StickyGradient, EWC, SI, MAS} <= set(subclasses(CLMethod))


@pytest.mark.parametrize("cls", subclasses(CLMethod), ids=lambda c: c.__qualname__)
def test_no_method_uses_more_than_three_hooks(cls: type[CLMethod]) -> None:
    used = [h for h in HOOKS if getattr(cls, h) is not getattr(CLMethod, h)]
    assert len(used) <= 3, used


def _lone_weight_net(method: CLMethod, lr: float) -> tuple[nn.Module, torch.optim.Optimizer]:
    """Linear(2, 1) whose second input is always 0: weight[0, 1] gets no task gradient."""
    net = nn.Sequential(nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.1, 0.5]]))
    method.attach(net)
    return net, torch.optim.Adam(net.parameters(), lr=lr)


@pytest.mark.parametrize("l1_apply_to", ["gradient", "update"])
def test_adam_turns_pre_step_l1_into_lr_sized_steps(l1_apply_to: str) -> None:
    zeta, lr, steps = 0.01, 1e-2, 10
    method = paper_method("sticky", **{**OFF, "l1": True}, zeta=zeta, l1_apply_to=l1_apply_to)
    net, opt = _lone_weight_net(method, lr)
    ctx = fake_context(net)
    for _ in range(steps):
        opt.zero_grad()
        ((net(torch.tensor([[1.0, 0.0]])) - 1.0) ** 2).sum().backward()
        method.on_before_optimizer_step(ctx, opt)
        opt.step()
        method.on_after_optimizer_step(ctx, opt)
    moved = 0.5 - net[0].weight[0, 1].item()
    expected = steps * lr if l1_apply_to == "gradient" else steps * lr * zeta
    assert moved == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize(("apply_to", "sticky"), [("update", True), ("update", False), ("gradient", True)])
def test_gating_keeps_a_weight_at_the_attractor(apply_to: str, sticky: bool) -> None:
    method = paper_method("sticky", **{**OFF, "sticky": sticky}, apply_to=apply_to)
    net, opt = _lone_weight_net(method, lr=1e-2)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[A1, A1]]))
    ctx = fake_context(net)
    for _ in range(5):
        opt.zero_grad()
        # the loss pushes weight[0, 0] up, away from a1
        (-net(torch.tensor([[1.0, 1.0]]))).sum().backward()
        method.on_before_optimizer_step(ctx, opt)
        opt.step()
        method.on_after_optimizer_step(ctx, opt)
    stayed = net[0].weight[0, 0].item() == torch.tensor(A1).item()
    assert stayed == sticky


def _clone_and_continue(
    method: CLMethod, fresh: CLMethod, net: nn.Module, opt: torch.optim.Optimizer
) -> nn.Module:
    net2, opt2 = tiny_net(fresh, seed=99)
    net2.load_state_dict(net.state_dict())
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    fresh.load_state_dict(method.state_dict())
    for (k, a), b in zip(method.state_dict().items(), fresh.state_dict().values()):
        assert k == "_extra_state" or torch.equal(a, b), k
    train_steps(method, net, opt, 4, seed=7)
    train_steps(fresh, net2, opt2, 4, seed=7)
    return net2


@pytest.mark.parametrize(
    "factory",
    [
        lambda: paper_method("sticky", apply_to="update", l1_apply_to="update", stats_every=3),
        lambda: paper_method("ewc", fisher_samples=16),
        lambda: paper_method("si"),
        lambda: paper_method("mas", samples=16),
    ],
)
def test_state_dict_round_trip_continues_identically(factory: Any) -> None:
    method = factory()
    net, opt = tiny_net(method)
    train_steps(method, net, opt, 5)
    method.on_task_end(fake_context(net, 0))
    train_steps(method, net, opt, 5, seed=2)
    assert len(method.state_dict()) > 1
    fresh = factory()
    net2 = _clone_and_continue(method, fresh, net, opt)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), net2.parameters()))
    for (k, a), b in zip(method.state_dict().items(), fresh.state_dict().values()):
        assert a == b if k == "_extra_state" else torch.equal(a, b), k


def _si_task_by_hand(
    method: SI, net: nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int
) -> list[Tensor]:
    """Train one task through the hooks; return ``-sum_t g_t (theta_{t+1} - theta_t)`` computed
    here from the unregularised gradients and the parameters around each actual step."""
    gen = torch.Generator().manual_seed(seed)
    omega = [torch.zeros_like(p) for p in net.parameters()]
    for _ in range(steps):
        x, y = torch.randn(16, 4, generator=gen), torch.randint(0, 3, (16,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        raw = [p.grad.clone() for p in net.parameters()]
        before = [p.detach().clone() for p in net.parameters()]
        method.on_before_optimizer_step(fake_context(net), opt)
        opt.step()
        for om, g, p, b in zip(omega, raw, net.parameters(), before):
            om -= g * (p.detach() - b)
    return omega


def test_si_importance_is_the_path_integral_of_the_actual_steps_and_pulls_back() -> None:
    method = paper_method("si", c=0.5, xi=0.1)
    net, opt = tiny_net(method)
    importance = [torch.zeros_like(p) for p in net.parameters()]
    for task, steps in enumerate((6, 4)):  # task 1 runs with the pull on: omega must ignore it
        start = [p.detach().clone() for p in net.parameters()]
        omega = _si_task_by_hand(method, net, opt, steps, seed=task + 1)
        method.on_task_end(fake_context(net, task))
        importance = [
            i + o / ((p.detach() - s) ** 2 + 0.1)
            for i, o, p, s in zip(importance, omega, net.parameters(), start)
        ]
        for got, want in zip(method.per_target("importance"), importance):
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-9)
    assert all(o.abs().sum() == 0 for o in method.per_target("omega"))  # restarted
    anchor = [p.detach().clone() for p in net.parameters()]
    train_steps(Vanilla(), net, opt, 2)
    got = processed_grads(method, net, [torch.zeros_like(p) for p in net.parameters()])
    for g, imp, p, a in zip(got, importance, net.parameters(), anchor):
        assert torch.allclose(g, 2 * 0.5 * imp * (p.detach() - a), rtol=1e-4, atol=1e-7)


def test_sticky_stats_report_dip_and_gating() -> None:
    method = paper_method("sticky", **{**OFF, "sticky": True}, stats_every=1)
    net, opt = tiny_net(method)
    train_steps(method, net, opt, 3)
    stats = method.on_task_end(fake_context(net, 0))
    ws = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert stats["dip_fraction"] == pytest.approx(((ws - A1).abs() < 4.70**-0.5).float().mean().item())
    assert 0.2 < stats["gated_fraction"] < 0.8
    assert 0.0 < stats["mean_f"] < 4.12
    assert method.gate_stats.sum() == 0


def test_si_one_step_late_integral_stays_accurate_over_many_small_steps() -> None:
    # the telescoped sum adds terms g*theta far larger than g*dtheta at lr 1e-4: check float32
    # against the direct float64 integral over 300 steps
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    method = paper_method("si", compile=False)
    method.attach(net)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    x = torch.rand(1000, 64)
    y = (x @ torch.randn(64, 10)).argmax(1)
    direct = [torch.zeros_like(p, dtype=torch.float64) for p in net.parameters()]
    start = [p.detach().clone() for p in net.parameters()]
    for _ in range(300):
        i = torch.randint(0, 1000, (50,))
        opt.zero_grad()
        F.cross_entropy(net(x[i]), y[i]).backward()
        raw = [p.grad.double() for p in net.parameters()]
        before = [p.detach().double() for p in net.parameters()]
        method.on_before_optimizer_step(fake_context(net), opt)
        opt.step()
        for d, g, p, b in zip(direct, raw, net.parameters(), before):
            d -= g * (p.detach().double() - b)
    method.on_task_end(fake_context(net, 0))
    for imp, d, p, s in zip(method.per_target("importance"), direct, net.parameters(), start):
        want = d / ((p.detach().double() - s.double()) ** 2 + 0.1)
        assert ((imp.double() - want).norm() / want.norm()).item() < 1e-4
