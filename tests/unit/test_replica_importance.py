"""EWC's and MAS's importances batched over replicas equal each replica's own estimate."""

from __future__ import annotations

import pytest
import torch

from cl_attractors.methods.importance import fisher_diagonal, mas_importance
from cl_attractors.replicas.importance import fisher_diagonals, mas_importances
from cl_attractors.replicas.stacked import StackedMLP
from cl_attractors.train.networks import MLP

R, N, IN, OUT = 3, 100, 10, 4


def setup() -> tuple[list[torch.nn.Sequential], StackedMLP, torch.Tensor, torch.Tensor]:
    nets = []
    for r in range(R):
        torch.manual_seed(r)
        nets.append(MLP(IN, [8], OUT).double())
    g = torch.Generator().manual_seed(5)
    x = torch.randn(R, N, IN, dtype=torch.float64, generator=g)
    y = torch.randint(0, OUT, (R, N), generator=g)
    return nets, StackedMLP(nets), x, y


def assert_per_replica(stacked: StackedMLP, batched: list[torch.Tensor], single: list[dict]) -> None:
    for r, expected in enumerate(single):
        for name, shape, value in zip(stacked.names, stacked.shapes, batched):
            torch.testing.assert_close(value[r].reshape(shape), expected[name], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("estimator", ["empirical", "true", "batched"])
def test_fisher_per_replica(estimator: str) -> None:
    nets, stacked, x, y = setup()
    single = [
        fisher_diagonal(net, dict(net.named_parameters()), x[r], y[r], estimator)  # type: ignore[arg-type]
        for r, net in enumerate(nets)
    ]
    assert_per_replica(stacked, fisher_diagonals(stacked, x, y, estimator), single)


def test_mas_per_replica() -> None:
    nets, stacked, x, _ = setup()
    single = [mas_importance(net, dict(net.named_parameters()), x[r]) for r, net in enumerate(nets)]
    assert_per_replica(stacked, mas_importances(stacked, x), single)
