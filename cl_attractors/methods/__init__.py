"""Continual-learning methods: small :class:`~cl_attractors.methods.base.CLMethod` classes that
edit gradients in place. Their paper values live in ``configs/method/*.yaml``: build one from
such a file with :func:`load_method`."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from cl_attractors.errors import ConfigError
from cl_attractors.io import read_yaml


def load_method(path: str | Path, **overrides: Any) -> Any:
    """The method a ``configs/method/*.yaml`` file describes (``class_path`` + ``init_args``),
    with ``overrides`` replacing some of its arguments (for notebooks, tests and benchmarks)."""
    raw = read_yaml(Path(path), "method file")
    if not isinstance(raw, dict) or not isinstance(raw.get("class_path"), str):
        raise ConfigError(f"method file {path} needs class_path and init_args")
    module, _, name = raw["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return cls(**{**(raw.get("init_args") or {}), **overrides})
