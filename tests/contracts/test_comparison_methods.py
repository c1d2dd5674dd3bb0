"""The comparison set through its hooks on a tiny network with Adam: L2, LwF, replay, A-GEM and
metaplasticity against their formulas, and their checkpoint round trips."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cl_attractors.errors import ConfigError
from cl_attractors.methods.agem import AGEM
from cl_attractors.methods.base import CLMethod, DataFacts, MethodContext, Vanilla
from cl_attractors.methods.baseline_formulas import distillation_loss, metaplastic_gate
from cl_attractors.methods.l2 import L2
from cl_attractors.methods.lwf import LwF
from cl_attractors.methods.metaplasticity import Metaplasticity
from cl_attractors.methods.replay import Replay

GEN = torch.Generator().manual_seed(0)
X, Y = torch.randn(64, 4, generator=GEN), torch.randint(0, 3, (64,), generator=GEN)


def sample(task: int, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    idx = torch.randperm(len(Y), generator=generator)[:n]
    return X[idx] + task, Y[idx]


def setup(method: CLMethod, seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer, MethodContext]:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    method.attach(net)
    return net, torch.optim.Adam(net.parameters(), lr=1e-2), MethodContext(net, sample)


def step(method: CLMethod, net: nn.Module, opt: torch.optim.Optimizer, ctx: MethodContext, i: int) -> None:
    """One step as ``CLModule.step`` takes it: CE (+ the method's term), backward, hooks, step."""
    x, y = X[(8 * i) % 64 :][:8], Y[(8 * i) % 64 :][:8]
    outputs = net(x)
    loss = F.cross_entropy(outputs, y)
    extra = method.loss(ctx, x, y, outputs)
    opt.zero_grad()
    (loss if extra is None else loss + extra).backward()
    method.on_before_optimizer_step(ctx, opt)
    opt.step()
    method.on_after_optimizer_step(ctx, opt)


def end_task(method: CLMethod, ctx: MethodContext, task: int) -> dict[str, float]:
    ctx.task = task
    stats = method.on_task_end(ctx)
    ctx.task = task + 1
    return stats


def test_l2_pulls_towards_the_latest_tasks_weights_with_unit_importance() -> None:
    method = L2(lam=0.5)
    net, opt, ctx = setup(method)
    for task in range(2):
        for i in range(3):
            step(method, net, opt, ctx, i)
        end_task(method, ctx, task)
        anchor = [p.detach().clone() for p in net.parameters()]
    assert all(torch.equal(w, torch.ones_like(w)) for w in method.per_target("importance"))
    for i in range(2):
        step(L2(lam=0.0), net, opt, ctx, i)  # move away without the pull
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    method.on_before_optimizer_step(ctx, opt)
    for p, a in zip(net.parameters(), anchor):
        assert torch.allclose(p.grad, 2 * 0.5 * (p.detach() - a), atol=1e-7)


def test_lwf_adds_nothing_on_task_0_then_distils_from_the_frozen_copy() -> None:
    method = LwF(lam=2.0, temperature=3.0)
    net, opt, ctx = setup(method)
    assert method.loss(ctx, X[:8], Y[:8], net(X[:8])) is None
    end_task(method, ctx, 0)
    frozen = copy.deepcopy(net)
    logits = net(X[:8])
    at_anchor = method.loss(ctx, X[:8], Y[:8], logits)
    assert at_anchor is not None
    (grad,) = torch.autograd.grad(at_anchor, logits)
    assert grad.abs().max() < 1e-7  # the frozen outputs are the current ones: no pull yet
    for i in range(4):
        step(method, net, opt, ctx, i)
    logits = net(X[:8])
    got = method.loss(ctx, X[:8], Y[:8], logits)
    assert got is not None
    expected = 2.0 * distillation_loss(logits, frozen(X[:8]), 3.0)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    assert not any(p is b for p in net.parameters() for b in method.buffers())  # Adam never sees it


def test_replay_adds_the_cross_entropy_of_a_seeded_memory_batch() -> None:
    method = Replay(memory_size=20, batch_size=6, seed=3)
    net, _opt, ctx = setup(method)
    assert method.loss(ctx, X[:8], Y[:8], net(X[:8])) is None
    assert end_task(method, ctx, 0) == {"memory_filled": 20.0}
    xm, ym, _ = method.memory.draw(6, 0)
    got = method.loss(ctx, X[:8], Y[:8], net(X[:8]))
    assert got is not None and got.item() == pytest.approx(F.cross_entropy(net(xm), ym).item())
    assert method.draws == 1


def test_agem_projects_a_conflicting_gradient_onto_the_memorys() -> None:
    method = AGEM(memory_size=30, ref_batch_size=30, seed=1)
    net, opt, ctx = setup(method)
    end_task(method, ctx, 0)
    xm, ym, _ = method.memory.draw(30, 0)
    refs = torch.autograd.grad(F.cross_entropy(net(xm), ym), list(net.parameters()))
    for p, r in zip(net.parameters(), refs):
        p.grad = -r.clone() + 0.01  # a gradient that conflicts with the memory's
    method.on_before_optimizer_step(ctx, opt)
    dot = sum((p.grad * r).sum() for p, r in zip(net.parameters(), refs))
    assert abs(float(dot)) < 1e-5
    assert end_task(method, ctx, 1)["projected_fraction"] == 1.0


def test_metaplasticity_gates_adams_weight_updates_towards_zero_only() -> None:
    m = 40.0
    method = Metaplasticity(m=m, compile=False)
    net, opt, ctx = setup(method)
    plain = copy.deepcopy(net)
    plain_opt = torch.optim.Adam(plain.parameters(), lr=1e-2)
    old = [p.detach().clone() for p in net.parameters()]
    step(method, net, opt, ctx, 0)
    step(Vanilla(), plain, plain_opt, MethodContext(plain, sample), 0)  # Adam's own step
    for (name, p), q, o in zip(net.named_parameters(), plain.parameters(), old):
        if name.endswith("weight"):
            expected = o + metaplastic_gate(o, q.detach() - o, m)
            assert torch.allclose(p, expected, atol=1e-7)
            towards = (o * (q.detach() - o) < 0) & (o != 0)
            assert towards.any() and not torch.allclose(p[towards], q[towards])
        else:
            assert torch.equal(p, q)  # biases are not gated


FACTORIES: dict[str, Callable[[], CLMethod]] = {
    "l2": lambda: L2(lam=0.1),
    "lwf": lambda: LwF(lam=1.0, temperature=2.0),
    "replay": lambda: Replay(memory_size=16, batch_size=4, seed=2),
    "agem": lambda: AGEM(memory_size=16, ref_batch_size=8, seed=2),
    "metaplasticity": lambda: Metaplasticity(m=20.0, compile=False),
}


@pytest.mark.parametrize("name", FACTORIES)
def test_a_restored_method_continues_identically(name: str) -> None:
    method = FACTORIES[name]()
    net, opt, ctx = setup(method)
    for i in range(3):
        step(method, net, opt, ctx, i)
    end_task(method, ctx, 0)
    step(method, net, opt, ctx, 3)
    fresh = FACTORIES[name]()
    net2, opt2, ctx2 = setup(fresh, seed=9)
    net2.load_state_dict(net.state_dict())
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    fresh.load_state_dict(method.state_dict())
    ctx2.task = ctx.task
    for i in range(4, 7):
        step(method, net, opt, ctx, i)
        step(fresh, net2, opt2, ctx2, i)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), net2.parameters()))


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: Replay(memory_size=0), "method.memory_size=0 is not allowed"),
        (lambda: AGEM(memory_size=10, ref_batch_size=0), "method.ref_batch_size=0 is not allowed"),
        (lambda: LwF(lam=1.0, temperature=0.0), "method.temperature=0.0 is not allowed"),
        (lambda: LwF(lam=1.0, temperature=-2.0), "method.temperature=-2.0 is not allowed"),
        (lambda: LwF(lam=math.nan, temperature=2.0), "method.lam=nan is not allowed"),
        (lambda: LwF(1.0, 2.0, "both"), "method.new_outputs='both' is not allowed"),  # type: ignore[arg-type]
        (lambda: L2(lam=-1.0), "method.lam=-1.0 is not allowed"),
        (lambda: Metaplasticity(m=-0.5), "method.m=-0.5 is not allowed"),
    ],
)
def test_bad_arguments_are_one_line_errors(factory: Callable[[], CLMethod], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        factory()


@pytest.mark.parametrize("cls", [Replay, AGEM])
def test_a_memory_method_refuses_a_memory_larger_than_the_data(cls: type[CLMethod]) -> None:
    method = cls(memory_size=300)
    method.check_data(DataFacts((200, 200)))
    with pytest.raises(
        ConfigError, match=r"method.memory_size=300 is not allowed; use at most 200 .*1 tasks"
    ):
        method.check_data(DataFacts((200,)))
