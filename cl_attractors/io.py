"""Crash-safe file writes (a temporary file in the same directory, then a rename), and the one
reader of every file this project did not just write itself: tensors (``torch.load`` with
``weights_only=True``: tensors and plain data, no code runs), npz arrays (no pickles) and YAML (the
safe loader, bounded before it expands aliases), each turning a bad file into one :class:`ConfigError` line.

No other module calls ``torch.load``, ``pickle``, ``yaml.load``/``safe_load`` or ``np.load``
(``tests/unit/test_safe_loading.py`` checks the source).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cl_attractors.errors import ConfigError, bounded

if TYPE_CHECKING:  # torch is imported where a tensor is read or written: reading runs needs none
    import torch


def _atomic(path: Path, write: Any, binary: bool) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as fh:
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


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, through a temporary file of its own (two processes
    writing the same path each rename a whole file; the last one wins)."""
    _atomic(path, lambda fh: fh.write(data), binary=True)


def save_tensor(path: Path, obj: Any) -> None:
    """``torch.save`` atomically (serialised in memory first, so a failed write is an OSError)."""
    import torch

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


MAX_YAML_CHARS = 4 * 2**20  # a config is a few kB; a larger one is refused before it is parsed
MAX_YAML_NODES = 200_000  # scalars, lists and mappings after aliases are expanded


def load_tensors(path: Path, field: str = "", mmap: bool = False, kind: str = "checkpoint") -> Any:
    """``torch.load(path)`` of a file that may come from anyone (a checkpoint, ``permutations.pt``,
    a merged run): ``weights_only=True`` whatever the environment says, so a pickle that would
    run code is refused unread. A file that cannot be read is a one-line ConfigError naming
    ``field`` (the option that named the file, if any), the file and why."""
    import torch

    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # torch raises many types for a file it cannot or will not parse
        reason = (str(err).strip().splitlines() or [""])[0].split(". ")[0][:160]
        raise ConfigError(
            f"{field + ' ' if field else ''}{path} is not a readable {kind} "
            f"({type(err).__name__}{': ' + reason if reason else ''})"
        ) from None


def load_npz(path: Path) -> dict[str, Any]:
    """Every array of an npz file a user brings (``np.load`` with ``allow_pickle=False``: an
    object array is refused, no code runs); a file that cannot be read is one ConfigError line."""
    import zipfile
    import zlib

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as err:
        raise ConfigError(f"npz file {path} cannot be read ({err or type(err).__name__})") from None


def _expanded_size(node: yaml.Node, where: str) -> int:
    """The number of nodes ``node`` expands to (each alias counted as the whole node it names);
    refused past :data:`MAX_YAML_NODES` or for a recursive alias, without expanding anything."""
    sizes: dict[int, int] = {}
    pending: set[int] = set()

    def size(n: yaml.Node) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        if id(n) in pending:
            raise ConfigError(f"{where}: a YAML alias refers to itself (recursive data is not allowed)")
        pending.add(id(n))
        children: list[yaml.Node] = []
        if isinstance(n, yaml.ScalarNode) and "\x00" in n.value:
            raise ConfigError(f"{where}: the value {bounded(repr(n.value), 80)} holds a NUL byte; remove it")
        if isinstance(n, yaml.SequenceNode):
            children = list(n.value)
        elif isinstance(n, yaml.MappingNode):
            children = [c for pair in n.value for c in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_YAML_NODES:
                raise ConfigError(
                    f"{where}: the YAML expands to more than {MAX_YAML_NODES} values (aliases "
                    "counted whole); refused before expanding it (an alias bomb?)"
                )
        pending.discard(id(n))
        sizes[id(n)] = total
        return total

    return size(node)


def safe_yaml(text: str, where: str) -> Any:
    """The YAML document in ``text`` (safe loader: no tags run code), bounded before it is built:
    at most :data:`MAX_YAML_CHARS` characters and :data:`MAX_YAML_NODES` values with aliases
    expanded. Raises ``yaml.YAMLError`` for bad syntax and :class:`ConfigError` naming ``where``
    for a bomb."""
    if len(text) > MAX_YAML_CHARS:
        raise ConfigError(f"{where} holds {len(text)} characters; a YAML here takes at most {MAX_YAML_CHARS}")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, where)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: Path, field: str) -> Any:
    """The YAML document in ``path`` (safe loader: no tags run code), or a :class:`ConfigError`
    naming ``field``, the file and, for a syntax error, the line and column."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{field} {path} is a directory; give a YAML file")
    if not path.is_file():
        raise ConfigError(f"{field} {path} does not exist")
    try:
        if path.stat().st_size > MAX_YAML_CHARS * 4:  # read no further: a UTF-8 character is <= 4 bytes
            raise ConfigError(f"{field} {path} holds {path.stat().st_size} bytes; too large for a config")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{field} {path} is not a UTF-8 text file") from None
    except OSError as err:
        raise ConfigError(f"{field} {path} cannot be read ({err.strerror or err})") from None
    try:
        return safe_yaml(text, f"{field} {path}")
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
    import torch

    n = A.shape[0]
    lines = ["task," + ",".join(f"after_task_{j}" for j in range(n))]
    for i in range(n):
        cells = ("" if torch.isnan(v) else f"{float(v):.6f}" for v in A[i])
        lines.append(f"{i}," + ",".join(cells))
    return "\n".join(lines) + "\n"


def read_matrix_csv(path: Path) -> torch.Tensor:
    """Inverse of :func:`matrix_to_csv` (empty cells are NaN)."""
    import torch

    rows = Path(path).read_text(encoding="utf-8").strip().splitlines()[1:]
    values = [[float(c) if c else float("nan") for c in row.split(",")[1:]] for row in rows]
    return torch.tensor(values, dtype=torch.float64)
