"""Every batched method equals R runs of its single-run method, replica by replica (float64)."""

from __future__ import annotations

import itertools
import typing
from collections.abc import Callable
from typing import Any, Literal

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cl_attractors.errors import ConfigError
from cl_attractors.methods.base import CLMethod, MethodContext, Vanilla
from cl_attractors.methods.ewc import EWC
from cl_attractors.methods.mas import MAS
from cl_attractors.methods.si import SI
from cl_attractors.methods.sticky import StickyGradient, Switches
from cl_attractors.replicas.methods import replica_method
from cl_attractors.replicas.stacked import StackedMLP, replica_losses

R, B, N, IN, OUT, TASKS, STEPS = 3, 8, 128, 6, 3, 2, 6
PHI = {"a1": 0.1, "mu": 0.01, "sigma": 0.2, "gamma": 4.0, "zeta": 0.01, "lam": 2.0}


def sticky(r: int, **kw: Any) -> CLMethod:
    phi = {**PHI, "a1": 0.1 * (r + 1), "lam": 1.0 + r, "zeta": 0.01 * (r + 1), "f_min": 0.1 * r}
    flags = {"sticky": True, "l1": True, "smart_init": r % 2 == 0, **kw}
    return StickyGradient(**phi, **flags, compile=False)


METHODS: dict[str, Callable[[int], CLMethod]] = {
    "vanilla": lambda r: Vanilla(),
    "sticky": lambda r: sticky(r, smart_init=True),
    "sticky_decoupled_l1": lambda r: sticky(r, smart_init=True, l1_apply_to="update"),
    "sticky_update_gate": lambda r: sticky(r, smart_init=True, apply_to="update"),
    "l1_only_weights": lambda r: sticky(r, sticky=False, smart_init=True, params="weights", layers=[1]),
    "ewc": lambda r: EWC(lam=2.0 * (r + 1), fisher_samples=20, seed=r),
    "ewc_online_true": lambda r: EWC(
        lam=5.0 + r, fisher="true", mode="online", gamma_online=0.5 + 0.2 * r, fisher_samples=20, seed=7
    ),
    "ewc_batched": lambda r: EWC(lam=1.0 + r, fisher="batched", fisher_samples=100, fisher_chunk=16, seed=r),
    "mas": lambda r: MAS(lam=1.0 + r, samples=20, seed=r),
    "si": lambda r: SI(c=0.1 * (r + 1), xi=0.1 + 0.05 * r, compile=False),
}


def net(r: int, make: Callable[[int], CLMethod]) -> tuple[nn.Sequential, CLMethod]:
    torch.manual_seed(100 + r)
    model = nn.Sequential(nn.Linear(IN, 5), nn.ReLU(), nn.Linear(5, OUT)).double()
    method = make(r).double()
    method.attach(model)  # the smart init draws from the global RNG here, as in a single run
    return model, method


def pools() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(R, N, IN, dtype=torch.float64, generator=g), torch.randint(0, OUT, (R, N), generator=g)


