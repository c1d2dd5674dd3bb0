"""What a person sees when `fit` runs: a task-level progress bar in a terminal, one line per task in
a log, no warnings our defaults cause, no Lightning advertisements, and a formatted end summary."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

from tests.helpers import ROOT, tiny_args

NOISE = (
    "Validation DataLoader",
    "Sanity Checking",
    "Epoch 0",
    "💡",
    "litlogger",
    "logging interval",
    "LeafSpec",
    "was not set",
    "Warning",
    "Traceback",
)


def fit_command(run_dir: Path) -> list[str]:
    """A tiny 2-task fit with the progress bar on (tiny_args turns it off)."""
    args = tiny_args(run_dir, "--trainer.enable_progress_bar", "true", num_tasks=2)
    return [sys.executable, str(ROOT / "cli.py"), *args]


def test_a_log_gets_one_line_per_task_and_the_summary_without_noise(tmp_path: Path) -> None:
    out = subprocess.run(fit_command(tmp_path / "run"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    per_task = [line for line in lines if line.startswith("task ")]
    assert [line.split("  ")[0] for line in per_task] == ["task 1/2", "task 2/2"], out.stdout
    assert all(" current " in line and " average " in line and " left" in line for line in per_task)
    assert " finished: 2/2 tasks in " in out.stdout and "final average accuracy" in out.stdout
    assert f"tensorboard --logdir {tmp_path / 'run'}" in out.stdout
    for noise in NOISE:
        assert noise not in out.stdout + out.stderr, noise


def test_a_terminal_gets_one_bar_for_the_whole_sequence(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(fit_command(tmp_path / "run"), cwd=ROOT, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=300) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert "task 2/2" in screen and "after task 2: current " in screen and "|" in screen
    assert "task 1/2  current" not in screen  # the bar replaces the per-task lines
    assert " finished: 2/2 tasks in " in screen
    for noise in NOISE:
        assert noise not in screen, noise
