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

import os
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
