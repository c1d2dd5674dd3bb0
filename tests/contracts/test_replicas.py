"""The replica engine against single runs: a replica's accuracy matrix is its single run's (float64,
tiny synthetic protocol, every method of configs/method/), whatever group it is in; the run
directories are a single run's; a group resumes from its runs' checkpoints; a NaN replica fails alone."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from cl_attractors.errors import ConfigError
from cl_attractors.grid.progress import Progress
from cl_attractors.grid.spec import Run
from cl_attractors.methods import load_method
from cl_attractors.replicas.group import fit, prepare, run_group
from cl_attractors.replicas.methods import BATCHED
from cl_attractors.train.cli import make_cli
from tests.helpers import ROOT

PRECISION = "64-true"
LR = "0.001"
BATCHED_NAMES = {cls.__name__ for cls in BATCHED}
# every method config whose class has a replica form (the others are refused in one line: below)
METHODS = sorted(
    p.relative_to(ROOT).as_posix()
    for p in (ROOT / "configs" / "method").glob("*.yaml")
    if load_method(p).__class__.__name__ in BATCHED_NAMES
)
UNBATCHED = sorted(
    p.relative_to(ROOT).as_posix()
    for p in (ROOT / "configs" / "method").glob("*.yaml")
    if load_method(p).__class__.__name__ not in BATCHED_NAMES
)


def args(run_dir: Path, seed: int, method: str = "configs/method/vanilla.yaml", *extra: str) -> list[str]:
    """A few-second float64 run: synthetic data, a 16-unit MLP, lr 1e-3 (the 32 examples of a
    mini-batch, 3 tasks of 8 steps). At lr 1e-2 EWC's lam=1000 pull makes this toy chaotic: the
    float rounding of a Fisher summed in another order (1e-16) grows to 5% of the weights."""
    return [
        "fit",
        "--config",
        str(ROOT / "configs/experiment/vanilla.yaml"),
        "--model.method",
        str(ROOT / method),
        "--data.source",
        "synthetic",
        "--data.synthetic_size",
        "256",
        "--data.num_tasks",
        "3",
        "--data.batch_size",
        "32",
        "--data.steps_per_chunk",
        "4",
        "--model.net.init_args.hidden_sizes",
        "[16]",
        "--model.optimizer.init_args.lr",
        LR,
        "--model.optimizer.init_args.fused",
        "false",
        "--trainer.precision",
        PRECISION,
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.accelerator",
        "cpu",
        "--seed",
        str(seed),
        "--run_dir",
        str(run_dir),
        *extra,
    ]


def matrix(run_dir: Path) -> torch.Tensor:
    lines = (run_dir / "accuracy_matrix.csv").read_text().strip().splitlines()[1:]
    return torch.tensor([[float(v) for v in line.split(",")[1:]] for line in lines], dtype=torch.float64)


def net_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The network's tensors after the last task."""
    state = torch.load(run_dir / "checkpoints" / "task_02.ckpt", weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("net.")}


def single(run_dir: Path, seed: int, method: str) -> torch.Tensor:
    """The run made alone, as ``cli.py fit`` makes it."""
    make_cli(args(run_dir, seed, method))
    return matrix(run_dir)


@pytest.mark.parametrize("method", METHODS)
def test_a_replica_is_its_single_run(tmp_path: Path, method: str) -> None:
    alone = single(tmp_path / "alone", 1, method)
    failures = run_group([args(tmp_path / "r1", 1, method), args(tmp_path / "r2", 2, method)])
    assert failures == [None, None]
    assert (matrix(tmp_path / "r1") - alone).abs().max() <= 1e-9
    ours_w, alone_w = (net_weights(tmp_path / d) for d in ("r1", "alone"))
    assert ours_w.keys() == alone_w.keys()
    # float64 rounding grows through Adam's 1/sqrt(v) and SI's 1/(delta^2 + xi) to 3.8e-7 at most here
    # (SI; EWC 8e-17, sticky 5e-17: docs/performance.md);
    # a real difference (a missed step, another phi) moves the weights by far more
    assert all((ours_w[k] - alone_w[k]).abs().max() <= 1e-5 for k in ours_w)
    assert not torch.equal(matrix(tmp_path / "r2"), alone)  # the other replica is another run
    for name in ("config.yaml", "metrics.json", "permutations.pt", "checkpoints/task_02.ckpt"):
        assert (tmp_path / "r1" / name).is_file(), name
    ours, theirs = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("r1", "alone"))
    assert ours.keys() == theirs.keys() and ours["complete"]


@pytest.mark.parametrize("method", UNBATCHED)
def test_a_method_without_a_replica_form_is_refused_in_one_line(tmp_path: Path, method: str) -> None:
    with pytest.raises(ConfigError, match=r"model.method=\w+ is not allowed with replicas; use one of"):
        run_group([args(tmp_path / "r1", 1, method), args(tmp_path / "r2", 2, method)])


def test_a_replica_does_not_depend_on_its_group(tmp_path: Path) -> None:
    """Seed 1 with Table 1's phi, in a group with seed 2, and in another with seed 3 at other phi."""
    method = "configs/method/sticky_decoupled_l1.yaml"
    run_group([args(tmp_path / "a1", 1, method), args(tmp_path / "a2", 2, method)])
    other = ("--model.method.init_args.lam", "9.0", "--model.method.init_args.a1", "0.05")
    run_group([args(tmp_path / "b3", 3, method, *other), args(tmp_path / "b1", 1, method)])
    assert (matrix(tmp_path / "a1") - matrix(tmp_path / "b1")).abs().max() <= 1e-9
    assert not torch.equal(matrix(tmp_path / "a2"), matrix(tmp_path / "b3"))


