"""The stacked network: R replicas as one model, and one Adam over it is exactly R Adams."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cl_attractors.errors import ConfigError
from cl_attractors.replicas.stacked import StackedMLP, replica_losses
from cl_attractors.train.networks import MLP

R, B, IN, HID, OUT = 3, 7, 12, 9, 4


def nets(seed: int = 0) -> list[nn.Module]:
    out = []
    for r in range(R):
        torch.manual_seed(seed + r)
        out.append(MLP(IN, [HID, HID], OUT).double())
    return out


def test_forward_and_unstack_match_each_replica() -> None:
    singles = nets()
    stacked = StackedMLP(singles)
    x = torch.randn(R, B, IN, dtype=torch.float64)
    y = stacked(x)
    for r, net in enumerate(singles):
        torch.testing.assert_close(y[r], net(x[r]), rtol=0, atol=1e-13)
        state = stacked.unstack(r)
        assert list(state) == [n for n, _ in net.named_parameters()]
        for name, p in net.named_parameters():
            assert torch.equal(state[name], p.detach())


def test_load_replica_round_trips() -> None:
    singles = nets()
    stacked = StackedMLP(singles)
    other = MLP(IN, [HID, HID], OUT).double()
    stacked.load_replica(1, other.state_dict())
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in stacked.unstack(1).items())
    assert all(torch.equal(v, singles[0].state_dict()[k]) for k, v in stacked.unstack(0).items())


@pytest.mark.parametrize("fused", [False, True])
def test_one_adam_over_stacked_parameters_is_r_adams(fused: bool) -> None:
    """Float64, 20 steps, a reset of the moments halfway: every replica equal to its own run to 1e-12."""
    singles = nets(seed=10)
    stacked = StackedMLP(singles)
    optimizers = [torch.optim.Adam(n.parameters(), lr=1e-2, fused=fused) for n in singles]
    joint = torch.optim.Adam(stacked.parameters(), lr=1e-2, fused=fused)
    g = torch.Generator().manual_seed(0)
    for step in range(20):
        if step == 10:  # the per-task reset
            joint.state.clear()
            for opt in optimizers:
                opt.state.clear()
        x = torch.randn(R, B, IN, dtype=torch.float64, generator=g)
        y = torch.randint(0, OUT, (R, B), generator=g)
        for net, opt, xr, yr in zip(singles, optimizers, x, y):
            opt.zero_grad()
            F.cross_entropy(net(xr), yr).backward()
            opt.step()
        joint.zero_grad()
        replica_losses(stacked(x), y).sum().backward()
        joint.step()
    worst = max(
        (stacked.unstack(r)[name] - p.detach()).abs().max().item()
        for r, net in enumerate(singles)
        for name, p in net.named_parameters()
    )
    assert worst <= 1e-12


def test_a_nan_replica_leaves_the_others_alone() -> None:
    singles = nets()
    stacked = StackedMLP(singles)
    x = torch.randn(R, B, IN, dtype=torch.float64)
    x[1, 0, 0] = float("nan")
    losses = replica_losses(stacked(x), torch.zeros(R, B, dtype=torch.long))
    assert losses.isnan().tolist() == [False, True, False]
    losses.sum().backward()
    for p in stacked.parameters():
        assert p.grad is not None and p.grad[[0, 2]].isfinite().all()


def test_refuses_other_networks_in_one_line() -> None:
    with pytest.raises(ConfigError, match="model.net layer Conv1d is not allowed with replicas"):
        StackedMLP([nn.Sequential(nn.Conv1d(1, 1, 1))])
    with pytest.raises(ConfigError, match="replicas share one architecture"):
        StackedMLP([MLP(4, [3], 2), MLP(4, [5], 2)])
