"""A task's mini-batches and the chunks of an epoch, sliced from tensors (no per-sample
``__getitem__``).

Words: a *mini-batch* is ``batch_size`` examples, one optimizer step. What Lightning calls a
training batch is here a *chunk*: ``steps_per_chunk`` consecutive mini-batches, for which the
module takes that many optimizer steps in one ``training_step`` (the updates are the same for every
value; larger chunks spread Lightning's per-batch overhead, ~0.3 ms, over more steps:
``benchmarks/bench_throughput.py`` measures what that buys).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

from torch import Tensor

if TYPE_CHECKING:
    from cl_attractors.train.data import TaskData

Chunk = list[tuple[Tensor, Tensor]]
"""Consecutive training mini-batches ``(x, y)``: Lightning's training batch (see the module doc)."""


class TaskBatches:
    """Mini-batches ``(x[idx], y[idx])`` of one task's inputs and labels (already made by the
    family, once per task: :meth:`TaskData.task_data`), in a given order."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, order: Tensor | None = None) -> None:
        self.x, self.y, self.batch_size, self.order = x, y, batch_size, order

    @property
    def size(self) -> int:
        """Examples served: those of ``order`` when given (a joint run's slice), else all."""
        return len(self.y) if self.order is None else len(self.order)

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, self.size, self.batch_size):
            if self.order is None:
                idx: slice | Tensor = slice(start, start + self.batch_size)
            else:
                idx = self.order[start : start + self.batch_size]
            yield self.x[idx], self.y[idx]


T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter): mini-batches into chunks."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class EpochChunks:
    """The training mini-batches of the epoch the trainer is in, ``steps_per_chunk`` at a time: the
    epoch's task and that task's epoch come from the schedule, read when iteration starts (no
    set-up order is relied on)."""

    def __init__(self, dm: TaskData) -> None:
        self.dm = dm

    def __len__(self) -> int:
        return math.ceil(len(self._batches()) / self.dm.steps_per_chunk)

    def __iter__(self) -> Iterator[Chunk]:
        yield from chunked(self._batches(), self.dm.steps_per_chunk)  # the task read at the first batch

    def _batches(self) -> TaskBatches:
        pos = self.dm.schedule.loader_position(self.dm.trainer.current_epoch if self.dm.trainer else 0)
        return self.dm.train_batches(pos.task, pos.epoch)
