"""The per-step kernels (methods/kernels.py): a method's fused ``torch.compile`` kernels give what
its eager twins give, a kernel that cannot compile warns once and runs eagerly, and ``compile:
auto`` fuses only large targets."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from cl_attractors.methods import kernels
from cl_attractors.methods.sticky import StickyGradient
from cl_attractors.replicas.methods import replica_method
from cl_attractors.replicas.stacked import StackedMLP, replica_losses
from tests.helpers import fake_context, paper_method, tiny_net, train_steps


@pytest.mark.parametrize(
    "factory",
    [
        lambda c: paper_method("sticky", compile=c),
        lambda c: paper_method("sticky", apply_to="update", compile=c),
        lambda c: paper_method("sticky", l1_apply_to="update", compile=c),
        lambda c: paper_method("si", compile=c),
        lambda c: paper_method("ewc", fisher_samples=16, compile=c),
        lambda c: paper_method("mas", samples=16, compile=c),
    ],
)
def test_compiled_kernels_match_eager(factory: Any) -> None:
    eager, compiled = factory(False), factory(True)
    nets = [tiny_net(m) for m in (eager, compiled)]
    for m, (net, opt) in zip((eager, compiled), nets):
        m.stats_every = 2
        train_steps(m, net, opt, 3)
        m.on_task_end(fake_context(net, 0))
        train_steps(m, net, opt, 3, seed=5)
        m.on_task_end(fake_context(net, 1))
    for a, b in zip(nets[0][0].parameters(), nets[1][0].parameters()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    for name, a in eager.state_dict().items():  # importances, anchors, Fisher (stats: below)
        if isinstance(a, Tensor):
            assert torch.allclose(a, compiled.state_dict()[name], rtol=1e-4, atol=1e-6), name
    if isinstance(eager, StickyGradient):  # reset by on_task_end: compare the sampled steps
        train_steps(eager, *nets[0], 2)
        train_steps(compiled, *nets[1], 2)
        assert eager.gate_stats[0] > 0
        assert torch.allclose(eager.gate_stats, compiled.gate_stats, rtol=1e-4)


@pytest.mark.parametrize("switches", [{}, {"apply_to": "update"}, {"l1_apply_to": "update"}])
def test_compiled_replica_sticky_matches_eager(switches: dict[str, str]) -> None:
    """A group of sticky runs fuses its stacked steps as a single run does (``compile``), and
    computes what the uncompiled steps compute, each replica with its own phi."""
    weights = []
    for compile in (False, True):
        nets, methods = [], []
        for r in range(3):
            torch.manual_seed(r)
            net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
            method = paper_method("sticky", a1=0.05 * r, lam=2.0 + r, compile=compile, **switches)
            method.attach(net)
            nets.append(net)
            methods.append(method)
        stacked = StackedMLP(nets)
        group = replica_method(methods, stacked)
        opt = torch.optim.Adam(stacked.parameters(), lr=1e-2)
        gen = torch.Generator().manual_seed(0)
        for _ in range(4):
            x, y = torch.randn(3, 8, 6, generator=gen), torch.randint(0, 3, (3, 8), generator=gen)
            opt.zero_grad()
            replica_losses(stacked(x), y).sum().backward()
            group.on_before_optimizer_step()
            opt.step()
            group.on_after_optimizer_step(1e-2)
        kernels_of = [k for k in vars(group).values() if isinstance(k, kernels.Kernel)]
        assert kernels_of and all(k.compiled == compile for k in kernels_of)  # none fell back
        weights.append([p.detach().clone() for p in stacked.parameters()])
    for a, b in zip(*weights):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_kernel_that_cannot_compile_warns_once_and_runs_eagerly(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", ("/nonexistent/g++",))
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    kernel = kernels.Kernel(lambda t: t.mul_(3.0), lambda t: t.mul_(2.0), compiled=True)
    x = torch.ones(4)
    with pytest.warns(RuntimeWarning, match=r"torch.compile failed \(.*C\+\+ compiler.*runs eagerly"):
        kernel(x)
    assert not kernel.compiled and torch.equal(x, torch.full((4,), 2.0))  # only the eager twin ran
    kernel(x)
    assert torch.equal(x, torch.full((4,), 4.0))


@pytest.mark.parametrize(
    ("compile", "hidden", "wanted"),
    [("auto", 8, False), ("auto", 20000, True), (True, 8, True), (False, 20000, False)],
)
def test_compile_auto_fuses_only_large_targets(compile: Any, hidden: int, wanted: bool) -> None:
    net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))
    for method in (
        paper_method("sticky", compile=compile),
        paper_method("ewc", compile=compile),
        paper_method("si", compile=compile),
    ):
        method.attach(net)
        kernel = getattr(method, "step_kernel", None) or method._grad_kernel
        assert kernel.compiled == wanted
