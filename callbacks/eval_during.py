"""Evaluation during training (``--eval_every_n_steps K``), owned by the task-sequence callback.

Every ``K`` optimizer steps, and at every task's first step (the network as the previous task left
it) and after the last task, every task trained so far (the current one included) is evaluated on
a fixed subsample of ``eval_subsample`` images of the run's evaluation split, the same images all
run long (``cl_attractors.stability.subsample``: a function of the data seed and the task). The
rows (step, task, trained, accuracy) are kept in the task sequence's checkpoint state, written to
``eval_curve.csv`` with the other outputs after every task, and drawn in TensorBoard
(``during/task_<i>``, ``during/old_tasks_mean`` on the optimizer-step axis). Evaluations fall on
chunk boundaries, so ``K`` is a multiple of ``data.steps_per_chunk``. Off (``K`` null), nothing
here runs: no subsample is built, no hook does more than one comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from cl_attractors.errors import require
from cl_attractors.io import write_text
from cl_attractors.stability import CURVE_FILE, curve_csv, subsample


def check_every(every: int | None) -> None:
    """``eval_every_n_steps``: null (off) or an integer >= 1."""
    ok = every is None or (isinstance(every, int) and not isinstance(every, bool) and every >= 1)
    require(ok, "eval_every_n_steps", every, "a positive integer (optimizer steps) or null (off)")


class DuringTraining:
    """The evaluations of one run (see the module docstring).

    Args:
        every: ``K``, optimizer steps between evaluations (None: off).
        size: test images per task in the subsample.
    """

    def __init__(self, every: int | None, size: int) -> None:
        check_every(every)
        ok = isinstance(size, int) and not isinstance(size, bool) and size >= 1
        require(ok, "tasks.eval_subsample", size, "an integer >= 1")
        self.every, self.size = every, size
        self.rows: list[tuple[int, int, int, float]] = []
        self._batches: dict[int, tuple[Tensor, Tensor]] = {}
        self._last_step = -1

    @property
    def on(self) -> bool:
        return self.every is not None

    def check(self, dm: Any) -> None:
        """Before training: ``K`` falls on chunk boundaries, every task has ``size`` images."""
        chunk = dm.steps_per_chunk
        ok = self.every is None or self.every % chunk == 0
        allowed = f"a multiple of data.steps_per_chunk={chunk} (evaluations fall between chunks)"
        require(ok, "eval_every_n_steps", self.every, allowed)
        if not self.on:
            return
        for task in range(dm.num_tasks):
            n = len(dm.task_split(dm.eval_split, task)[1])
            split = f"the {dm.eval_split} split of task {task} has {n} images"
            require(self.size <= n, "tasks.eval_subsample", self.size, f"an integer in [1, {n}] ({split})")

    def due(self, step: int, task_start: bool) -> bool:
        """Whether the chunk starting at ``step`` is evaluated first."""
        return self.on and step != self._last_step and (task_start or step % self.every == 0)  # type: ignore[operator]

    def _batch(self, trainer: pl.Trainer, pl_module: Any, task: int) -> tuple[Tensor, Tensor]:
        """Task ``task``'s subsample, on the device and in the run's precision (built once)."""
        if task not in self._batches:
            dm = trainer.datamodule
            x, y = dm.task_split(dm.eval_split, task)
            idx = torch.from_numpy(subsample(len(y), self.size, dm.seed, task))
            batch = (dm.family.inputs(x[idx], task), dm.family.labels(y[idx], task))
            batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
            self._batches[task] = trainer.precision_plugin.convert_input(batch)
        return self._batches[task]

    @torch.no_grad()
    def evaluate(self, trainer: pl.Trainer, pl_module: Any, trained: int) -> None:
        """Evaluate tasks ``0..trained`` now (one host sync for all of them) and log them."""
        step = trainer.global_step
        self._last_step = step
        training = pl_module.training
        pl_module.train(False)
        correct = [
            pl_module.count_correct(self._batch(trainer, pl_module, t), t)["correct"]
            for t in range(trained + 1)
        ]
        pl_module.train(training)
        accuracy = (torch.stack(correct).double() / self.size).tolist()
        self.rows += [(step, t, trained, a) for t, a in enumerate(accuracy)]
        self._log(trainer, step, accuracy, trained)

    @staticmethod
    def _log(trainer: pl.Trainer, step: int, accuracy: list[float], trained: int) -> None:
        values = {f"during/task_{t + 1}": a for t, a in enumerate(accuracy)}
        if trained:
            values["during/old_tasks_mean"] = sum(accuracy[:trained]) / trained
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger) and trainer.is_global_zero:
                logger.log_metrics(values, step=step)

    def write(self, run_dir: Path) -> None:
        """Atomically (re)write ``eval_curve.csv`` (nothing when off)."""
        if self.on:
            write_text(run_dir / CURVE_FILE, curve_csv(self.rows))

    def state_dict(self) -> Tensor:
        return torch.tensor(self.rows, dtype=torch.float64).reshape(-1, 4)

    def load_state_dict(self, rows: Tensor) -> None:
        self.rows = [(int(s), int(t), int(k), float(a)) for s, t, k, a in rows.tolist()]
