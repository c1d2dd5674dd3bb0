"""R replicas' task sequences served as one: the batch of step s is ``[R, B, ...]``, each replica's
row its own run's mini-batch s (its own seed's family draws and data order).

Each replica keeps its own :class:`~cl_attractors.train.data.TaskData` (its seed, its family's
draws); the base examples are loaded once and shared. A batch is the replicas' own batches stacked,
so a replica sees exactly the examples, transformation and order its single run sees.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import lightning.pytorch as pl
import torch
from torch import Tensor

from cl_attractors.errors import ConfigError
from cl_attractors.schedule import TaskSchedule
from cl_attractors.train.batches import TaskBatches, chunked
from cl_attractors.train.data import TaskData

Batch = tuple[Tensor, Tensor]
"""Inputs ``[R, B, ...]`` and labels ``[R, B]``."""


class ReplicaBatches:
    """The replicas' mini-batches of one task, stacked step by step."""

    def __init__(self, per_replica: Sequence[TaskBatches]) -> None:
        self.per_replica = per_replica
        lengths = {(len(b), len(b.y)) for b in per_replica}
        if len(lengths) > 1:
            raise ConfigError(
                "data.family gives the replicas of one group tasks of different sizes; "
                "run this family without --replicas"
            )

    def __len__(self) -> int:
        return len(self.per_replica[0])

    def __iter__(self) -> Iterator[Batch]:
        for batches in zip(*self.per_replica, strict=True):
            yield torch.stack([x for x, _ in batches]), torch.stack([y for _, y in batches])


class ReplicaChunks:
    """The training batches of the trainer's current epoch, ``steps_per_chunk`` at a time (the
    task and its epoch from the schedule, as a single run's loader reads them)."""

    def __init__(self, data: ReplicaData) -> None:
        self.data = data

    def __len__(self) -> int:
        return math.ceil(len(self._batches()) / self.data.steps_per_chunk)

    def __iter__(self) -> Iterator[list[Batch]]:
        yield from chunked(self._batches(), self.data.steps_per_chunk)  # read at the first batch

    def _batches(self) -> ReplicaBatches:
        trainer = self.data.trainer
        pos = self.data.schedule.loader_position(trainer.current_epoch if trainer else 0)
        return ReplicaBatches([m.train_batches(pos.task, pos.epoch) for m in self.data.members])


class ReplicaData(pl.LightningDataModule):
    """The task sequences of a group's replicas (same source, tasks, sizes; own seeds and draws).

    Args:
        members: each replica's own datamodule, as its single run builds it.
    """

    def __init__(self, members: Sequence[TaskData]) -> None:
        super().__init__()
        self.members = list(members)
        first = self.members[0]
        self.schedule: TaskSchedule = first.schedule
        self.num_tasks, self.steps_per_chunk = first.num_tasks, first.steps_per_chunk
        self.eval_split, self.protocol = first.eval_split, first.protocol

    def setup(self, stage: str | None = None) -> None:
        first = self.members[0].loaded()
        for dm in self.members[1:]:
            if dm.splits is None:  # one copy of the base examples for every replica
                dm.splits = first
                dm.family.setup(dm.num_tasks, first.x_train.shape[1], dm.seed)

    def train_dataloader(self) -> ReplicaChunks:
        self.setup()
        return ReplicaChunks(self)

    def eval_batches(self, task: int) -> ReplicaBatches:
        """Every replica's evaluation batches of ``task`` (its ``data.eval_split``)."""
        return ReplicaBatches([m.eval_batches(task) for m in self.members])

    def sample(self, replica: int, task: int, n: int, generator: torch.Generator) -> Batch:
        """``n`` training examples of ``task`` drawn as replica ``replica``'s run draws them (CPU)."""
        return self.members[replica].sample(task, n, generator)

    def output_masks(self, task: int, trained: int, training: bool = False) -> Tensor | None:
        """``[R, outputs]``: which outputs count for ``task`` in each replica while ``trained`` is
        the newest task trained (each replica's own ``TaskData.output_mask``; None: all, everywhere)."""
        masks = [m.output_mask(task, trained, training) for m in self.members]
        given = [mask for mask in masks if mask is not None]
        if not given:
            return None
        return torch.stack([torch.ones_like(given[0]) if mask is None else mask for mask in masks])