def sample(r: int, task: int, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    x, y = pools()
    idx = torch.randperm(N, generator=generator)[:n]
    return x[r, idx] + task, y[r, idx]


def run_single(r: int, model: nn.Sequential, method: CLMethod) -> None:
    """One replica alone, through its method's own hooks (the single-run API)."""
    ctx = MethodContext(model, lambda task, n, g: sample(r, task, n, g))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(11)
    for task in range(TASKS):
        opt.state.clear()
        ctx.task = task
        method.on_task_start(ctx)
        for _ in range(STEPS):
            x, y = (
                torch.randn(R, B, IN, dtype=torch.float64, generator=g),
                torch.randint(0, OUT, (R, B), generator=g),
            )
            opt.zero_grad()
            F.cross_entropy(model(x[r] + task), y[r]).backward()
            method.on_before_optimizer_step(ctx, opt)
            opt.step()
            method.on_after_optimizer_step(ctx, opt)
        with torch.enable_grad():
            method.on_task_end(ctx)


def run_stacked(stacked: StackedMLP, methods: list[CLMethod]) -> Any:
    batched = replica_method(methods, stacked)
    opt = torch.optim.Adam(stacked.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(11)
    for task in range(TASKS):
        opt.state.clear()
        batched.on_task_start(task)
        for _ in range(STEPS):
            x, y = (
                torch.randn(R, B, IN, dtype=torch.float64, generator=g),
                torch.randint(0, OUT, (R, B), generator=g),
            )
            opt.zero_grad()
            replica_losses(stacked(x + task), y).sum().backward()
            batched.on_before_optimizer_step()
            opt.step()
            batched.on_after_optimizer_step(1e-3)
        batched.on_task_end(task, sample, lambda task, trained: None)
    return batched


def switch_combinations() -> list[dict[str, Any]]:
    """Every combination of :class:`Switches` a single run accepts: each bool both ways, each
    ``Literal`` through its values (generated from the dataclass, so a new switch is covered)."""
    hints = typing.get_type_hints(Switches)
    choices = []
    for name, hint in hints.items():
        assert hint is bool or typing.get_origin(hint) is Literal, f"switch {name}: {hint} has no value list"
        choices.append((False, True) if hint is bool else typing.get_args(hint))
    return [dict(zip(hints, combo)) for combo in itertools.product(*choices)]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_batched_method_equals_each_single_run(name: str) -> None:
    assert_batched_equals_singles(name, METHODS[name])


@pytest.mark.parametrize(
    "switches", switch_combinations(), ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items())
)
def test_every_sticky_switch_combination_runs_batched_as_its_single_run(switches: dict[str, Any]) -> None:
    assert_batched_equals_singles("sticky", lambda r: sticky(r, **switches))


def assert_batched_equals_singles(name: str, make: Callable[[int], CLMethod]) -> None:
    singles = [net(r, make) for r in range(R)]
    stacked = StackedMLP([m for m, _ in singles])
    twins = [net(r, make) for r in range(R)]  # the same inits, for the batched run
    assert all(
        torch.equal(stacked.unstack(r)[k], v)
        for r, (m, _) in enumerate(twins)
        for k, v in m.state_dict().items()
    )
    batched = run_stacked(stacked, [meth for _, meth in twins])
    for r, (model, method) in enumerate(singles):
        run_single(r, model, method)
        for k, v in model.state_dict().items():
            torch.testing.assert_close(
                stacked.unstack(r)[k], v, rtol=0, atol=1e-10, msg=f"{name} replica {r} {k}"
            )
        state = batched.replica_state(r, twins[r][1])
        for k, v in method.state_dict().items():
            if isinstance(v, Tensor) and k != "gate_stats":
                torch.testing.assert_close(state[k], v, rtol=0, atol=1e-10, msg=f"{name} replica {r} {k}")
            elif k == "_extra_state":
                assert state[k] == v


def test_state_round_trips_through_load_replica() -> None:
    twins = [net(r, METHODS["si"]) for r in range(R)]
    stacked = StackedMLP([m for m, _ in twins])
    batched = run_stacked(stacked, [meth for _, meth in twins])
    fresh = replica_method([meth for _, meth in (net(r, METHODS["si"]) for r in range(R))], stacked)
    for r in range(R):
        fresh.load_replica(r, batched.replica_state(r, twins[r][1]))
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), batched.state_dict().values()))


def test_refusals_are_one_line() -> None:
    twins = [net(r, METHODS["sticky"]) for r in range(2)]
    stacked = StackedMLP([m for m, _ in twins])
    with pytest.raises(ConfigError, match="model.method differs between the replicas"):
        replica_method([twins[0][1], EWC(lam=1.0)], stacked)
    mixed = [sticky(0), sticky(2, apply_to="update")]
    with pytest.raises(ConfigError, match="method.apply_to differs between the replicas"):
        replica_method(mixed, stacked)

    class Other(CLMethod):
        pass

    with pytest.raises(ConfigError, match="model.method=Other is not allowed with replicas; use one of"):
        replica_method([Other(), Other()], stacked)


def test_a_group_built_in_float32_keeps_each_hyperparameter_exact_in_float64() -> None:
    """Lightning's precision plugin turns a group float64 after it is built in float32: every
    per-replica value is then the single method's exact float, not its float32 rounding."""
    singles = []
    for r in range(2):
        torch.manual_seed(r)
        model = nn.Sequential(nn.Linear(IN, 5), nn.ReLU(), nn.Linear(5, OUT))  # float32
        method = EWC(lam=0.1 * (r + 1), mode="online", gamma_online=0.3, fisher_samples=4, seed=r)
        method.attach(model)
        singles.append((model, method))
    stacked = StackedMLP([m for m, _ in singles])
    batched = replica_method([meth for _, meth in singles], stacked)
    stacked.double()
    batched.double()
    scale = batched.hyper("scale")
    assert scale.dtype == torch.float64 and scale.flatten().tolist() == [0.1, 0.2]
    assert batched.hyper("decay").flatten().tolist() == [0.3, 0.3]
