"""Contracts of one fit over a task sequence: the schedule, A(i, j), optimizer resets, hook order,
outputs, checkpoints per task (resume: test_resume.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import Tensor

from callbacks.task_checkpoint import TaskCheckpoint
from callbacks.task_sequence import TaskSequence
from cl_attractors.errors import ConfigError
from cl_attractors.io import read_matrix_csv
from cl_attractors.methods.base import CLMethod, MethodContext
from cl_attractors.schedule import TaskPosition, TaskSchedule
from tests.helpers import ROOT
from tests.helpers import fit_tasks as fit
from tests.helpers import tiny_cli as build


class Recorder(CLMethod):
    """Records the hooks it sees (with the context's task), the optimizer state at task starts, A
    at task ends, and adds a loss term that counts its calls."""

    def __init__(self, module: Any) -> None:
        super().__init__()
        object.__setattr__(self, "module", module)  # to look at the run from outside (not a submodule)
        self.events: list[tuple[str, int]] = []
        self.state_sizes: list[int] = []
        self.first_steps: dict[int, float] = {}
        self.columns_filled: list[bool] = []
        self.losses = 0

    def on_task_start(self, ctx: MethodContext) -> None:
        self.events.append(("start", ctx.task))
        assert self.module.task == ctx.task
        self.state_sizes.append(len(self.module.trainer.optimizers[0].state))

    def loss(self, ctx: MethodContext, x: Tensor, y: Tensor, outputs: Tensor) -> Tensor | None:
        assert outputs.shape == (len(x), 10) and outputs.requires_grad
        self.losses += 1
        return None

    def on_before_optimizer_step(self, ctx: MethodContext, optimizer: Any) -> None:
        assert all(p.grad is not None for p in ctx.net.parameters())
        self.events.append(("before", ctx.task))

    def on_after_optimizer_step(self, ctx: MethodContext, optimizer: Any) -> None:
        self.events.append(("after", ctx.task))
        step = optimizer.state[ctx.net[0].weight]["step"]
        self.first_steps.setdefault(ctx.task, float(step))

    def on_task_end(self, ctx: MethodContext) -> dict[str, float]:
        self.events.append(("end", ctx.task))
        seq = next(c for c in self.module.trainer.callbacks if isinstance(c, TaskSequence))
        self.columns_filled.append(not torch.isnan(seq.A[:, ctx.task]).any().item())
        assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
        return {"seen": float(ctx.task)}


class Pull(CLMethod):
    """A loss term ``scale * sum(theta^2)`` through the ``loss`` hook."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def loss(self, ctx: MethodContext, x: Tensor, y: Tensor, logits: Tensor) -> Tensor | None:
        return self.scale * sum(p.square().sum() for p in ctx.net.parameters())


def test_the_schedule_maps_each_epoch_to_its_task() -> None:
    schedule = TaskSchedule(num_tasks=3, epochs_per_task=2)
    assert schedule.max_epochs == 6
    assert [schedule.position(e) for e in (0, 1, 4)] == [
        TaskPosition(task=0, epoch=0, first=True, last=False),
        TaskPosition(task=0, epoch=1, first=False, last=True),
        TaskPosition(task=2, epoch=0, first=True, last=False),
    ]


def test_hooks_run_in_order_and_adam_is_reset_at_every_task(tmp_path: Path) -> None:
    cli = build(tmp_path / "r")
    rec = Recorder(cli.model)
    cli.model.method = rec
    rec.attach(cli.model.net)
    fit(cli)
    assert rec.losses == 3 * 8  # the loss hook: once per optimizer step
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


def test_the_weights_after_each_task_reload_and_give_its_column_of_a(tmp_path: Path) -> None:
    run = tmp_path / "r"
    cli = build(run)
    seq = fit(cli)
    A, dm, net = seq.A, cli.datamodule, cli.model.net
    assert A.shape == (3, 3) and not torch.isnan(A).any()
    for j in range(3):
        ckpt = torch.load(run / "checkpoints" / f"task_{j:02d}.ckpt", weights_only=False)
        net.load_state_dict(
            {k[len("net.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
        )
        with torch.inference_mode():
            for i in range(3):
                correct = sum(int((net(x).argmax(1) == y).sum()) for x, y in dm.eval_batches(i))
                assert A[i, j] == pytest.approx(correct / len(dm.eval_batches(i).y))
    assert A.diagonal().mean() > 0.3  # the synthetic tasks are learnable (chance = 0.1)
    assert seq.initial is not None and seq.initial.shape == (3,)


def test_every_output_is_written(tmp_path: Path) -> None:
    run = tmp_path / "r"
    seq = fit(build(run))
    for name in ("accuracy_matrix.csv", "metrics.json", "permutations.pt", "config.yaml", "hparams.yaml"):
        assert (run / name).is_file(), name
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "last.ckpt",
        "task_00.ckpt",
        "task_01.ckpt",
        "task_02.ckpt",
    ]
    assert (ckpts / "last.ckpt").resolve() == (ckpts / "task_02.ckpt").resolve()
    assert list(run.glob("events.out.tfevents.*"))
    assert torch.allclose(read_matrix_csv(run / "accuracy_matrix.csv"), seq.A, atol=1e-6)
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["complete"] and summary["tasks_done"] == 3
    assert summary["final_avg_acc"] == pytest.approx(float(seq.A[:, -1].mean()))
    dm = build(tmp_path / "x").datamodule
    dm.setup()
    assert torch.equal(torch.load(run / "permutations.pt"), dm.family.permutations)


def test_the_loss_hook_adds_its_term_to_the_training_loss(tmp_path: Path) -> None:
    """With a strong pull to 0 the weights end much smaller than without it."""
    sizes = []
    for scale in (0.0, 0.05):
        cli = build(tmp_path / f"r{scale}", num_tasks=1)
        cli.model.method = Pull(scale)
        fit(cli)
        sizes.append(sum(float(p.square().sum()) for p in cli.model.net.parameters()))
    assert sizes[1] < 0.8 * sizes[0]


def test_the_untrained_network_is_evaluated_on_every_task_once(tmp_path: Path) -> None:
    cli = build(tmp_path / "r")
    net = cli.model.net
    dm = cli.datamodule
    dm.setup()
    with torch.no_grad():
        expected = [
            sum(int((net(x).argmax(1) == y).sum()) for x, y in dm.eval_batches(t)) / len(dm.eval_batches(t).y)
            for t in range(3)
        ]
    seq = fit(cli)
    assert seq.initial is not None and seq.initial.tolist() == expected


class FirstBatches(pl.Callback):
    """The first mini-batch's inputs of every epoch."""

    def __init__(self) -> None:
        self.seen: dict[int, torch.Tensor] = {}

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx == 0:
            self.seen[trainer.current_epoch] = batch[0][0].clone()


def test_every_epoch_draws_its_tasks_batches_and_each_task_one_checkpoint(tmp_path: Path) -> None:
    cli = build(tmp_path / "r", "--data.epochs_per_task", "2", num_tasks=2)
    spy = FirstBatches()
    cli.trainer.callbacks.append(spy)
    fit(cli)
    assert sorted(spy.seen) == [0, 1, 2, 3] and cli.trainer.current_epoch == 4
    for epoch, x in spy.seen.items():
        task, within = epoch // 2, epoch % 2
        assert torch.equal(x, next(iter(cli.datamodule.train_batches(task, within)))[0]), epoch
    assert sorted(p.name for p in (tmp_path / "r" / "checkpoints").glob("task_*")) == [
        "task_00.ckpt",
        "task_01.ckpt",
    ]


def test_metrics_json_counts_a_task_only_once_its_checkpoint_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save = TaskCheckpoint.save_task

    def fail_on_the_last(self: TaskCheckpoint, trainer: pl.Trainer, task: int) -> None:
        if task == 2:
            raise OSError("no space left on device (injected)")
        save(self, trainer, task)

    monkeypatch.setattr(TaskCheckpoint, "save_task", fail_on_the_last)
    with pytest.raises(OSError, match="injected"):
        fit(build(tmp_path / "r"))
    summary = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert summary["tasks_done"] == 2 and not summary["complete"]


def test_a_loss_scaler_is_refused_before_training(tmp_path: Path) -> None:
    """The method hooks edit p.grad between backward and the step: it must not be loss-scaled."""
    cli = build(tmp_path / "r")
    scaled = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))
    trainer = pl.Trainer(
        plugins=[scaled],
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        callbacks=[TaskSequence()],
        default_root_dir=tmp_path,
        max_epochs=3,
    )
    with pytest.raises(ConfigError, match="trainer.precision='16-mixed' is not allowed"):
        trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.model.global_step == 0


def test_different_seeds_give_different_tasks(tmp_path: Path) -> None:
    a, b = (
        build(tmp_path / "a", "--data.seed", "1").datamodule,
        build(tmp_path / "b", "--data.seed", "2").datamodule,
    )
    a.setup()
    b.setup()
    assert not torch.equal(a.family.permutations, b.family.permutations)


def test_chunking_mini_batches_changes_nothing(tmp_path: Path) -> None:
    one = fit(build(tmp_path / "one", "--data.steps_per_chunk", "1"))
    three = fit(build(tmp_path / "three", "--data.steps_per_chunk", "3"))
    assert torch.equal(one.A, three.A)


def test_a_float64_run_evaluates_and_samples_in_float64(tmp_path: Path) -> None:
    """The explicit untrained evaluation and the method's samples go through the precision
    plugin, as Lightning's own loops do (EWC's Fisher draws samples)."""
    ewc = str(ROOT / "configs/method/ewc.yaml")
    cli = build(tmp_path / "r", "--trainer.precision", "64-true", "--model.method", ewc, num_tasks=2)
    seq = fit(cli)
    assert next(cli.model.net.parameters()).dtype == torch.float64
    assert seq.initial is not None and not torch.isnan(seq.A).any()
