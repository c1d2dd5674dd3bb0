"""One trial of the meta-learning study: a full task sequence scored by Eq. 2.

The trial builds the run with :func:`cl_attractors.train.cli.make_cli` from the search's ``fit``
arguments plus its φ, with the configured callbacks less the checkpoints (a trial is never
resumed mid-sequence) plus Optuna's Lightning pruning callback on ``tune/eq2_so_far`` (Eq. 2
accumulated over the tasks evaluated so far, logged after each task: one report per task), and
fits. The accuracy matrix (one attribute per row), Eq. 2, φ and the worker go to the trial's user
attributes whatever its fate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import optuna
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from optuna_integration import PyTorchLightningPruningCallback
from torch import Tensor

from callbacks import dashboard
from callbacks.task_sequence import TaskSequence
from cl_attractors import metrics
from cl_attractors.errors import ConfigError, one_line
from cl_attractors.io import write_json
from cl_attractors.paths import study_folder
from cl_attractors.runs import GRID_FILE
from cl_attractors.train.cli import make_cli
from cl_attractors.tune.space import Param, fit_overrides, suggest

MONITOR = "tune/eq2_so_far"


class Eq2SoFar(pl.Callback):
    """Puts :func:`eq2_so_far` in ``trainer.callback_metrics["tune/eq2_so_far"]`` after each
    task's evaluation (the pruning monitor; it runs after the task-sequence callback has filled the
    column) and logs it on the task axis, like every ``cl/*`` scalar (``self.log`` would add an
    ``epoch`` curve and use the step axis)."""

    def __init__(self) -> None:
        self.seq: TaskSequence | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.seq = next(c for c in trainer.callbacks if isinstance(c, TaskSequence))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.seq is None or self.seq.A is None or self.seq.position is None or trainer.sanity_checking:
            return
        value = metrics.eq2_so_far(self.seq.A)
        trainer.callback_metrics[MONITOR] = torch.tensor(value)
        for logger in trainer.loggers:
            logger.log_metrics({MONITOR: value}, step=self.seq.position.task)


@dataclass(frozen=True)
class MethodInfo:
    """The method class the ``fit`` arguments select, its full ``init_args`` there, and the trainer
    callbacks a trial keeps (``--trainer.callbacks`` as JSON: the configured ones but checkpoints
    and progress bars)."""

    cls: type
    init_args: dict[str, Any]
    trial_callbacks: str = "[]"

    @property
    def class_path(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"


def build(args: Sequence[str], callbacks: Sequence[pl.Callback] = ()) -> Any:
    """The CLI (model, datamodule, trainer, with ``callbacks`` added) for ``args``; a rejected
    argument is a ConfigError."""
    try:
        return make_cli(list(args), run=False, callbacks=callbacks)
    except argparse.ArgumentError as err:
        raise ConfigError(f"fit arguments rejected: {' '.join(str(err).split())[:400]}") from err


def probe_method(fit_args: Sequence[str]) -> MethodInfo:
    """Build the run once without training: checks the ``fit`` arguments before any trial and
    tells which method class the space's names must belong to."""
    cli = build(fit_args)
    method_cfg = cli.config.get("model", {}).get("method")
    init_args = (
        method_cfg.init_args.as_dict() if method_cfg is not None and method_cfg.get("init_args") else {}
    )
    kept = [c for c in cli.trainer.callbacks if not isinstance(c, ModelCheckpoint | ProgressBar)]
    configured = cli.config.get("trainer", {}).get("callbacks") or []
    names = {f"{type(c).__module__}.{type(c).__qualname__}" for c in kept}
    callbacks = [c.as_dict() for c in configured if c.class_path in names]
    return MethodInfo(type(cli.model.method), init_args, json.dumps(callbacks))


ROW = "A_row_"


def matrix_as_rows(A: Tensor | None) -> dict[str, list[float | None]]:
    """The accuracy matrix as one user attribute per row, ``A_row_<i>`` = the accuracy on task
    ``i`` after training each task (NaN, not yet evaluated, as ``None``): readable row by row in
    optuna-dashboard, where one nested list is a single unreadable cell."""
    if A is None:
        return {}
    rows = A.double().tolist()
    return {f"{ROW}{i:02d}": [None if math.isnan(v) else v for v in row] for i, row in enumerate(rows)}


def matrix_from_attrs(user_attrs: dict[str, Any]) -> list[list[float | None]] | None:
    """The accuracy matrix a trial stored with :func:`matrix_as_rows`, or as the one nested list
    ``A`` of studies begun before (the four meta-searches); ``None`` if it has none."""
    rows = sorted(k for k in user_attrs if k.startswith(ROW))
    return [user_attrs[k] for k in rows] or user_attrs.get("A")


def worker_name() -> str:
    """``host:pid`` of this process: which worker ran a trial, across machines."""
    return f"{socket.gethostname()}:{os.getpid()}"


def describe(err: BaseException) -> str:
    """``Type: message`` on one line, the reason stored with a failed trial."""
    return f"{type(err).__name__}: {one_line(err)}"


class Objective:
    """Eq. 2 of the final accuracy matrix of a full task sequence run with the trial's φ.

    Args:
        fit_args: ``fit`` arguments without the subcommand (config files and overrides).
        space: the parsed search space.
        out_dir: trial ``n`` runs in ``out_dir/trials/<study>/trial_<n>`` (its own TensorBoard
            run; one folder per study name, so two studies sharing out_dir keep their trials apart).
        method: the probed method (class and base ``init_args``).
    """

    def __init__(
        self, fit_args: Sequence[str], space: dict[str, Param], out_dir: Path, method: MethodInfo
    ) -> None:
        self.fit_args = list(fit_args)
        self.space = space
        self.out_dir = Path(out_dir)
        self.method = method
        # φ is a constant of the compiled per-step kernels (they specialise on it: the fastest
        # code for a step run millions of times), so each trial compiles anew; a fresh dynamo
        # cache per trial keeps the 8 recompilations of one process from warning and falling back
        # to eager. Threads sharing a process (n_jobs > 1) cannot reset it under each other.
        self.fresh_compile = True

    def __call__(self, trial: optuna.Trial) -> float:
        phi = suggest(trial, self.space)
        run_dir = self.out_dir / "trials" / study_folder(trial.study.study_name) / f"trial_{trial.number:04d}"
        trial.set_user_attr("phi", phi)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker", worker_name())
        if self.fresh_compile:
            torch._dynamo.reset()
        # its row of the HParams table names the study and the trial (callbacks/hparams.py)
        made = {"grid": f"tune:{trial.study.study_name}", "variant": run_dir.name, "code": None}
        write_json(run_dir / GRID_FILE, made)
        try:
            args = [*self.fit_args, *fit_overrides(phi), "--trainer.callbacks", self.method.trial_callbacks]
            args += ["--trainer.enable_checkpointing", "false"]
            cli = build(
                ["--trainer.enable_progress_bar", "false", *args, "--run_dir", str(run_dir)],
                [Eq2SoFar(), PyTorchLightningPruningCallback(trial, monitor=MONITOR)],
            )
        except Exception as err:
            trial.set_user_attr("fail_reason", describe(err))
            raise
        seq = next(c for c in cli.trainer.callbacks if isinstance(c, TaskSequence))
        return self._fit(trial, cli, seq, phi)

    def _fit(self, trial: optuna.Trial, cli: Any, seq: TaskSequence, phi: dict[str, Any]) -> float:
        trainer = cli.trainer
        try:
            trainer.fit(cli.model, datamodule=cli.datamodule)
        except optuna.TrialPruned as err:
            self._hparams_row(trainer, self.record(trial, seq, prune_reason=str(err)))
            raise
        except Exception as err:
            self._hparams_row(trainer, self.record(trial, seq, fail_reason=describe(err)))
            raise
        summary = self.record(trial, seq)
        value = summary.get("eq2")
        if not summary["complete"] or value is None or not math.isfinite(value):
            reason = f"no finite Eq. 2 after {summary['tasks_done']} tasks (eq2={value})"
            trial.set_user_attr("fail_reason", reason)
            raise FloatingPointError(reason)
        return value

    @staticmethod
    def _hparams_row(trainer: pl.Trainer, partial: dict[str, Any]) -> None:
        """A pruned or failed trial's HParams row, with the metrics of the tasks it evaluated
        (a complete trial gets its row from the task-sequence callback)."""
        if partial["tasks_done"]:
            dashboard.log_final(trainer, partial)
            for logger in trainer.loggers:  # Lightning finalised them when fit raised
                logger.finalize("failed")

    @staticmethod
    def record(trial: optuna.Trial, seq: TaskSequence, **reason: str) -> dict[str, Any]:
        """Store A, the (partial) Eq. 2 of its filled columns and the reason, if any, as user
        attributes; return those numbers."""
        done = metrics.filled_columns(seq.A)
        out: dict[str, Any] = {
            "complete": seq.A is not None and done == seq.A.shape[0],
            "tasks_done": done,
            "eq2": None,
            "eq2_weighted_mean": None,
        }
        if done and seq.A is not None:
            summary = metrics.summarize(seq.A[:done, :done])  # bwt, forgetting: None after one task
            out.update(
                {k: summary[k] for k in ("eq2", "eq2_weighted_mean", "final_avg_acc", "bwt", "forgetting")}
            )
        for key, value in {**matrix_as_rows(seq.A), **out, **reason}.items():
            if key != "complete":
                trial.set_user_attr(key, value)
        return out
