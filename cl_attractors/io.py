"""Crash-safe file writes: write to a temporary file in the same directory, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _atomic(path: Path, write: Any, binary: bool) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: readers see the old file or the whole new one."""
    _atomic(path, lambda fh: fh.write(text), binary=False)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def save_tensor(path: Path, obj: Any) -> None:
    """``torch.save`` atomically."""
    _atomic(path, lambda fh: torch.save(obj, fh), binary=True)


def ensure_writable(run_dir: Path) -> None:
    """Create ``run_dir`` and check that files can be written there, or raise a one-line OSError."""
    run_dir = Path(run_dir)
    blocker = next((p for p in (run_dir, *run_dir.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OSError(f"output directory {run_dir} cannot be created: {blocker} is a file")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / ".write_test", "ok\n")
        (run_dir / ".write_test").unlink()
    except OSError as err:
        raise OSError(f"output directory {run_dir} is not writable ({err.strerror or err})") from None


def matrix_to_csv(A: torch.Tensor) -> str:
    """CSV of A with a header: row i = evaluated task, column j = after training task j."""
    n = A.shape[0]
    lines = ["task," + ",".join(f"after_task_{j}" for j in range(n))]
    for i in range(n):
        cells = ("" if torch.isnan(v) else f"{float(v):.6f}" for v in A[i])
        lines.append(f"{i}," + ",".join(cells))
    return "\n".join(lines) + "\n"


def read_matrix_csv(path: Path) -> torch.Tensor:
    """Inverse of :func:`matrix_to_csv` (empty cells are NaN)."""
    rows = Path(path).read_text().strip().splitlines()[1:]
    values = [[float(c) if c else float("nan") for c in row.split(",")[1:]] for row in rows]
    return torch.tensor(values, dtype=torch.float64)
