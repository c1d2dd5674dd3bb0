"""What a person reads in the terminal while ``fit`` runs: one progress bar for the task sequence.

In a terminal the bar reads ``task 3/10`` with the last evaluated task's accuracy and the average
accuracy over the tasks seen, and tqdm's estimate of the time left for the whole sequence; no bar
is drawn for the per-task evaluations. When stdout is not a terminal (a log
file, a grid worker) it prints one plain line per task instead. :func:`quiet_lightning` turns off
Lightning's advertisements; :func:`fit_report` is the summary printed when ``fit`` ends.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar
from tqdm import tqdm

from callbacks.summary import format_summary, progress_line
from callbacks.task_sequence import TaskCallback, TaskSequence

BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"


class TaskProgressBar(ProgressBar, TaskCallback):
    """One bar for the whole task sequence (plain lines per task when stdout is not a terminal).

    Args:
        interactive: draw a bar (``True``) or print a line per task (``False``); ``None``: a bar
            when stdout is a terminal.
    """

    def __init__(self, interactive: bool | None = None) -> None:
        super().__init__()
        self.interactive = sys.stdout.isatty() if interactive is None else interactive
        self._enabled = True
        self._bar: tqdm | None = None
        self._start = time.monotonic()
        self._first_task: int | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self._bar is not None:
            self._bar.write(" ".join(map(str, args)))
        else:
            print(*args, **kwargs)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._first_task = time.monotonic(), None
        if self._enabled and self.interactive:
            per_epoch = int(trainer.num_training_batches)
            self._bar = tqdm(
                total=(trainer.max_epochs or 0) * per_epoch,
                initial=trainer.current_epoch * per_epoch,
                file=sys.stdout,
                dynamic_ncols=True,
                bar_format=BAR_FORMAT,
                delay=0.5,  # first drawn once on_task_start has named the task
            )

    def on_task_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, task: int) -> None:
        if self._first_task is None:
            self._first_task = task
        if self._bar is not None:
            self._bar.set_description(f"task {task + 1}/{trainer.datamodule.num_tasks}", refresh=False)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def on_task_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, task: int, summary: dict[str, Any]
    ) -> None:
        n = trainer.datamodule.num_tasks
        if self._bar is None and self._enabled and trainer.is_global_zero:
            print_task_line(task, n, summary, time.monotonic() - self._start, self._first_task)
        if self._bar is not None:
            after = summary["current_acc"][-1], summary["final_avg_acc"]
            self._bar.set_postfix_str(
                f"after task {task + 1}: current {after[0]:.1%}, average {after[1]:.1%}"
            )
            if task + 1 == n:  # before Lightning's closing remarks
                self._close()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def print_task_line(task: int, n: int, summary: dict[str, Any], elapsed: float, first: int | None) -> None:
    """``task k/N  current ..  average ..  m:ss elapsed, ~m:ss left``, flushed (a log file)."""
    print(progress_line(task, n, summary, elapsed, first))
    sys.stdout.flush()


class TaskLines(TaskCallback):
    """One line per task when the progress bar is off (``--trainer.enable_progress_bar false``,
    as in a grid's runs): their ``run.log`` still says how far each run is."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self._first_task: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._first_task = time.monotonic(), None

    def on_task_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, task: int) -> None:
        if self._first_task is None:
            self._first_task = task

    def on_task_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, task: int, summary: dict[str, Any]
    ) -> None:
        if trainer.is_global_zero:
            n = trainer.datamodule.num_tasks
            print_task_line(task, n, summary, time.monotonic() - self._start, self._first_task)


DROPPED = ("💡 Tip", "GPU available", "TPU available", "HPU available")


class _NoTips(logging.Filter):
    """Lightning's advertisements and its device banners ("GPU available: False, used: False",
    "TPU available", ...: the run's summary names its device)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(
            ("💡 Tip", "GPU available", "TPU available", "HPU available")
        )


def quiet_lightning() -> None:
    """Drop Lightning's advertisements ("💡 Tip: ... litlogger"), a deprecation warning that
    Lightning 2.6's CombinedLoader triggers in torch 2.14's pytree (not ours to fix), and its
    logging-interval warning (about Lightning batches; the loss is logged per optimizer step)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _NoTips) for f in log.filters):
            log.addFilter(_NoTips())
    warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
    # compares chunks with log_every_n_steps, which the module counts in optimizer steps itself
    warnings.filterwarnings("ignore", r"The number of training batches \(\d+\) is smaller than the logging")


@contextmanager
def banners_off() -> Iterator[None]:
    """Lightning's INFO banners ("Seed set to", "GPU available") off for the block: a probe that
    builds a fit without running it, or a study whose every trial would print them."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def fit_report(trainer: pl.Trainer) -> str:
    """:func:`format_summary` of the trainer's task sequence."""
    seq = next(c for c in trainer.callbacks if isinstance(c, TaskSequence))
    return format_summary(seq.summary(), seq.matrix, seq.seconds, seq.run_dir(trainer))
