"""The command line: the main job's output, and one-line errors for bad input (exit 2, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cli
from tests.helpers import ROOT, tiny_args


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_fit_prints_the_matrix_and_the_log_directory(tmp_path: Path) -> None:
    out = run_cli(*tiny_args(tmp_path / "run", num_tasks=2))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "accuracy matrix A[i, j] in %" in out.stdout and "final average accuracy" in out.stdout
    assert str(tmp_path / "run") in out.stdout


@pytest.mark.parametrize(
    "override, field",
    [
        (["--data.num_tasks", "0"], "data.num_tasks"),
        (["--data.shared_fraction", "1.5"], "data.shared_fraction"),
        (["--data.batch_size", "0"], "data.batch_size"),
        (["--data.source", "cifar"], "data.source"),
        (["--data.source", "mnist"], "data.data_dir"),
        (["--model.hidden_sizes", "[0]"], "model.hidden_sizes"),
        (["--data.batch_size", "abc"], "data.batch_size"),
        (["--model.method", "configs/method/does_not_exist.yaml"], "model.method"),
    ],
)
def test_bad_input_gives_one_line_error(
    tmp_path: Path, override: list[str], field: str, capsys: pytest.CaptureFixture
) -> None:
    assert cli.main(tiny_args(tmp_path / "run", *override)) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and field in errors[0], err[-1500:]
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_bad_input_exit_status_and_no_traceback_from_the_shell(tmp_path: Path) -> None:
    out = run_cli(*tiny_args(tmp_path / "run", "--data.num_tasks", "0"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "error: data.num_tasks=0 is not allowed; use an integer >= 1" in out.stderr
