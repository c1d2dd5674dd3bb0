"""Sequences the tasks inside one ``trainer.fit`` and fills the accuracy matrix A(i, j).

Epoch ``e`` trains task ``e // epochs_per_task``. At a task's first epoch the optimizer state is
cleared (Adam moments and step counts; the learning rate is kept) and the method's
``on_task_start`` runs. After a task's last epoch, Lightning's validation loop evaluates every
task (one dataloader per task) and column j of A is filled; then the method's ``on_task_end``
runs (EWC Fisher, SI consolidation), the outputs are rewritten, and the checkpoint callback
(which Lightning runs after this one) saves a task-boundary checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from cl_attractors import metrics
from cl_attractors.io import ensure_writable, matrix_to_csv, save_tensor, write_json, write_text


class TaskSequence(pl.Callback):
    """Runs ``data.num_tasks`` tasks in one fit and records A[i, j] = acc on task i after task j.

    It sets ``trainer.max_epochs = num_tasks * epochs_per_task`` and validates once per task.
    The sanity check is made a full evaluation of the untrained network (for forward transfer).

    Args:
        heatmaps: log an A(i, j) heat-map image to TensorBoard after each task.
    """

    def __init__(self, heatmaps: bool = True) -> None:
        self.heatmaps = heatmaps
        self.A: torch.Tensor | None = None
        self.initial: torch.Tensor | None = None
        self.tasks_done = 0
        self._correct: list[int] = []
        self._count: list[int] = []

    # ---- set-up -------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        dm = trainer.datamodule
        trainer.fit_loop.max_epochs = dm.num_tasks * dm.epochs_per_task
        trainer.check_val_every_n_epoch = dm.epochs_per_task
        trainer.reload_dataloaders_every_n_epochs = 1  # the training data follows the task
        if self.A is None:
            self.A = torch.full((dm.num_tasks, dm.num_tasks), math.nan, dtype=torch.float64)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            ensure_writable(Path(trainer.log_dir or trainer.default_root_dir))
        # after a checkpoint restore: evaluate the untrained network only once, and fully
        trainer.num_sanity_val_steps = 0 if self.initial is not None else math.inf

    # ---- task boundaries ----------------------------------------------------------------
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        task, epoch = divmod(trainer.current_epoch, trainer.datamodule.epochs_per_task)
        pl_module.current_task = task
        if epoch == 0:
            for optimizer in trainer.optimizers:
                optimizer.state.clear()
            pl_module.method.on_task_start(pl_module, task)

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
            return
        j = trainer.current_epoch // dm.epochs_per_task
        self.A[:, j] = column
        self._log_column(pl_module, dm.eval_split, j)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dm = trainer.datamodule
        task, epoch = divmod(trainer.current_epoch, dm.epochs_per_task)
        if epoch != dm.epochs_per_task - 1:
            return
        with torch.enable_grad():
            stats = pl_module.method.on_task_end(pl_module, task, dm)
        for key, value in stats.items():
            pl_module.log(f"method/{key}", float(value), on_epoch=True)
        self.tasks_done = task + 1
        if trainer.is_global_zero:
            self.write_outputs(Path(trainer.log_dir or trainer.default_root_dir), dm.permutations)

    # ---- outputs ------------------------------------------------------------------------
    def _log_column(self, pl_module: pl.LightningModule, split: str, j: int) -> None:
        A = self.A[: j + 1, : j + 1]
        values = {f"{split}/acc/task_{i}": float(self.A[i, j]) for i in range(self.A.shape[0])}
        values.update(
            {
                "cl/task": float(j),
                "cl/avg_acc": float(metrics.avg_acc_seen(A)[-1]),
                "cl/current_acc": float(A[j, j]),
                "cl/eq2": metrics.eq2(A),
                "cl/eq2_weighted_mean": metrics.eq2_weighted_mean(A),
            }
        )
        if j > 0:
            values["cl/avg_prev_acc"] = float(metrics.avg_acc_previous(A)[-1])
        pl_module.log_dict(values, on_epoch=True, add_dataloader_idx=False)
        logger = pl_module.logger
        if self.heatmaps and isinstance(logger, TensorBoardLogger):
            from cl_attractors.plots import accuracy_heatmap

            logger.experiment.add_figure("cl/accuracy_matrix", accuracy_heatmap(self.A), global_step=j)

    def summary(self) -> dict:
        """metrics.json content: per-task curves so far, and every summary of the filled part."""
        k = self.tasks_done
        out: dict = {
            "complete": k == self.A.shape[0],
            "tasks_done": k,
            "initial_acc": None if self.initial is None else self.initial.tolist(),
        }
        if k:
            part = self.A[:k, :k]
            out.update(metrics.summarize(part, None if self.initial is None else self.initial[:k]))
        return out

    def write_outputs(self, run_dir: Path, permutations: torch.Tensor) -> None:
        """Atomically (re)write accuracy_matrix.csv, metrics.json and permutations.pt."""
        write_text(run_dir / "accuracy_matrix.csv", matrix_to_csv(self.A))
        write_json(run_dir / "metrics.json", self.summary())
        if not (run_dir / "permutations.pt").exists():
            save_tensor(run_dir / "permutations.pt", permutations)

    # ---- checkpoint ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"A": self.A, "initial": self.initial, "tasks_done": self.tasks_done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.A, self.initial = state_dict["A"], state_dict["initial"]
        self.tasks_done = state_dict["tasks_done"]
