"""Experience replay with a fixed memory (Hsu et al., 2018's naive rehearsal; Chaudhry et al.'s ER)."""

from __future__ import annotations

from torch import Tensor

from cl_attractors.errors import require, require_seed
from cl_attractors.methods.base import CLMethod, DataFacts, MethodContext
from cl_attractors.methods.baseline_formulas import masked_cross_entropy
from cl_attractors.methods.memory import EpisodicMemory


def check_memory(memory_size: int, batch_size: int, seed: int, batch_field: str) -> None:
    """The one-line checks of a memory's arguments (replay and A-GEM)."""
    for field, value in (("memory_size", memory_size), (batch_field, batch_size)):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        require(ok, f"method.{field}", value, "an integer >= 1")
    require_seed(seed, "method.seed")


def check_memory_fits(memory_size: int, data: DataFacts) -> None:
    """Before training: the memory is no larger than the sequence's training images."""
    total = sum(data.train_sizes)
    allowed = f"at most {total} (the training images of all {len(data.train_sizes)} tasks)"
    require(memory_size <= total, "method.memory_size", memory_size, allowed)


def memory_loss(ctx: MethodContext, memory: EpisodicMemory, n: int, step: int) -> Tensor:
    """The cross-entropy of ``n`` examples drawn from ``memory`` at ``step``, each scored on the
    outputs that count for its own task while ``ctx.task`` is trained (task-incremental: its
    task's head; class-incremental: every class seen so far; else every output), as Hsu et al.'s
    criterion scores a replayed image."""
    xm, ym, tasks = memory.draw(n, step)
    return masked_cross_entropy(ctx.net(xm), ym, ctx.hidden_outputs(tasks, ctx.task))


class Replay(CLMethod):
    """Replay: from the second task on, every step adds the cross-entropy of a batch of
    ``batch_size`` examples drawn from an :class:`EpisodicMemory` of ``memory_size`` examples
    (equal shares of the tasks seen, class-balanced, refreshed at every task's end), each example
    scored on the outputs its own task counts while the current task is trained
    (:func:`memory_loss`: its head in the task scenario, the classes seen in the class scenario).

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
        check_memory_fits(self.memory_size, data)

    def loss(self, ctx: MethodContext, x: Tensor, y: Tensor, outputs: Tensor) -> Tensor | None:
        if self.memory.filled == 0:
            return None
        loss = memory_loss(ctx, self.memory, self.batch_size, self.draws)
        self.draws += 1
        return loss

    def on_task_end(self, ctx: MethodContext) -> dict[str, float]:
        self.memory.add_task(ctx.task, ctx.sample)
        return {"memory_filled": float(self.memory.filled)}
