"""Saved runs as pandas tables, for notebooks: ``cl_attractors.load_runs(path)``.

A run is a directory holding ``metrics.json`` (written by every ``fit``, ``experiment`` run and
``tune`` trial), usually with the ``config.yaml`` LightningCLI saved beside it. Reading runs needs
neither Lightning nor torch. The columns are documented in docs/api.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cl_attractors.errors import ConfigError
from cl_attractors.io import safe_yaml

TASK_CURVES = ("avg_acc_seen", "avg_acc_previous", "current_acc")  # index j: after training task j
GRID_FILE = "grid.json"  # written by `experiment` into each run it starts: grid, variant, code version


def _hashable(value: Any) -> Any:
    """Lists as tuples (at any depth), so that config columns can be grouped on."""
    return tuple(map(_hashable, value)) if isinstance(value, list) else value


def _short(class_path: str | None) -> str | None:
    return None if class_path is None else class_path.rsplit(".", 1)[-1]


def config_columns(config: dict[str, Any]) -> dict[str, Any]:
    """The flat columns of a saved ``config.yaml``: method, its arguments, lr, seed, data settings."""
    model = config.get("model") or {}
    method = model.get("method") or {}
    optimizer = model.get("optimizer") or {}
    out: dict[str, Any] = {
        "method": _short(method.get("class_path")) or "Vanilla",
        **{f"method.{k}": _hashable(v) for k, v in (method.get("init_args") or {}).items()},
        "optimizer": _short(optimizer.get("class_path")),
        "lr": (optimizer.get("init_args") or {}).get("lr"),
        "seed": config.get("seed", config.get("seed_everything")),
    }
    net: dict[str, Any] = model["net"] if isinstance(model.get("net"), dict) else {}
    out["model.net"] = _short(net.get("class_path")) or ("MLP" if "hidden_sizes" in model else None)
    # a run saved before model.net (hidden_sizes on the model) or after (on the net's arguments)
    out["model.hidden_sizes"] = _hashable(
        (net.get("init_args") or {}).get("hidden_sizes", model.get("hidden_sizes"))
    )
    data = dict(config.get("data") or {})
    family = data.pop("family", None)
    if isinstance(family, dict):  # the family's arguments read like data settings (data.shared_fraction)
        out["data.family"] = _short(family.get("class_path"))
        data.update(family.get("init_args") or {})
    out.update({f"data.{k}": _hashable(v) for k, v in data.items()})
    return out


def metric_columns(metrics: dict[str, Any]) -> dict[str, Any]:
    """The columns of a ``metrics.json``: its values, and the final point of each task curve."""
    out = dict(metrics)
    for curve, final in zip(TASK_CURVES, ("final_avg_acc", "final_prev_acc", "final_current_acc")):
        out.setdefault(final, (metrics.get(curve) or [None])[-1])
    return out


def _read(path: Path, parse: Any) -> Any:
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"run file {path} cannot be read ({' '.join(str(err).split())})") from None


def grid_columns(run_dir: Path) -> dict[str, Any]:
    """``grid``, ``variant`` and ``commit`` of a run a grid made (``grid.json``; a run made before
    grids recorded them gets its variant from its place, ``<out_dir>/<variant>/seed_<s>``), and
    ``wall_time_s``, its training time over every process that worked on it (``timing.json``)."""
    path, timing = run_dir / GRID_FILE, run_dir / "timing.json"
    wall = _read(timing, json.loads).get("wall_time_s") if timing.is_file() else None
    if path.is_file():
        made = _read(path, json.loads)
        return {
            "grid": made.get("grid"),
            "variant": made.get("variant"),
            "commit": made.get("code"),
            "wall_time_s": wall,
        }
    placed = run_dir.name.startswith("seed_") and run_dir.name[5:].isdigit()
    return {
        "grid": None,
        "variant": run_dir.parent.name if placed else None,
        "commit": None,
        "wall_time_s": wall,
    }


def read_run(run_dir: Path, root: Path) -> dict[str, Any]:
    """One row: where the run is, its grid and variant, its config columns, its metrics and its
    accuracy matrix."""
    row: dict[str, Any] = {"run": run_dir.relative_to(root).as_posix(), "run_dir": str(run_dir)}
    row.update(grid_columns(run_dir))
    if (run_dir / "config.yaml").is_file():
        config = _read(run_dir / "config.yaml", lambda text: safe_yaml(text, f"{run_dir}/config.yaml"))
        row.update(config_columns(config or {}))
    row.update(metric_columns(_read(run_dir / "metrics.json", json.loads)))
    matrix = run_dir / "accuracy_matrix.csv"
    row["accuracy_matrix"] = (
        pd.read_csv(matrix, index_col=0).to_numpy().tolist() if matrix.is_file() else None
    )
    return row


def load_runs(path: str | Path) -> pd.DataFrame:
    """Every run under ``path`` (each directory holding a ``metrics.json``, at any depth; ``path``
    itself may be one run), one row each, sorted by ``run``.

    Columns: ``run`` (the directory relative to ``path``), ``run_dir``; ``grid``, ``variant`` and
    ``commit`` (the code version a grid ran it with; None outside a grid), ``wall_time_s``; from
    ``config.yaml``:
    ``method`` (class name), ``method.<arg>``, ``optimizer``, ``lr``, ``seed``,
    ``model.hidden_sizes``, ``data.<arg>``; from ``metrics.json``: ``complete``, ``tasks_done``,
    ``final_avg_acc``, ``final_prev_acc``, ``final_current_acc``, ``bwt``, ``forgetting``, ``fwt``,
    ``eq2``, ... and the per-task lists ``avg_acc_seen``, ``avg_acc_previous``, ``current_acc``,
    ``initial_acc``; ``accuracy_matrix`` (rows: evaluated task, columns: after training task j).
    """
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"load_runs: path {root} is not a directory")
    rows = [read_run(p.parent, root) for p in sorted(root.rglob("metrics.json"))]
    return pd.DataFrame(rows, columns=None if rows else ["run", "run_dir"])


def task_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """The per-task curves of ``runs`` (a :func:`load_runs` table) in long format: one row per run
    and trained task ``task`` (0-based, as the matrix columns), with ``avg_acc_seen``,
    ``avg_acc_previous``, ``current_acc`` and every scalar column of the run (method, lr, seed...)."""
    records = [
        {"run": row["run"], "task": j, **{c: row[c][j] for c in TASK_CURVES}}
        for _, row in runs.iterrows()
        if isinstance(row.get("avg_acc_seen"), list)
        for j in range(len(row["avg_acc_seen"]))
    ]
    long = pd.DataFrame(records, columns=["run", "task", *TASK_CURVES])
    lists = [c for c in runs if runs[c].map(lambda v: isinstance(v, list)).any()]
    return long.merge(runs.drop(columns=lists), on="run", how="left")
