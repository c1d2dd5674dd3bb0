"""Paths written inside a config file are relative to that file, not to the working directory.

So a config works from any directory: ``defaults: [../trainer/default.yaml]`` in
``configs/experiment/vanilla.yaml`` names ``configs/trainer/default.yaml`` wherever the command
runs. Only inputs are resolved (config files, method files, data directories); outputs (``out_dir``,
``save_dir``, ``--run_dir``) stay relative to the working directory, as in Lightning. A relative
path that exists only from the working directory is still accepted (configs written before this
rule named files from the repository root). Paths on the command line are the shell's: relative
to the working directory.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
DIR_FLAGS = ("--data.data_dir",)  # flags whose value is a path whatever its suffix


def resolve_relative(value: str, config_path: str | Path) -> str:
    """``value`` read from the file ``config_path``, as a path usable from the working directory.

    Absolute paths are returned as they are; a relative one is joined to the config file's
    directory (normalised: ``configs/grid/../method/x.yaml`` is ``configs/method/x.yaml``), unless
    only the working directory has it.
    """
    path = Path(os.path.expanduser(value))
    if path.is_absolute():
        return str(path)
    beside = os.path.normpath(Path(config_path).parent / path)
    if not Path(beside).exists() and path.exists():
        return value
    return beside


def is_config_path(value: object) -> bool:
    """Whether ``value`` names a config file (a string ending in .yaml, .yml or .json)."""
    return isinstance(value, str) and "\n" not in value and value.endswith(CONFIG_SUFFIXES)


def resolve_args(args: Sequence[object], config_path: str | Path) -> list[str]:
    """Command-line style ``args`` read from ``config_path`` with their path values resolved:
    every config file (``--config x.yaml``, ``--model.method x.yaml``, ``--data=x.yaml``) and
    the value of each flag in :data:`DIR_FLAGS`."""
    out: list[str] = []
    previous = ""
    for arg in map(str, args):
        flag, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if eq and (is_config_path(value) or flag in DIR_FLAGS):
            arg = f"{flag}={resolve_relative(value, config_path)}"
        elif not eq and (is_config_path(arg) or previous in DIR_FLAGS):
            arg = resolve_relative(arg, config_path)
        out.append(arg)
        previous = arg
    return out


# ---- a run's task checkpoints (callbacks.task_checkpoint writes them; grids prune them) ----------
TASK_FILE = re.compile(r"task_(\d+)\.ckpt")


def task_file(task: int) -> str:
    return f"task_{task:02d}.ckpt"


def task_checkpoints(directory: Path) -> list[Path]:
    """The task checkpoints in ``directory``, newest task first."""
    found = [
        (int(m.group(1)), p) for p in directory.glob("task_*.ckpt") if (m := TASK_FILE.fullmatch(p.name))
    ]
    return [p for _, p in sorted(found, reverse=True)]


def prune_task_checkpoints(run_dir: Path) -> int:
    """Delete a finished run's task checkpoints but the newest and the one ``last.ckpt`` names (the
    final weights, which Fig. 5 reads); returns the bytes freed. One per task of the paper's MLP with
    Adam's state is 19 MB: a grid that kept them all would fill a laptop's disk (~180 MB a run)."""
    directory = Path(run_dir) / "checkpoints"
    found = task_checkpoints(directory)
    keep = {(directory / "last.ckpt").resolve(), *(p.resolve() for p in found[:1])}
    freed = 0
    for path in found:
        if path.resolve() not in keep:
            freed += path.stat().st_size
            path.unlink()
    return freed


def study_folder(name: str) -> str:
    """A folder name for a study name of any text: the name itself when it is plain (letters,
    digits, ``_ . -``, not starting with a dot), else a cleaned name with a hash of the original
    (no separator, ``..`` or NUL can reach the path; two names never share a folder)."""
    plain = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)[:80].lstrip(".")
    if plain == name and plain:
        return plain
    return f"{plain or 'study'}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"
