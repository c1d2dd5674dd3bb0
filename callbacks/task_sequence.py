"""Runs the task sequence inside one ``trainer.fit``: tells the run the task, and fills A(i, j).

Epoch ``e`` trains task ``e // epochs_per_task``: the datamodule's
:class:`~cl_attractors.schedule.TaskSchedule` is the only place that says so (the command line
links ``trainer.max_epochs`` and ``trainer.check_val_every_n_epoch`` from it; :meth:`setup`
refuses a trainer that disagrees). Before the first task, the untrained network is evaluated on
every task, explicitly (forward transfer needs it). At every epoch start the callback tells the
module (and through it the method's context) which task it trains; at a task's first epoch it
clears the optimizer state (Adam moments and step counts; the learning rate is kept) and calls the
method's ``on_task_start``. After a task's last epoch (Lightning has just evaluated every task, one
dataloader per task, filling column j of A) it ends the task in this order: the method's
``on_task_end`` (EWC Fisher, SI consolidation), the task checkpoint, the outputs (so metrics.json
says a task is done only once its checkpoint is on disk), TensorBoard, then every
:class:`TaskCallback` (weight histograms, the progress line).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.trainer.states import TrainerFn

from callbacks import dashboard
from callbacks.eval_during import DuringTraining
from callbacks.task_checkpoint import TaskCheckpoint
from cl_attractors import metrics
from cl_attractors.errors import require
from cl_attractors.io import matrix_to_csv, save_tensor, write_json, write_text
from cl_attractors.schedule import TaskPosition, TaskSchedule


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

    Args:
        heatmaps: log an A(i, j) heat-map image to TensorBoard after each task.
        eval_every_n_steps: also evaluate every task trained so far every this many optimizer
            steps, on a fixed subsample of its test images (``callbacks.eval_during``; the command
            line's ``--eval_every_n_steps``); None (the default): off, at no cost.
        eval_subsample: images per task in that subsample.
        reset_optimizer: clear the optimizer's state (Adam's moments and step counts) at every
            task (the paper); false keeps one optimizer state over the sequence (Hsu et al. 2018).
            A ``data.protocol: independent`` run clears it with the fresh network either way.
    """

    def __init__(
        self,
        heatmaps: bool = True,
        eval_every_n_steps: int | None = None,
        eval_subsample: int = 1000,
        reset_optimizer: bool = True,
    ) -> None:
        self.heatmaps, self.reset_optimizer = heatmaps, reset_optimizer
        self.during = DuringTraining(eval_every_n_steps, eval_subsample)
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

    # ---- set-up: the schedule is the datamodule's; the trainer must agree with it ---------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        dm = trainer.datamodule
        self.schedule = dm.schedule
        for name, value in (
            ("max_epochs", self.schedule.max_epochs),
            ("check_val_every_n_epoch", self.schedule.epochs_per_task),
        ):
            given = getattr(trainer, name)
            require(
                given == value,
                f"trainer.{name}",
                given,
                f"{value} (from data.num_tasks, data.epochs_per_task)",
            )
        if self.A is None:
            self.A = torch.full((dm.num_tasks, dm.num_tasks), torch.nan, dtype=torch.float64)
        self.during.check(dm)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.monotonic()
        dashboard.remember_hparams(trainer, pl_module)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.initial is None:  # not after a checkpoint restore: it holds the untrained column
            self.initial = self.evaluate(trainer, pl_module)

    @staticmethod
    @torch.no_grad()
    def evaluate(trainer: pl.Trainer, pl_module: Any) -> torch.Tensor:
        """Accuracy of the network as it is on every task (the eval split), as a float64 column."""
        dm, plugin = trainer.datamodule, trainer.precision_plugin
        training = pl_module.training
        pl_module.train(False)  # evaluation mode
        column = []
        for task in range(dm.num_tasks):
            correct = count = 0
            for batch in dm.eval_batches(task):
                # what Lightning's loops do with a batch: to the device, then to the precision
                moved = plugin.convert_input(pl_module.transfer_batch_to_device(batch, pl_module.device, 0))
                with plugin.forward_context():
                    out = pl_module.count_correct(moved, task)
                correct, count = correct + int(out["correct"]), count + int(out["count"])
            column.append(correct / max(count, 1))
        pl_module.train(training)
        return torch.tensor(column, dtype=torch.float64)

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
        pl_module.set_task(pos.task)
        if pos.first:
            start_task(trainer, pl_module, pos.task, self.reset_optimizer)
            pl_module.method.on_task_start(pl_module.context)
            for callback in self._task_callbacks(trainer):
                callback.on_task_start(trainer, pl_module, pos.task)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        pos = self.position
        if pos is not None and self.during.due(trainer.global_step, batch_idx == 0 and pos.first):
            self.during.evaluate(trainer, pl_module, pos.task)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.position is not None and self.position.last:
            self._end_task(trainer, pl_module, self.position.task)

    def _end_task(self, trainer: pl.Trainer, pl_module: pl.LightningModule, task: int) -> None:
        dm = trainer.datamodule
        if task == dm.num_tasks - 1 and self.during.due(trainer.global_step, True):
            self.during.evaluate(trainer, pl_module, task)  # the sequence's end
        with torch.enable_grad():
            stats = pl_module.method.on_task_end(pl_module.context)
        self.tasks_done = task + 1
        for checkpoint in trainer.checkpoint_callbacks:
            if isinstance(checkpoint, TaskCheckpoint):
                checkpoint.save_task(trainer, task)
        summary = self.summary()
        if trainer.is_global_zero:
            self.write_outputs(self.run_dir(trainer), dm.family.state_dict())
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
        column = torch.tensor(
            [c / max(n, 1) for c, n in zip(self._correct, self._count)], dtype=torch.float64
        )
        if (
            trainer.state.fn == TrainerFn.FITTING
            and not trainer.sanity_checking
            and self.position is not None
        ):
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

    def write_outputs(self, run_dir: Path, family_state: dict[str, torch.Tensor]) -> None:
        """Atomically (re)write accuracy_matrix.csv and metrics.json; the family's drawn state
        (``permutations.pt`` for permuted tasks) once."""
        write_text(run_dir / "accuracy_matrix.csv", matrix_to_csv(self.matrix))
        write_json(run_dir / "metrics.json", self.summary())
        # apart from metrics.json, which a resumed run repeats byte for byte
        timing = {"wall_time_s": round(self.seconds, 1), "tasks_done": self.tasks_done}
        write_json(run_dir / "timing.json", timing)
        self.during.write(run_dir)
        for name, tensor in family_state.items():
            if not (run_dir / f"{name}.pt").exists():
                save_tensor(run_dir / f"{name}.pt", tensor)

    # ---- checkpoint ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "A": self.A,
            "initial": self.initial,
            "tasks_done": self.tasks_done,
            "seconds": self.seconds,
            "during": self.during.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.A, self.initial = state_dict["A"], state_dict["initial"]
        self.tasks_done = state_dict["tasks_done"]
        self.seconds_before = state_dict.get("seconds", 0.0)
        if "during" in state_dict:
            self.during.load_state_dict(state_dict["during"])


def start_task(trainer: pl.Trainer, pl_module: Any, task: int, reset_optimizer: bool) -> None:
    """At a task's first epoch: a fresh network from task 1 on (``data.protocol: independent``:
    ``pl_module.reset_network``), and the optimizer's state cleared (``tasks.reset_optimizer``, or
    with the fresh network). A single run's sequence and a replica group's share it."""
    fresh = getattr(trainer.datamodule, "protocol", "sequential") == "independent"
    if fresh and task > 0:
        pl_module.reset_network(task)
    if reset_optimizer or fresh:
        for optimizer in trainer.optimizers:
            optimizer.state.clear()
