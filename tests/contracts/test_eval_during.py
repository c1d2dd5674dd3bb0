"""Evaluation during training (``--eval_every_n_steps``) in tiny runs: the curve's rows, the same
curve after a crash and a resume (with replay's memory in the checkpoint, on a shared read-out and
on a head per task), nothing when off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pandas as pd
import pytest
import torch

from callbacks.task_sequence import TaskSequence
from cl_attractors.stability import CURVE_FILE, switches
from tests.helpers import fit_tasks as fit
from tests.helpers import tiny_cli as build

# tiny_args: 256 synthetic images, batch 32 -> 8 steps a task, chunks of 2 steps; 3 tasks
DURING = ("--eval_every_n_steps", "2", "--tasks.eval_subsample", "20")
REPLAY = ("--model.method", "configs/method/replay_200.yaml", "--model.method.init_args.batch_size", "8")
# split in three pairs, a head per task (masked per task): ~50 training images a task in batches
# of 4 (the crash falls inside task 1; tasks of different sizes), a memory and a subsample that fit
TASK_SPLIT = (
    "--data.family",
    "cl_attractors.train.families.Split",
    "--data.family.init_args.scenario",
    "task",
    "--data.family.init_args.groups",
    "[[0, 1], [2, 3], [4, 5]]",
    "--model.net.init_args.num_classes",
    "2",
    "--model.net.init_args.heads",
    "3",
    "--model.method.init_args.memory_size",
    "60",
    "--tasks.eval_subsample",
    "5",
    "--data.batch_size",
    "4",
    "--trainer.reload_dataloaders_every_n_epochs",
    "1",
)


class Crash(pl.Callback):
    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.current_epoch == 1 and args[-1] == 3:
            raise RuntimeError("injected crash")


def test_every_task_seen_is_evaluated_every_k_steps_at_every_switch_and_at_the_end(tmp_path: Path) -> None:
    fit(build(tmp_path / "run", *DURING))
    curve = pd.read_csv(tmp_path / "run" / CURVE_FILE)
    assert list(curve.columns) == ["step", "task", "trained", "accuracy"]
    assert sorted(set(curve["step"])) == list(range(0, 25, 2))
    assert switches(curve) == [8, 16]
    assert (curve["task"] <= curve["trained"]).all()
    assert curve.groupby("step").size().tolist() == [1] * 4 + [2] * 4 + [3] * 5
    assert ((curve["accuracy"] * 20).round(6) % 1 == 0).all()  # a fraction of the 20 images


@pytest.mark.parametrize("family", [(), TASK_SPLIT], ids=["permuted", "task_split"])
def test_a_resumed_run_writes_the_same_curve_and_matrix(tmp_path: Path, family: tuple[str, ...]) -> None:
    args = (*DURING, *REPLAY, *family)
    reference = fit(build(tmp_path / "ref", *args)).A
    cli = build(tmp_path / "run", *args)
    cli.trainer.callbacks.append(Crash())
    with pytest.raises(RuntimeError, match="injected crash"):
        fit(cli)
    resumed = fit(build(tmp_path / "run", *args), ckpt_path="last")
    assert torch.equal(resumed.A, reference)
    assert (tmp_path / "run" / CURVE_FILE).read_text() == (tmp_path / "ref" / CURVE_FILE).read_text()


def test_off_by_default_it_builds_and_writes_nothing(tmp_path: Path) -> None:
    cli = build(tmp_path / "run")
    fit(cli)
    sequence = next(c for c in cli.trainer.callbacks if isinstance(c, TaskSequence))
    assert not sequence.during.on and sequence.during.rows == [] and sequence.during._batches == {}
    assert not (tmp_path / "run" / CURVE_FILE).exists()
