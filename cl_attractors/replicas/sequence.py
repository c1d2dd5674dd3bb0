"""The task sequence of a replica group, and each replica's run directory in a single run's format.

Per task: the optimizer state is cleared (every replica's Adam moments; unless the runs keep it,
``tasks.reset_optimizer: false``), an ``independent`` run's networks are drawn afresh, and the
method is told; after the task's last epoch every replica is evaluated on every task (its own
column j of its own A), the method ends the task (consolidation, importance), and each replica
still training gets what its single run writes at that point: ``checkpoints/task_XX.ckpt`` (a
single run's checkpoint: its weights, its method state, its slice of the optimizer state, its A so
far; ``fit --ckpt_path last`` resumes it alone), then ``accuracy_matrix.csv``, ``metrics.json`` and
the family's draws (written by :class:`~callbacks.task_sequence.TaskSequence` itself, one per
replica, as state holder), and the line a single run in a grid writes to its ``run.log`` after
each task (:func:`~callbacks.summary.progress_line`), appended to the replica's own ``run.log``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from callbacks.summary import progress_line
from callbacks.task_sequence import TaskSequence, start_task
from cl_attractors.methods.base import CLMethod
from cl_attractors.paths import task_file
from cl_attractors.replicas.data import ReplicaData
from cl_attractors.replicas.module import ReplicaModule


class ReplicaSequence(pl.Callback):
    """Runs the group's task sequence and writes each replica's outputs.

    Args:
        run_dirs: each replica's run directory.
        singles: each replica's own method (its state's names and shapes for its checkpoint).
        data_key: the key under which a single run's checkpoint holds its datamodule's state.
        checkpoints: write each replica's task checkpoints (a tuning trial writes none).
        reset_optimizer: the runs' ``tasks.reset_optimizer`` (clear the optimizer at every task).
    """

    def __init__(
        self,
        run_dirs: Sequence[Path],
        singles: Sequence[CLMethod],
        data_key: str,
        checkpoints: bool = True,
        reset_optimizer: bool = True,
    ) -> None:
        self.run_dirs = [Path(d) for d in run_dirs]
        self.singles = list(singles)
        self.data_key, self.checkpoints, self.reset_optimizer = data_key, checkpoints, reset_optimizer
        self.runs = [TaskSequence(heatmaps=False) for _ in run_dirs]
        self.task = 0
        self.written: list[int] = [-1] * len(run_dirs)  # the last task each replica has on disk
        self.start = time.monotonic()
        self.first_task: int | None = None  # the first task trained in this process

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        dm = trainer.datamodule
        for run in self.runs:
            if run.A is None:
                run.A = torch.full((dm.num_tasks, dm.num_tasks), torch.nan, dtype=torch.float64)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start, self.first_task = time.monotonic(), None
        if self.runs[0].initial is None:
            for run, column in zip(self.runs, evaluate(trainer.datamodule, pl_module).unbind(1)):
                run.initial = column.clone()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pos = trainer.datamodule.schedule.position(trainer.current_epoch)
        self.task = pl_module.task = pos.task
        if pos.first:
            start_task(trainer, pl_module, pos.task, self.reset_optimizer)
            pl_module.method.on_task_start(pos.task)
            if self.first_task is None:
                self.first_task = pos.task

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dm: ReplicaData = trainer.datamodule
        if not dm.schedule.position(trainer.current_epoch).last:
            return
        task = self.task
        accuracy = evaluate(dm, pl_module)  # [T, R]
        with torch.enable_grad():
            pl_module.method.on_task_end(task, pl_module.sample, pl_module.training_masks)
        for r, run in enumerate(self.runs):
            if not bool(pl_module.active[r]):
                continue
            run.matrix[:, task] = accuracy[:, r]
            run.tasks_done = task + 1
            if trainer.is_global_zero:
                if self.checkpoints:
                    self.save_checkpoint(trainer, pl_module, r, task)
                run.write_outputs(self.run_dirs[r], dm.members[r].family.state_dict())
                self.log_task(r, task, dm.num_tasks)
            self.written[r] = task

    def log_task(self, r: int, task: int, num_tasks: int) -> None:
        """Replica ``r``'s line after ``task``, appended to its ``run.log`` (as its fit prints it)."""
        elapsed = time.monotonic() - self.start
        line = progress_line(task, num_tasks, self.runs[r].summary(), elapsed, self.first_task)
        with open(self.run_dirs[r] / "run.log", "a", encoding="utf-8") as log:
            log.write(line + "\n")

    # ---- a replica's checkpoint in a single run's format ---------------------------------
    def save_checkpoint(self, trainer: pl.Trainer, module: ReplicaModule, r: int, task: int) -> None:
        directory = self.run_dirs[r] / "checkpoints"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / task_file(task)
        trainer.strategy.checkpoint_io.save_checkpoint(self.checkpoint(trainer, module, r), path)
        last = directory / "last.ckpt"
        tmp = directory / ".last.ckpt.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(path.name)
        os.replace(tmp, last)

    def checkpoint(self, trainer: pl.Trainer, module: ReplicaModule, r: int) -> dict[str, Any]:
        """What a single run's task checkpoint holds, for replica ``r``."""
        state = {f"net.{k}": v for k, v in module.net.unstack(r).items()}
        state |= {f"method.{k}": v for k, v in module.method.replica_state(r, self.singles[r]).items()}
        return {
            "epoch": trainer.current_epoch,
            "global_step": trainer.global_step,
            "pytorch-lightning_version": pl.__version__,
            "state_dict": state,
            "loops": {
                "fit_loop": trainer.fit_loop.state_dict(),
                "validate_loop": trainer.validate_loop.state_dict(),
                "test_loop": trainer.test_loop.state_dict(),
                "predict_loop": trainer.predict_loop.state_dict(),
            },
            "callbacks": {self.runs[r].state_key: self.runs[r].state_dict()},
            "optimizer_states": [replica_optimizer_state(trainer.optimizers[0], module, r)],
            "lr_schedulers": [],
            self.data_key: trainer.datamodule.members[r].state_dict(),
        }

    def load_replicas(self, checkpoints: Sequence[dict[str, Any]]) -> None:
        """Restore each replica's A, initial column and task count from its single-run checkpoint."""
        for run, ckpt in zip(self.runs, checkpoints):
            run.load_state_dict(ckpt["callbacks"][run.state_key])
        self.written = [run.tasks_done - 1 for run in self.runs]


