"""Injected faults on fit: determinism, SIGKILL and resume, SIGTERM, divergence, unwritable outputs,
a full disk, a second process on a run directory, a resume with another model, a stopped fit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

import cli
from cl_attractors.errors import ConfigError
from cl_attractors.io import read_matrix_csv
from cl_attractors.train.cli import make_cli
from tests.helpers import ROOT, small_tmpfs, tiny_args


def matrix(run_dir: Path) -> torch.Tensor:
    return read_matrix_csv(run_dir / "accuracy_matrix.csv")


def test_same_config_and_seed_give_the_same_matrix_bit_for_bit(tmp_path: Path) -> None:
    for name in ("a", "b"):
        args = tiny_args(tmp_path / name, "--model.method", str(ROOT / "configs/method/ewc.yaml"))
        assert cli.main(args) == 0
    assert (tmp_path / "a" / "accuracy_matrix.csv").read_bytes() == (
        tmp_path / "b" / "accuracy_matrix.csv"
    ).read_bytes()
    a, b = (
        torch.load(tmp_path / n / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
        for n in ("a", "b")
    )
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a)


def test_other_seed_gives_other_tasks_and_matrix(tmp_path: Path) -> None:
    assert cli.main(tiny_args(tmp_path / "a")) == 0
    assert cli.main(tiny_args(tmp_path / "b", "--data.seed", "7", "--seed_everything", "7")) == 0
    assert not torch.equal(
        torch.load(tmp_path / "a" / "permutations.pt"), torch.load(tmp_path / "b" / "permutations.pt")
    )
    assert not torch.equal(matrix(tmp_path / "a"), matrix(tmp_path / "b"))


def _slow_args(run_dir: Path, *extra: str) -> list[str]:
    """A run long enough (a few seconds per task) to be killed in the middle of a task."""
    return tiny_args(
        run_dir,
        "--data.synthetic_size",
        "8192",
        "--data.batch_size",
        "16",
        "--model.net.hidden_sizes",
        "[1024]",
        *extra,
        num_tasks=3,
    )


def test_sigkill_mid_task_then_resume_gives_the_uninterrupted_matrix(tmp_path: Path) -> None:
    assert cli.main(_slow_args(tmp_path / "ref")) == 0
    run = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), *_slow_args(run)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        metrics = run / "metrics.json"
        if (
            metrics.exists()
            and json.loads(metrics.read_text())["tasks_done"] >= 1
            and (run / "checkpoints" / "last.ckpt").exists()
        ):
            time.sleep(0.1)  # inside task 1
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done = json.loads((run / "metrics.json").read_text())
    assert 1 <= done["tasks_done"] < 3 and not done["complete"]  # outputs are whole, not torn
    assert not list(run.glob(".*.tmp"))
    assert cli.main(_slow_args(run, "--ckpt_path", "last")) == 0
    assert torch.equal(matrix(run), matrix(tmp_path / "ref"))
    assert json.loads((run / "metrics.json").read_text())["complete"]


def test_divergence_stops_with_task_and_step(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(tiny_args(tmp_path / "r", "--model.optimizer.init_args.lr", "1e20")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: training diverged: loss is nan at task 0, global step ")


def test_unwritable_output_directory_fails_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    out = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *tiny_args(blocker / "run")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"error: output directory {blocker / 'run'} cannot be created: {blocker} is a file" in out.stderr


def _start_fit(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_task(run: Path, proc: subprocess.Popen, tasks: int = 1) -> None:
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        metrics = run / "metrics.json"
        if metrics.exists() and json.loads(metrics.read_text())["tasks_done"] >= tasks:
            return
        time.sleep(0.05)
    pytest.fail("the run ended (or hung) before the fault could be injected")


def test_sigterm_mid_run_exits_nonzero_with_one_line_and_keeps_the_finished_tasks(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = _start_fit(*_slow_args(run))
    try:
        _wait_for_task(run, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: terminated by SIGTERM before the run finished")
    done = json.loads((run / "metrics.json").read_text())
    assert 1 <= done["tasks_done"] < 3 and not done["complete"]


def test_a_second_fit_on_a_run_dir_in_use_gets_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    proc = _start_fit(*_slow_args(run))
    try:
        _wait_for_task(run, proc)
        before = (run / "metrics.json").read_text()
        assert cli.main(tiny_args(run)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == (
            f"error: --run_dir {run} is in use by another process (pid {proc.pid}); "
            "wait for it to end or use another --run_dir"
        )
        assert (
            json.loads(before)["tasks_done"] <= json.loads((run / "metrics.json").read_text())["tasks_done"]
        )
    finally:
        proc.kill()
        proc.communicate()


def test_resuming_with_another_network_or_method_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    assert cli.main(tiny_args(run, num_tasks=2)) == 0
    last = run / "checkpoints" / "last.ckpt"
    for extra, expected in [  # the run's own config is the first check
        (
            ("--model.net.hidden_sizes", "[32]"),
            "--model.net.init_args.hidden_sizes=[32] is not allowed on a resume",
        ),
        (("--model.method", "configs/method/ewc.yaml"), "--model.method.class_path='cl_attractors.methods"),
    ]:
        assert cli.main(tiny_args(run, "--ckpt_path", "last", *extra, num_tasks=2)) == 2
        assert expected in capsys.readouterr().err.strip().splitlines()[-1]
    for extra, expected in [  # then the checkpoint itself, started from in a new run
        (
            ("--model.net.hidden_sizes", "[32]"),
            "holds another model than this config's model (net.0.bias is [16] there, [32] here)",
        ),
        (("--model.method", "configs/method/ewc.yaml"), f"--ckpt_path {last} holds another model"),
    ]:
        assert cli.main(tiny_args(tmp_path / "other", "--ckpt_path", str(last), *extra, num_tasks=2)) == 2
        assert expected in capsys.readouterr().err.strip().splitlines()[-1]


class _StopAfterFirstTask(Callback):
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        trainer.should_stop = True


def test_a_fit_stopped_before_its_last_task_is_an_error_not_a_success(tmp_path: Path) -> None:
    built = make_cli(tiny_args(tmp_path / "run")[1:], run=False)
    built.trainer.callbacks.append(_StopAfterFirstTask())
    with pytest.raises(ConfigError, match="the run stopped after 1 of 3 tasks"):
        built.trainer.fit(built.model, datamodule=built.datamodule)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["complete"] is False


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root to mount; unmounted afterwards)."""
    with small_tmpfs(tmp_path, "1M") as mount:
        yield mount


def test_a_full_disk_ends_with_one_line_and_leaves_no_partial_file(
    full_disk: Path, capsys: pytest.CaptureFixture
) -> None:
    run = full_disk / "run"  # one checkpoint (~0.6 MiB) fits, the next does not
    args = tiny_args(run, "--model.net.hidden_sizes", "[64]", "--tasks.heatmaps", "false")
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: [Errno 28] cannot write ") and err.endswith("No space left on device")
    files = [p for p in run.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".tmp")]
    for path in files:
        if path.suffix == ".ckpt":
            torch.load(path, weights_only=True)  # whole: it loads
        elif path.suffix == ".json":
            json.loads(path.read_text())
    assert json.loads((run / "metrics.json").read_text())["complete"] is False
