"""The task schedule: which task, and which of its epochs, an epoch of the one ``fit`` trains.

The one place that maps Lightning's epoch counter to tasks: the task-sequence callback and the
datamodule's training loader both ask it. No Lightning here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskPosition:
    """Where an epoch falls in the sequence: its task and its epoch within that task."""

    task: int
    epoch: int
    first: bool
    last: bool


@dataclass(frozen=True)
class TaskSchedule:
    """``num_tasks`` tasks of ``epochs_per_task`` epochs each, trained one after the other."""

    num_tasks: int
    epochs_per_task: int

    @property
    def max_epochs(self) -> int:
        return self.num_tasks * self.epochs_per_task

    def position(self, epoch: int) -> TaskPosition:
        task, within = divmod(epoch, self.epochs_per_task)
        return TaskPosition(task, within, within == 0, within == self.epochs_per_task - 1)

    def loader_position(self, epoch: int) -> TaskPosition:
        """The position a training loader serves at ``epoch``: Lightning reloading the loader
        every epoch asks for it once more after the last one, which then serves the last epoch."""
        return self.position(min(epoch, self.max_epochs - 1))


def max_epochs(num_tasks: int, epochs_per_task: int) -> int:
    """``trainer.max_epochs`` of a sequence (linked from ``data.*`` by the command line)."""
    return TaskSchedule(num_tasks, epochs_per_task).max_epochs
