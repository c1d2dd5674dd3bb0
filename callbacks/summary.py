"""The plain text a person reads: the end-of-fit summary and the line printed after each task.

Pure functions of metrics.json's content and the accuracy matrix (no Lightning), so the
formatting is tested on hand-written numbers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch


def clock(seconds: float) -> str:
    """``h:mm:ss`` or ``m:ss``."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def task_line(task: int, num_tasks: int, summary: dict[str, Any]) -> str:
    """``task k/N  current ..%  average ..%``: the accuracies right after task ``task`` (0-based)."""
    current, average = summary["current_acc"][-1], summary["final_avg_acc"]
    return f"task {task + 1}/{num_tasks}  current {current:.1%}  average {average:.1%}"


def progress_line(task: int, n: int, summary: dict[str, Any], elapsed: float, first: int | None) -> str:
    """:func:`task_line` and the time: ``m:ss elapsed, ~m:ss left`` (left: the tasks still to train
    at the pace of those trained since ``first``, the first task of this process)."""
    left = elapsed / (task + 1 - (first or 0)) * (n - task - 1)
    return f"{task_line(task, n, summary)}  {clock(elapsed)} elapsed, ~{clock(left)} left"


def _pct(value: float | None, points: bool = False) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{100 * value:+.2f} points" if points else f"{100 * value:.2f}%"


def format_matrix(A: torch.Tensor) -> list[str]:
    """A in percent: one row per evaluated task i, one column per 'after task j' (blank: not yet)."""
    n = A.shape[0]
    lines = ["  i \\ j " + "".join(f"{j:>7d}" for j in range(n))]
    for i in range(n):
        cells = ("" if math.isnan(v) else f"{100 * v:.1f}" for v in A[i].tolist())
        lines.append((f"  {i:>5d} " + "".join(f"{c:>7s}" for c in cells)).rstrip())
    return lines


def format_summary(summary: dict[str, Any], A: torch.Tensor, seconds: float, run_dir: Path) -> str:
    """The end-of-fit report: final metrics, A in percent, wall time and where the outputs are."""
    n, done = A.shape[0], summary["tasks_done"]
    rule = "─" * 64
    state = "finished" if summary["complete"] else "stopped early"
    lines = [rule, f" {state}: {done}/{n} tasks in {clock(seconds)} (wall time)"]
    if done:
        lines += [
            f"   final average accuracy   {_pct(summary['final_avg_acc'])}",
            f"   backward transfer (BWT)  {_pct(summary['bwt'], points=True)}",
            f"   forgetting               {_pct(summary['forgetting'], points=True)}",
            f"   forward transfer (FWT)   {_pct(summary['fwt'], points=True)}",
            f"   Eq. 2                    {summary['eq2']:.4f}   (x N: {summary['eq2_weighted_mean']:.4f})",
        ]
    lines += [
        " accuracy matrix A[i, j] in % (row i: evaluated task, column j: after training task j)",
        *format_matrix(A),
        f" outputs    {run_dir}  (metrics.json, accuracy_matrix.csv, checkpoints/task_XX.ckpt)",
        f" dashboard  tensorboard --logdir {run_dir}",
        rule,
    ]
    return "\n".join(lines)
