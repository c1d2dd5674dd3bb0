"""TensorBoard histograms of every parameter after each task."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger


class WeightHistograms(pl.Callback):
    """After each task's last epoch, log a histogram of each parameter tensor (step = task).

    Args:
        min_abs: drop values with ``|w| < min_abs`` first (the paper's Fig. 5 removes ``|w| < 1e-5``).
    """

    def __init__(self, min_abs: float = 0.0) -> None:
        self.min_abs = min_abs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logger = pl_module.logger
        task, epoch = divmod(trainer.current_epoch, trainer.datamodule.epochs_per_task)
        if epoch != trainer.datamodule.epochs_per_task - 1 or not isinstance(logger, TensorBoardLogger):
            return
        for name, p in pl_module.net.named_parameters():
            values = p.detach().flatten()
            if self.min_abs > 0:
                values = values[values.abs() >= self.min_abs]
            logger.experiment.add_histogram(f"weights/{name}", values, global_step=task)
