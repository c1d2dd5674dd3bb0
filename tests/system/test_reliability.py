"""Injected faults on fit: determinism, SIGKILL and resume, divergence, unwritable outputs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import cli
from cl_attractors.io import read_matrix_csv
from tests.helpers import ROOT, tiny_args


def matrix(run_dir: Path) -> torch.Tensor:
    return read_matrix_csv(run_dir / "accuracy_matrix.csv")


def test_same_config_and_seed_give_the_same_matrix_bit_for_bit(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert (
            cli.main(
                tiny_args(tmp_path / name, "--model.method", "configs/method/ewc.yaml")
                if (ROOT / "configs/method/ewc.yaml").exists()
                else tiny_args(tmp_path / name)
            )
            == 0
        )
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
        "--model.hidden_sizes",
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
