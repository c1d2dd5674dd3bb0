"""``cli.py validate``: a checkpoint's accuracy on every task, printed beside the column of A the
run recorded for it, and written next to the checkpoint's run (``<run>/validation/``) without
touching the run's own files (its config, events, metrics and checkpoints stay as they are)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from cl_attractors.io import read_matrix_csv, write_json


def checkpoint_run(ckpt: Path) -> tuple[Path, int | None]:
    """The run a checkpoint belongs to (``<run>/checkpoints/<file>``), and the task it was saved
    after (``task_XX.ckpt``; None for another name, such as ``last.ckpt``)."""
    ckpt = Path(ckpt)
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    found = re.fullmatch(r"task_(\d+)\.ckpt", ckpt.name)
    return run, int(found.group(1)) if found else None


def recorded(run: Path, task: int | None) -> list[float | None] | None:
    """Column ``task`` of the run's accuracy matrix (None: no matrix or no such column)."""
    path = run / "accuracy_matrix.csv"
    if task is None or not path.is_file():
        return None
    A = read_matrix_csv(path)
    if task >= A.shape[1]:
        return None
    return [None if math.isnan(v) else float(v) for v in A[:, task].tolist()]


def report(column: torch.Tensor, ckpt: Path, split: str) -> tuple[str, Path]:
    """Write ``<run>/validation/<checkpoint>.<split>.json``; return the text to print and the path."""
    run, task = checkpoint_run(ckpt)
    before = recorded(run, task)
    values = [float(v) for v in column.tolist()]
    out = run / "validation" / f"{Path(ckpt).stem}.{split}.json"
    write_json(
        out,
        {"checkpoint": str(ckpt), "split": split, "acc": values, "recorded_column": before, "task": task},
    )
    head = f"validate {ckpt} on the {split} split: accuracy per task (%)"
    if before is not None:
        head += f", beside column {task} of {run / 'accuracy_matrix.csv'}"
    lines = [head]
    for i, v in enumerate(values):
        then = None if before is None else before[i]
        was = "" if then is None else f"   (recorded: {100 * then:.2f})"
        lines.append(f"  task {i}: {100 * v:6.2f}{was}")
    lines.append(f"  average over the {len(values)} tasks: {100 * sum(values) / max(len(values), 1):.2f}")
    lines.append(f"written to {out}")
    return "\n".join(lines), out
