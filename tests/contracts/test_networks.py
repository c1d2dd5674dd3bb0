"""Every method runs on both networks, the MLP (with heads) and the small CNN: a tiny two-task fit
each, the accuracy matrix filled (methods found from configs/method/, not listed), in the
task-incremental scenario (two heads: every method serves per-task output masks)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cl_attractors.methods.base import CLMethod, MethodContext
from cl_attractors.train.data import TaskData
from cl_attractors.train.families import Split
from cl_attractors.train.networks import CNN, MLP
from tests.helpers import ROOT, paper_method, quick_fit

METHODS = sorted(p.stem for p in (ROOT / "configs" / "method").glob("*.yaml"))
NETS = {
    "mlp": lambda heads: MLP(784, [16], 2, heads=heads),
    "cnn": lambda heads: CNN([28, 28], 2, heads=heads, channels=[4], hidden=8),
}


def split_data() -> TaskData:
    return TaskData(
        family=Split("task", groups=[[0, 1], [2, 3]]),
        source="synthetic",
        synthetic_size=256,
        num_tasks=2,
        batch_size=16,
        steps_per_chunk=2,
    )


def tiny_fit(net: nn.Module, method: CLMethod) -> torch.Tensor:
    """Two tasks of synthetic data, task-incremental; returns the accuracy matrix."""
    return quick_fit(net, method, split_data())


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("name", METHODS)
def test_every_method_runs_on_every_network(name: str, net: str) -> None:
    method = paper_method(name, **({"fisher_samples": 64} if name == "ewc" else {}))
    network = NETS[net](2)
    before = [p.detach().clone() for p in network.parameters()]
    A = tiny_fit(network, method)
    assert A.shape == (2, 2) and bool(torch.isfinite(A).all() and (A >= 0).all() and (A <= 1).all())
    assert all(torch.isfinite(p).all() for p in network.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(before, network.parameters())), f"{name} on {net}"


class SeesOutputs(CLMethod):
    """Records what the loss hook is handed in a task-incremental fit (two heads of two outputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def loss(self, ctx: MethodContext, x: torch.Tensor, y: torch.Tensor, outputs: torch.Tensor) -> None:
        self.seen.append(outputs.detach())


def test_the_loss_hook_sees_every_output_of_the_network() -> None:
    """The cross-entropy counts the task's head; the method gets the network's outputs unmasked (LwF
    distils the old heads from them without a second forward pass)."""
    method = SeesOutputs()
    tiny_fit(NETS["mlp"](2), method)
    assert method.seen and all(o.shape[1] == 4 and bool(torch.isfinite(o).all()) for o in method.seen)


def test_methods_are_found() -> None:
    assert {"ewc", "si", "mas", "vanilla"} <= set(METHODS) and Path(
        ROOT / "configs" / "model" / "cnn.yaml"
    ).is_file()
