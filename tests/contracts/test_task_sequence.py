"""Contracts of one fit over a task sequence: A(i, j), optimizer resets, hook order, outputs, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

from callbacks.task_sequence import TaskSequence
from cl_attractors.io import read_matrix_csv
from cl_attractors.methods.base import CLMethod
from cl_attractors.train.cli import make_cli
from tests.helpers import tiny_args


class Recorder(CLMethod):
    """Records the hooks it sees, the optimizer state at task starts and A at task ends."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, int]] = []
        self.state_sizes: list[int] = []
        self.first_steps: dict[int, float] = {}
        self.columns_filled: list[bool] = []

    def on_task_start(self, module: Any, task: int) -> None:
        self.events.append(("start", task))
        self.state_sizes.append(len(module.trainer.optimizers[0].state))

    def on_before_optimizer_step(self, module: Any, optimizer: Any) -> None:
        assert all(p.grad is not None for p in module.parameters())
        self.events.append(("before", module.current_task))

    def on_after_optimizer_step(self, module: Any, optimizer: Any) -> None:
        self.events.append(("after", module.current_task))
        step = optimizer.state[module.net[0].weight]["step"]
        self.first_steps.setdefault(module.current_task, float(step))

    def on_task_end(self, module: Any, task: int, datamodule: Any) -> dict[str, float]:
        self.events.append(("end", task))
        seq = next(c for c in module.trainer.callbacks if isinstance(c, TaskSequence))
        self.columns_filled.append(not torch.isnan(seq.A[:, task]).any().item())
        assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
        return {"seen": float(task)}


def build(run_dir: Path, *extra: str, num_tasks: int = 3) -> Any:
    return make_cli(tiny_args(run_dir, *extra, num_tasks=num_tasks)[1:], run=False)


def fit(cli: Any, ckpt_path: str | None = None) -> TaskSequence:
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
    return next(c for c in cli.trainer.callbacks if isinstance(c, TaskSequence))


def test_hooks_run_in_order_and_adam_is_reset_at_every_task(tmp_path: Path) -> None:
    cli = build(tmp_path / "r")
    rec = Recorder()
    cli.model.method = rec
    rec.attach(cli.model.net)
    fit(cli)
    starts = [i for i, e in enumerate(rec.events) if e[0] == "start"]
    ends = [i for i, e in enumerate(rec.events) if e[0] == "end"]
    assert [rec.events[i] for i in starts] == [("start", t) for t in range(3)]
    assert all(s < e for s, e in zip(starts, ends)) and all(e < s for e, s in zip(ends, starts[1:]))
    steps = rec.events[starts[1] + 1 : ends[1]]
    assert steps[:2] == [("before", 1), ("after", 1)] and len(steps) == 2 * 8
    assert rec.state_sizes == [0, 0, 0]  # optimizer state cleared before every task
    assert rec.first_steps == {0: 1.0, 1: 1.0, 2: 1.0}  # Adam's step count restarts
    assert rec.columns_filled == [True, True, True]  # on_task_end sees its column of A
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.01)


def test_accuracy_matrix_matches_a_direct_evaluation(tmp_path: Path) -> None:
    cli = build(tmp_path / "r")
    seq = fit(cli)
    A, dm, net = seq.A, cli.datamodule, cli.model.net
    assert A.shape == (3, 3) and not torch.isnan(A).any()
    with torch.inference_mode():
        for i in range(3):
            correct = sum(int((net(x).argmax(1) == y).sum()) for x, y in dm.eval_batches(i))
            assert A[i, -1] == pytest.approx(correct / len(dm.eval_batches(i).y))
    assert A.diagonal().mean() > 0.3  # the synthetic tasks are learnable (chance = 0.1)
    assert seq.initial is not None and seq.initial.shape == (3,)


def test_every_output_is_written(tmp_path: Path) -> None:
    run = tmp_path / "r"
    seq = fit(build(run))
    for name in (
        "accuracy_matrix.csv",
        "metrics.json",
        "permutations.pt",
        "config.yaml",
        "checkpoints/last.ckpt",
    ):
        assert (run / name).is_file(), name
    assert list(run.glob("events.out.tfevents.*"))
    assert torch.allclose(read_matrix_csv(run / "accuracy_matrix.csv"), seq.A, atol=1e-6)
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["complete"] and summary["tasks_done"] == 3
    assert summary["final_avg_acc"] == pytest.approx(float(seq.A[:, -1].mean()))
    assert torch.equal(torch.load(run / "permutations.pt"), build(tmp_path / "x").datamodule.permutations)


class Crash(pl.Callback):
    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.current_epoch == self.epoch and args[-1] == self.batch:
            raise RuntimeError("injected crash")


@pytest.mark.parametrize("method", ["", "configs/method/ewc.yaml"])
def test_resume_after_a_crash_gives_the_uninterrupted_matrix(tmp_path: Path, method: str) -> None:
    extra = ("--model.method", method) if method else ()
    if method and not Path(method).exists():
        pytest.skip(f"{method} not present")
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


def test_different_seeds_give_different_tasks(tmp_path: Path) -> None:
    a = build(tmp_path / "a", "--data.seed", "1").datamodule.permutations
    b = build(tmp_path / "b", "--data.seed", "2").datamodule.permutations
    assert not torch.equal(a, b)


def test_grouping_steps_per_lightning_batch_changes_nothing(tmp_path: Path) -> None:
    one = fit(build(tmp_path / "one", "--data.steps_per_batch", "1"))
    three = fit(build(tmp_path / "three", "--data.steps_per_batch", "3"))
    assert torch.equal(one.A, three.A)
