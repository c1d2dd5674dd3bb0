"""TensorBoard histograms of every parameter after each task."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger

from callbacks.task_sequence import TaskCallback


class WeightHistograms(TaskCallback):
    """After each task, a histogram of each parameter tensor, tagged by layer (step = task).

    Tags are ``weights/<parameter name>``, e.g. ``weights/net.0.weight``.

    Args:
        min_abs: drop values with ``|w| < min_abs`` first (the paper's Fig. 5 removes ``|w| < 1e-5``).
    """

    def __init__(self, min_abs: float = 0.0) -> None:
        self.min_abs = min_abs

    def on_task_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, task: int, summary: dict[str, Any]
    ) -> None:
        logger = pl_module.logger
        if not isinstance(logger, TensorBoardLogger) or not trainer.is_global_zero:
            return
        for name, p in pl_module.net.named_parameters(prefix="net"):
            values = p.detach().flatten()
            if self.min_abs > 0:
                values = values[values.abs() >= self.min_abs]
            logger.experiment.add_histogram(f"weights/{name}", values, global_step=task)