@torch.no_grad()
def evaluate(dm: ReplicaData, module: ReplicaModule) -> torch.Tensor:
    """Each replica's accuracy on every task: ``[tasks, R]`` (float64), on its own eval split."""
    training = module.training
    module.train(False)  # evaluation mode
    columns = []
    for task in range(dm.num_tasks):
        correct = torch.zeros(module.replicas, dtype=torch.long, device=module.device)
        count = 0
        for batch in dm.eval_batches(task):
            x, y = module.to_device(batch)
            correct += module.count_correct((x, y), task)
            count += y.shape[1]
        columns.append(correct.double().cpu() / max(count, 1))
    module.train(training)
    return torch.stack(columns)


def replica_optimizer_state(optimizer: torch.optim.Optimizer, module: ReplicaModule, r: int) -> dict:
    """Replica ``r``'s slice of the stacked optimizer's state, indexed as its single module's
    parameters (the network's, in order)."""
    full = optimizer.state_dict()
    index = {id(p): i for i, p in enumerate(module.parameters())}
    order = [index[id(p)] for p in module.net.stacked_parameters()]
    state = {}
    for single_index, (stacked_index, shape) in enumerate(zip(order, module.net.shapes)):
        entry = full["state"].get(stacked_index)
        if entry is not None:
            state[single_index] = {
                k: v[r].reshape(shape).clone().cpu() if torch.is_tensor(v) and v.dim() > 0 else v
                for k, v in entry.items()
            }
    groups = [{**g, "params": list(range(len(order)))} for g in full["param_groups"]]
    return {"state": state, "param_groups": groups}


def stacked_optimizer_state(module: ReplicaModule, singles: Sequence[dict]) -> dict:
    """The inverse of :func:`replica_optimizer_state`: the replicas' own optimizer states (each
    run's checkpoint) as the stacked optimizer's, so a group resumed with its optimizer kept
    (``tasks.reset_optimizer: false``) steps on as if never stopped."""
    index = {id(p): i for i, p in enumerate(module.parameters())}
    stacked = module.net.stacked_parameters()
    state = {}
    for single_index, p in enumerate(stacked):
        entries = [s["state"].get(single_index) for s in singles]
        if any(e is None for e in entries):
            continue
        state[index[id(p)]] = {
            k: torch.stack([e[k].reshape(p.shape[1:]) for e in entries])
            if torch.is_tensor(v) and v.dim() > 0
            else v
            for k, v in entries[0].items()
        }
    groups = [{**g, "params": list(range(len(index)))} for g in singles[0]["param_groups"]]
    return {"state": state, "param_groups": groups}
