"""TensorBoard as a dashboard: per-task scalars on a task axis, the A(i, j) heat map, HParams.

Every scalar written here has the task index as its step (0 = after the first task), like the heat
map and the weight histograms, so all panels share one x-axis. The run's hyperparameters (one
schema for every run and trial: :mod:`callbacks.hparams`) go to ``hparams.yaml`` when the fit
starts, and at the end of the sequence to TensorBoard's HParams tab together with the final
metrics (``HPARAM_METRICS``), so runs and tune trials compare in one table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import TensorBoardLogger

from callbacks import hparams
from cl_attractors import metrics

HPARAM_METRICS = {
    "cl/avg_acc": "final_avg_acc",
    "cl/bwt": "bwt",
    "cl/forgetting": "forgetting",
    "cl/eq2": "eq2",
}


def run_hparams(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
    """The run's row of the HParams table, in the one schema of :mod:`callbacks.hparams` (the
    resolved config of LightningCLI; a Trainer built by hand logs its method's name only)."""
    saver = next((c for c in trainer.callbacks if isinstance(c, SaveConfigCallback)), None)
    config = saver.config.as_dict() if saver is not None else {}
    if not config:
        method = getattr(pl_module, "method", None)
        config = {"model": {"method": None if method is None else {"class_path": type(method).__name__}}}
    data_class = type(trainer.datamodule) if trainer.datamodule is not None else None
    families: list[type] = getattr(data_class, "family_classes", list)()
    return hparams.run_hparams(config, hparams.method_classes(), data_class, trainer.log_dir, families)


def remember_hparams(trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
    """Give every logger the run's hyperparameters before Lightning writes hparams.yaml."""
    params = run_hparams(trainer, pl_module)
    for logger in trainer.loggers:
        logger.log_hyperparams(params)


def task_scalars(A: torch.Tensor, j: int, split: str) -> dict[str, float]:
    """Column j of A and the summaries of A after task j (the filled j+1 x j+1 corner)."""
    part = A[: j + 1, : j + 1]
    values = {f"{split}/acc/task_{i}": float(A[i, j]) for i in range(A.shape[0])}
    values.update(
        {
            "cl/avg_acc": float(metrics.avg_acc_seen(part)[-1]),
            "cl/current_acc": float(part[j, j]),
            "cl/eq2": metrics.eq2(part),
            "cl/eq2_weighted_mean": metrics.eq2_weighted_mean(part),
        }
    )
    if j > 0:
        values.update(
            {
                "cl/avg_prev_acc": float(metrics.avg_acc_previous(part)[-1]),
                "cl/bwt": metrics.bwt(part),
                "cl/forgetting": metrics.forgetting(part),
            }
        )
    return values


def heatmap_title(trainer: pl.Trainer) -> str:
    """The variant (a grid's run, from its ``grid.json``) or the method, and the seed."""
    method = type(trainer.lightning_module.method).__name__
    try:
        made = json.loads((Path(str(trainer.log_dir)) / "grid.json").read_text(encoding="utf-8"))
        name = f"{made['variant']} ({method})"
    except (OSError, ValueError, KeyError, TypeError):
        name = method
    return f"{name}, seed {trainer.datamodule.seed}"


def log_task(
    trainer: pl.Trainer, A: torch.Tensor, j: int, split: str, stats: dict[str, float], heatmap: bool
) -> None:
    """After task j: its scalars and the method's statistics at step j, and the heat map."""
    values = task_scalars(A, j, split) | {f"method/{k}": float(v) for k, v in stats.items()}
    for logger in trainer.loggers:
        logger.log_metrics(values, step=j)
    tensorboards = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
    if heatmap and tensorboards and trainer.is_global_zero:
        from cl_attractors.plots import accuracy_heatmap

        figure = accuracy_heatmap(A, title=heatmap_title(trainer))
        for i, logger in enumerate(tensorboards):  # the last one closes the figure
            close = i == len(tensorboards) - 1
            logger.experiment.add_figure("cl/accuracy_matrix", figure, global_step=j, close=close)


def log_final(trainer: pl.Trainer, summary: dict[str, Any]) -> None:
    """The HParams entry of the run: its hyperparameters and final metrics, at the last task's step."""
    final = {
        tag: math.nan if summary.get(key) is None else float(summary[key])
        for tag, key in HPARAM_METRICS.items()
    }
    params = run_hparams(trainer, trainer.lightning_module)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, metrics=final, step=summary["tasks_done"] - 1)
