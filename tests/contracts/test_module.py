"""The module's seams without a fit: the injected network, the family's output mask, the method's
context (the task it is told, examples on the network's device)."""

from __future__ import annotations

import torch
from torch import Tensor

from cl_attractors.train.families import Permuted
from cl_attractors.train.module import CLModule
from cl_attractors.train.networks import MLP


class FirstHalf(Permuted):
    """Permuted tasks where task t counts only outputs ``[5t, 5t + 5)`` (a two-head scenario)."""

    def output_mask(self, task: int, trained: int) -> Tensor | None:
        mask = torch.zeros(10, dtype=torch.bool)
        mask[5 * task : 5 * task + 5] = True
        return mask


class Data:
    """What the module reads of a datamodule: the family and examples of a task."""

    def __init__(self, family: Permuted) -> None:
        self.family, self.seed = family, 0
        family.setup(2, 6, seed=0)

    def sample(self, task: int, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x = torch.rand(n, 6, generator=generator)
        return self.family.inputs(x, task), torch.full((n,), task)

    def output_mask(self, task: int, trained: int, training: bool = False) -> Tensor | None:
        return self.family.output_mask(task, trained)


def module_with(family: Permuted) -> CLModule:
    torch.manual_seed(0)
    module = CLModule(MLP(6, [8], 10))
    module.data = Data(family)
    return module


def test_the_family_output_mask_hides_the_other_outputs() -> None:
    module = module_with(FirstHalf())
    x = torch.rand(4, 6)
    for task in (0, 1):
        logits = module.logits(x, task)
        counted = torch.isfinite(logits)
        assert counted[:, 5 * task : 5 * task + 5].all() and counted.sum() == 4 * 5
        assert torch.equal(logits[counted], module.net(x)[counted])
        assert ((logits.argmax(1) >= 5 * task) & (logits.argmax(1) < 5 * task + 5)).all()
        correct = module.count_correct((x, torch.full((4,), 5 * task)), task)
        assert int(correct["count"]) == 4


def test_without_a_mask_every_output_counts() -> None:
    module = module_with(Permuted())
    x = torch.rand(4, 6)
    assert torch.equal(module.logits(x, 1), module.net(x))


def test_the_method_context_follows_the_task_and_draws_examples() -> None:
    module = module_with(Permuted())
    module.set_task(1)
    ctx = module.context
    assert ctx.task == module.task == 1 and ctx.net is module.net and ctx.device == torch.device("cpu")
    x, y = ctx.sample(1, 3, torch.Generator().manual_seed(0))
    again, _ = ctx.sample(1, 3, torch.Generator().manual_seed(0))
    assert x.shape == (3, 6) and torch.equal(x, again) and (y == 1).all()
