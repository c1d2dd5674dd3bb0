"""Contracts of a resumed fit: after a crash at any step the resumed run gives the uninterrupted
A(i, j) and files byte for byte, from the newest checkpoint that loads; a folder of an earlier
run's checkpoints is neither overwritten nor resumed from garbage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

from cl_attractors.errors import ConfigError
from tests.helpers import fit_tasks as fit
from tests.helpers import tiny_cli as build


class Crash(pl.Callback):
    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.current_epoch == self.epoch and args[-1] == self.batch:
            raise RuntimeError("injected crash")


@pytest.mark.parametrize("method", ["", "configs/method/ewc.yaml"])
def test_resume_after_a_crash_gives_the_uninterrupted_matrix(tmp_path: Path, method: str) -> None:
    extra = ("--model.method", method) if method else ()
    reference = fit(build(tmp_path / "ref", *extra)).A
    cli = build(tmp_path / "run", *extra)
    cli.trainer.callbacks.append(Crash(epoch=1, batch=3))
    with pytest.raises(RuntimeError, match="injected crash"):
        fit(cli)
    partial = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert partial["tasks_done"] == 1 and not partial["complete"]
    resumed = fit(build(tmp_path / "run", *extra), ckpt_path="last")
    assert torch.equal(resumed.A, reference)
    assert resumed.initial is not None


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.Tensor]:
    run = tmp_path_factory.mktemp("ref") / "run"
    return run, fit(build(run)).A


def crashed_in_task_2(run: Path) -> Path:
    """A run killed inside task 2: task_00 and task_01 are on disk, last.ckpt links task_01."""
    cli = build(run)
    cli.trainer.callbacks.append(Crash(epoch=2, batch=1))
    with pytest.raises(RuntimeError, match="injected crash"):
        fit(cli)
    return run / "checkpoints"


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def dangle(link: Path) -> None:
    link.unlink()
    link.symlink_to("task_07.ckpt")


FAULTS = {
    "last.ckpt missing": (lambda ckpts: (ckpts / "last.ckpt").unlink(), "task_01.ckpt"),
    "last.ckpt dangling": (lambda ckpts: dangle(ckpts / "last.ckpt"), "task_01.ckpt"),
    "newest checkpoint truncated": (lambda ckpts: truncate(ckpts / "task_01.ckpt"), "task_00.ckpt"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_resume_uses_the_newest_checkpoint_that_loads(
    tmp_path: Path, reference: tuple[Path, torch.Tensor], fault: str
) -> None:
    (inject, expected), (reference_run, reference_A) = FAULTS[fault], reference
    ckpts = crashed_in_task_2(tmp_path / "run")
    inject(ckpts)
    cli = build(tmp_path / "run")
    resumed = fit(cli, ckpt_path="last")
    assert Path(cli.trainer.ckpt_path).name == expected
    assert torch.equal(resumed.A, reference_A)
    for name in ("accuracy_matrix.csv", "metrics.json"):  # byte for byte, as uninterrupted
        assert (tmp_path / "run" / name).read_bytes() == (reference_run / name).read_bytes()
    assert (ckpts / "last.ckpt").resolve() == (ckpts / "task_02.ckpt").resolve()


def test_a_directory_of_checkpoints_is_neither_overwritten_nor_resumed_from_garbage(tmp_path: Path) -> None:
    ckpts = crashed_in_task_2(tmp_path / "run")
    with pytest.raises(ConfigError, match="holds the checkpoints of an earlier run .*--ckpt_path last"):
        fit(build(tmp_path / "run"))
    assert (ckpts / "task_01.ckpt").is_file()
    for path in ckpts.glob("task_*.ckpt"):
        truncate(path)
    with (
        pytest.warns(UserWarning, match="skipping .*task_01.ckpt: not a loadable checkpoint"),
        pytest.raises(ConfigError, match="--ckpt_path last: no checkpoint in .* loads"),
    ):
        fit(build(tmp_path / "run"), ckpt_path="last")
