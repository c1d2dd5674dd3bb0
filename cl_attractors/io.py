"""Crash-safe file writes (a temporary file in the same directory, then a rename) and YAML reads
that turn a malformed file into one :class:`ConfigError` line naming the file and the line."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from cl_attractors.errors import ConfigError


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
    except OSError as err:  # e.g. a full disk: no partial file is left, the old one is kept
        Path(tmp).unlink(missing_ok=True)
        raise OSError(err.errno, f"cannot write {path}: {err.strerror or err}") from None
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
    """``torch.save`` atomically (serialised in memory first, so a failed write is an OSError)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    _atomic(path, lambda fh: fh.write(buffer.getbuffer()), binary=True)


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


def read_yaml(path: Path, field: str) -> Any:
    """The YAML document in ``path`` (safe loader: no tags run code), or a :class:`ConfigError`
    naming ``field``, the file and, for a syntax error, the line and column."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{field} {path} is a directory; give a YAML file")
    if not path.is_file():
        raise ConfigError(f"{field} {path} does not exist")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ConfigError(f"{field} {path} is not a UTF-8 text file") from None
    except OSError as err:
        raise ConfigError(f"{field} {path} cannot be read ({err.strerror or err})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{field} {path}{where}: {problem} (not valid YAML)") from None


def read_yaml_mapping(path: Path, field: str) -> dict[str, Any]:
    """:func:`read_yaml` of a file that must hold a mapping (an empty file is ``{}``)."""
    content = read_yaml(path, field)
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"{field} {path} must hold a mapping (key: value), got a {type(content).__name__}")
    return content


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
