"""Nothing changes a run silently (issue 22): a resume is the run's own, ``validate`` reports a
checkpoint's accuracy without touching the run, and a run without a progress bar still logs a line
per task. Tiny synthetic runs through the real command line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import cli
from cl_attractors.io import read_matrix_csv
from tests.helpers import ROOT, start, tiny_args, wait_for


def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def _interrupted(tmp_path: Path, *extra: str) -> Path:
    """A run killed (SIGTERM) once its first task is checkpointed."""
    run = tmp_path / "run"
    args = tiny_args(run, "--data.synthetic_size", "2048", *extra, num_tasks=3)
    proc = start(*args)
    wait_for(lambda: (run / "checkpoints" / "task_00.ckpt").is_file(), proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert not json.loads((run / "metrics.json").read_text())["complete"]
    return run


def test_a_resume_with_nothing_else_takes_the_runs_config_and_refuses_another(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = _interrupted(tmp_path, "--model.method", "configs/method/sticky.yaml", "--model.method.gamma", "10")
    config = (run / "config.yaml").read_text()
    assert cli.main(["fit", "--run_dir", str(run), "--ckpt_path", "last", "--model.method.gamma", "4.7"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("error: --model.method.init_args.gamma=4.7 is not allowed on a resume")
        and "\n" not in err
    )
    assert (run / "config.yaml").read_text() == config  # refused before anything was written
    assert cli.main(["fit", "--run_dir", str(run), "--ckpt_path", "last"]) == 0
    assert json.loads((run / "metrics.json").read_text())["complete"]
    assert "gamma: 10.0" in (run / "config.yaml").read_text()


def test_validate_prints_and_writes_a_checkpoints_accuracy_without_touching_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    assert cli.main(tiny_args(run)) == 0
    before = _files(run)
    ckpt = run / "checkpoints" / "task_01.ckpt"
    assert cli.main(["validate", "-c", str(run / "config.yaml"), "--ckpt_path", str(ckpt)]) == 0
    out = capsys.readouterr().out
    written = run / "validation" / "task_01.test.json"  # the eval split of the run
    saved = json.loads(written.read_text())
    column = read_matrix_csv(run / "accuracy_matrix.csv")[:, 1].tolist()
    assert saved["acc"] == pytest.approx(column, abs=1e-6) and saved["recorded_column"] == pytest.approx(
        column
    )
    assert "task 0:" in out and "(recorded:" in out and str(written) in out
    after = _files(run)
    assert {k: v for k, v in after.items() if not k.startswith("validation/")} == before
    assert cli.main(["validate", "-c", str(run / "config.yaml")]) == 2
    assert "validate needs --ckpt_path" in capsys.readouterr().err


def test_a_run_without_a_progress_bar_logs_a_line_per_task(tmp_path: Path) -> None:
    args = tiny_args(tmp_path / "run")  # as a grid's runs: --trainer.enable_progress_bar false
    done = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line.split("  ")[0] for line in done.stdout.splitlines() if line.startswith("task ")]
    assert lines == ["task 1/3", "task 2/3", "task 3/3"]
    assert (
        "GPU available" not in done.stdout + done.stderr and "TPU available" not in done.stdout + done.stderr
    )
