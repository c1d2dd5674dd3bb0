"""Runs the task sequence inside one ``trainer.fit``: the one owner of the schedule, and A(i, j).

Epoch ``e`` trains task ``e // epochs_per_task``: :class:`TaskSchedule` is the only place that says
so. :class:`TaskSequence` sets Lightning's limits from it once (``max_epochs``, the validation
cadence, the logging interval; the output directory is checked once, by the command line, before
anything is built) and, at every epoch start, tells the datamodule which task (and which
of its epochs) to serve and the module which task it trains. At a task's first epoch it clears the
optimizer state (Adam moments and step counts; the learning rate is kept) and calls the method's
``on_task_start``. After a task's last epoch (Lightning has just evaluated every task, one
dataloader per task, filling column j of A) it ends the task in this order: the method's
``on_task_end`` (EWC Fisher, SI consolidation), the task checkpoint, the outputs (so metrics.json
says a task is done only once its checkpoint is on disk), TensorBoard, then every
:class:`TaskCallback` (weight histograms, the progress line).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.trainer.states import TrainerFn

from callbacks import dashboard
from callbacks.task_checkpoint import TaskCheckpoint
from cl_attractors import metrics
from cl_attractors.errors import require
from cl_attractors.io import matrix_to_csv, save_tensor, write_json, write_text


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


class TaskCallback(pl.Callback):
    """A callback that acts per task; :class:`TaskSequence` calls these hooks (no-ops here)."""

    def on_task_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, task: int) -> None:
        """Training on ``task`` begins (after the optimizer reset and the method's hook)."""

    def on_task_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, task: int, summary: dict[str, Any]
    ) -> None:
        """``task`` is finished, checkpointed and written out; ``summary`` is metrics.json's content."""


