"""Experience replay with a fixed memory (Hsu et al., 2018's naive rehearsal; Chaudhry et al.'s ER)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from cl_attractors.errors import require, require_seed
from cl_attractors.methods.base import CLMethod, DataFacts, MethodContext
from cl_attractors.methods.memory import EpisodicMemory


def check_memory(memory_size: int, batch_size: int, seed: int, batch_field: str) -> None:
    """The one-line checks of a memory's arguments (replay and A-GEM)."""
    for field, value in (("memory_size", memory_size), (batch_field, batch_size)):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        require(ok, f"method.{field}", value, "an integer >= 1")
    require_seed(seed, "method.seed")


def check_memory_fits(method: str, memory_size: int, data: DataFacts) -> None:
    """Before training: the memory is no larger than the sequence's training images, and the
    family shares its outputs between tasks (replayed images are scored on the outputs of the
    task in training, which a per-task mask would not count)."""
    total = sum(data.train_sizes)
    allowed = f"at most {total} (the training images of all {len(data.train_sizes)} tasks)"
    require(memory_size <= total, "method.memory_size", memory_size, allowed)
    data.require_shared_outputs(method, "replays old tasks on the current task's")


class Replay(CLMethod):
    """Replay: from the second task on, every step adds the cross-entropy of a batch of
    ``batch_size`` examples drawn from an :class:`EpisodicMemory` of ``memory_size`` examples
    (equal shares of the tasks seen, class-balanced, refreshed at every task's end).

    The replayed batch counts as much as the current one (``L = L_new + L_memory``): GT-RIPL's
    naive rehearsal (Hsu et al., 2018) mixes old and new data 1:1 in one loader. With Adam the
    update is the same as for their mean up to Adam's epsilon.

    Args:
        memory_size: ``M``, examples held in total (Hsu et al.: 1100 for 5 split-MNIST tasks).
        batch_size: memory examples per step (the training batch's size: 1:1).
        seed: seed of the memory's generators (which examples are stored, which are drawn).
    """

    counters = ("draws",)
    hyperparameters = ("memory_size", "batch_size", "seed")

    def __init__(self, memory_size: int, batch_size: int = 50, seed: int = 0) -> None:
        super().__init__()
        check_memory(memory_size, batch_size, seed, "batch_size")
        self.memory_size, self.batch_size, self.seed = memory_size, batch_size, seed
        self.memory = EpisodicMemory(memory_size, seed)
        self.draws = 0

    def check_data(self, data: DataFacts) -> None:
        check_memory_fits("Replay", self.memory_size, data)

    def loss(self, ctx: MethodContext, x: Tensor, y: Tensor, logits: Tensor) -> Tensor | None:
        if self.memory.filled == 0:
            return None
        xm, ym = self.memory.draw(self.batch_size, self.draws)
        self.draws += 1
        return F.cross_entropy(ctx.net(xm), ym)

    def on_task_end(self, ctx: MethodContext) -> dict[str, float]:
        self.memory.add_task(ctx.task, ctx.sample)
        return {"memory_filled": float(self.memory.filled)}