@pytest.mark.parametrize("keep", [(), ("--tasks.reset_optimizer", "false")], ids=["reset", "kept_optimizer"])
def test_an_interrupted_group_resumes_from_its_task_checkpoints(
    tmp_path: Path, keep: tuple[str, ...]
) -> None:
    """Kept across tasks, Adam's state resumes from the runs' own checkpoints, stacked."""
    method = "configs/method/si.yaml"
    runs = [args(tmp_path / f"r{s}", s, method, *keep) for s in (1, 2)]
    run_group(runs)
    whole = [matrix(tmp_path / f"r{s}") for s in (1, 2)]
    for s in (1, 2):  # as if killed during task 2: its checkpoint never written
        checkpoints = tmp_path / f"r{s}" / "checkpoints"
        (checkpoints / "task_02.ckpt").unlink()
        (checkpoints / "last.ckpt").unlink()
        (checkpoints / "last.ckpt").symlink_to("task_01.ckpt")
    group = prepare(runs)
    assert group.resume is not None and [p.name for p in group.resume] == ["task_01.ckpt"] * 2
    assert fit(group) == [None, None]
    for s, before in zip((1, 2), whole):
        assert (matrix(tmp_path / f"r{s}") - before).abs().max() <= 1e-9
        assert json.loads((tmp_path / f"r{s}" / "metrics.json").read_text())["complete"]


def test_a_nan_replica_fails_alone(tmp_path: Path) -> None:
    group = prepare([args(tmp_path / "ok", 1), args(tmp_path / "nan", 2)])
    with torch.no_grad():
        group.module.net.stacked_parameters()[0][1, 0, 0] = float("nan")
    failures = fit(group)
    assert failures[0] is None and failures[1] is not None and "diverged" in failures[1]
    assert json.loads((tmp_path / "ok" / "metrics.json").read_text())["complete"]
    assert not (tmp_path / "nan" / "metrics.json").exists()  # it never finished a task
    assert "error: training diverged" in (tmp_path / "nan" / "run.log").read_text()
    alone = single(tmp_path / "alone", 1, "configs/method/vanilla.yaml")
    assert (matrix(tmp_path / "ok") - alone).abs().max() <= 1e-9


def test_runs_of_other_protocols_are_refused_in_one_line(tmp_path: Path) -> None:
    wider = ("--model.net.init_args.hidden_sizes", "[32]")
    with pytest.raises(ConfigError, match=r"^model.net.init_args.hidden_sizes differs between the runs"):
        prepare([args(tmp_path / "a", 1), args(tmp_path / "b", 2, "configs/method/vanilla.yaml", *wider)])
    with pytest.raises(ConfigError, match=r"^model.method differs between the replicas"):
        prepare([args(tmp_path / "a", 1), args(tmp_path / "b", 2, "configs/method/si.yaml")])


def test_a_replica_checkpoint_resumes_as_a_single_run(tmp_path: Path) -> None:
    """A replica's task checkpoint is a single run's: ``fit --ckpt_path last`` finishes it alone."""
    method = "configs/method/ewc.yaml"
    run_group([args(tmp_path / "r1", 1, method), args(tmp_path / "r2", 2, method)])
    whole = matrix(tmp_path / "r1")
    checkpoints = tmp_path / "r1" / "checkpoints"
    (checkpoints / "task_02.ckpt").unlink()
    (checkpoints / "last.ckpt").unlink()
    (checkpoints / "last.ckpt").symlink_to("task_01.ckpt")
    make_cli([*args(tmp_path / "r1", 1, method), "--ckpt_path", "last"])
    assert (matrix(tmp_path / "r1") - whole).abs().max() <= 1e-9
    assert json.loads((tmp_path / "r1" / "metrics.json").read_text())["complete"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Refresh(pl.Callback):
    """The grid's display re-read after every epoch (each task here), once the replicas' files are written."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.progress.refresh()


def test_each_replica_logs_its_tasks_and_the_grid_display_shows_each_replica(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue 22 item 5 under the replica engine: each replica's run.log gets the line per task its
    single run writes (the same accuracies), and the grid's live display a line per replica."""
    runs = [
        Run("vanilla", "vanilla", None, s, tmp_path / f"r{s}", tuple(args(tmp_path / f"r{s}", s)))
        for s in (1, 2)
    ]
    display = Terminal()
    fit(prepare([list(r.args) for r in runs]), [Refresh(Progress(runs, "grid", stream=display))])
    capsys.readouterr()
    single(tmp_path / "alone", 1, "configs/method/vanilla.yaml")
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("task ")]
    timing = re.compile(r"  \d+:\d\d elapsed, ~\d+:\d\d left$")
    for run in runs:
        logged = (run.run_dir / "run.log").read_text().splitlines()
        assert len(logged) == 3 and all(timing.search(line) for line in logged)
        if run.seed == 1:  # the replica is its single run: the same lines but for the clock
            assert [timing.sub("", line) for line in logged] == [timing.sub("", line) for line in printed]
        for k in (1, 2):
            assert f"vanilla seed {run.seed}: training task {k + 1}/3; after task {k}: " in display.getvalue()
    assert "grid: 0/2 runs finished, 0 failed; tasks 6/6; ETA 0 s (from 6 tasks in" in display.getvalue()
