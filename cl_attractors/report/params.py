"""Numeric method arguments read from the configs a grid names (no method is built)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

from cl_attractors.io import read_yaml


def method_params(path: str) -> dict[str, float]:
    """The numeric ``init_args`` of a method YAML (``class_path``/``init_args``)."""
    raw = read_yaml(Path(path), "--model.method") or {}
    init = raw.get("init_args", raw) if isinstance(raw, dict) else {}
    return {k: float(v) for k, v in init.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def variant_param(args: Sequence[str], name: str) -> float | None:
    """The value of method argument ``name`` in a variant's fit arguments: from the method YAML of
    the last ``--model.method``, then any later ``--model.method.init_args.<name>``; None when no
    config sets it or the YAML does not exist."""
    value = None
    for flag, arg in itertools.pairwise(args):
        if flag == "--model.method":
            value = method_params(arg).get(name) if Path(arg).is_file() else None
        elif flag == f"--model.method.init_args.{name}":
            value = float(arg)
    return value