class TaskSequence(pl.Callback):
    """Runs ``data.num_tasks`` tasks in one fit and records A[i, j] = acc on task i after task j.

    The sanity check is made a full evaluation of the untrained network (for forward transfer).

    Args:
        heatmaps: log an A(i, j) heat-map image to TensorBoard after each task.
    """

    def __init__(self, heatmaps: bool = True) -> None:
        self.heatmaps = heatmaps
        self.A: torch.Tensor | None = None
        self.initial: torch.Tensor | None = None
        self.tasks_done = 0
        self.schedule: TaskSchedule | None = None
        self.position: TaskPosition | None = None
        self.seconds_before = 0.0  # wall time spent before this process (restored on resume)
        self._start = time.monotonic()
        self._correct: list[int] = []
        self._count: list[int] = []
        self.validated: torch.Tensor | None = None  # `validate`: the checkpoint's accuracy per task

    # ---- set-up: the schedule's limits, once ---------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        dm = trainer.datamodule
        self.schedule = TaskSchedule(dm.num_tasks, dm.epochs_per_task)
        trainer.fit_loop.max_epochs = self.schedule.max_epochs
        trainer.check_val_every_n_epoch = self.schedule.epochs_per_task
        every = trainer.log_every_n_steps
        require(isinstance(every, int) and every >= 1, "trainer.log_every_n_steps", every, "an integer >= 1")
        # counted in Lightning batches (data.steps_per_batch optimizer steps each); at most one epoch's
        trainer.log_every_n_steps = min(every, len(dm.train_dataloader()))
        if self.A is None:
            self.A = torch.full((dm.num_tasks, dm.num_tasks), math.nan, dtype=torch.float64)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.monotonic()
        # after a checkpoint restore: evaluate the untrained network only once, and fully
        trainer.num_sanity_val_steps = 0 if self.initial is not None else math.inf
        dashboard.remember_hparams(trainer, pl_module)

    @property
    def matrix(self) -> torch.Tensor:
        """A (allocated at setup, or restored from a checkpoint)."""
        if self.A is None:
            raise RuntimeError("TaskSequence.setup has not run")
        return self.A

    @staticmethod
    def run_dir(trainer: pl.Trainer) -> Path:
        return Path(trainer.log_dir or trainer.default_root_dir)

    @property
    def seconds(self) -> float:
        """Wall time of the run so far, over every process that worked on it."""
        return self.seconds_before + time.monotonic() - self._start

    # ---- task boundaries ----------------------------------------------------------------
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.schedule is None:
            raise RuntimeError("TaskSequence.setup has not run")
        self.position = pos = self.schedule.position(trainer.current_epoch)
        trainer.datamodule.set_task(pos.task, pos.epoch)
        pl_module.current_task = pos.task
        if pos.first:
            for optimizer in trainer.optimizers:
                optimizer.state.clear()
            pl_module.method.on_task_start(pl_module, pos.task)
            for callback in self._task_callbacks(trainer):
                callback.on_task_start(trainer, pl_module, pos.task)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.position is not None and self.position.last:
            self._end_task(trainer, pl_module, self.position.task)

    def _end_task(self, trainer: pl.Trainer, pl_module: pl.LightningModule, task: int) -> None:
        dm = trainer.datamodule
        with torch.enable_grad():
            stats = pl_module.method.on_task_end(pl_module, task, dm)
        self.tasks_done = task + 1
        for checkpoint in trainer.checkpoint_callbacks:
            if isinstance(checkpoint, TaskCheckpoint):
                checkpoint.save_task(trainer, task)
        summary = self.summary()
        if trainer.is_global_zero:
            self.write_outputs(self.run_dir(trainer), dm.permutations)
        dashboard.log_task(trainer, self.matrix, task, dm.eval_split, stats, self.heatmaps)
        if summary["complete"]:
            dashboard.log_final(trainer, summary)
        for callback in self._task_callbacks(trainer):
            callback.on_task_end(trainer, pl_module, task, summary)

    @staticmethod
    def _task_callbacks(trainer: pl.Trainer) -> list[TaskCallback]:
        return [c for c in trainer.callbacks if isinstance(c, TaskCallback)]

    # ---- evaluation: column j of A ------------------------------------------------------
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        n = trainer.datamodule.num_tasks
        self._correct, self._count = [0] * n, [0] * n

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._correct[dataloader_idx] += int(outputs["correct"])
        self._count[dataloader_idx] += int(outputs["count"])

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dm = trainer.datamodule
        column = torch.tensor(
            [c / max(n, 1) for c, n in zip(self._correct, self._count)], dtype=torch.float64
        )
        if trainer.sanity_checking:
            full = all(n == len(dm.eval_batches(i).y) for i, n in enumerate(self._count))
            if self.initial is None and full and trainer.global_step == 0:
                self.initial = column
        elif trainer.state.fn == TrainerFn.FITTING and self.position is not None:
            self.matrix[:, self.position.task] = column
        elif trainer.state.fn == TrainerFn.VALIDATING:
            self.validated = column

    # ---- outputs ------------------------------------------------------------------------
    def summary(self) -> dict:
        """metrics.json content: per-task curves so far, and every summary of the filled part."""
        k = self.tasks_done
        out: dict = {
            "complete": k == self.matrix.shape[0],
            "tasks_done": k,
            "initial_acc": None if self.initial is None else self.initial.tolist(),
        }
        if k:
            part = self.matrix[:k, :k]
            out.update(metrics.summarize(part, None if self.initial is None else self.initial[:k]))
        return out

    def write_outputs(self, run_dir: Path, permutations: torch.Tensor) -> None:
        """Atomically (re)write accuracy_matrix.csv, metrics.json and permutations.pt."""
        write_text(run_dir / "accuracy_matrix.csv", matrix_to_csv(self.matrix))
        write_json(run_dir / "metrics.json", self.summary())
        # apart from metrics.json, which a resumed run repeats byte for byte
        timing = {"wall_time_s": round(self.seconds, 1), "tasks_done": self.tasks_done}
        write_json(run_dir / "timing.json", timing)
        if not (run_dir / "permutations.pt").exists():
            save_tensor(run_dir / "permutations.pt", permutations)

    # ---- checkpoint ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"A": self.A, "initial": self.initial, "tasks_done": self.tasks_done, "seconds": self.seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.A, self.initial = state_dict["A"], state_dict["initial"]
        self.tasks_done = state_dict["tasks_done"]
        self.seconds_before = state_dict.get("seconds", 0.0)
