"""A search YAML with the command line applied: :class:`Search`, the settings of one study.

``cli.py tune --help`` lists the options; arguments it does not know are fit overrides. An
invocation that changes the YAML's protocol (fit overrides, another ``n_trials``) leaves its
outputs in its out_dir: they are copied to the YAML's ``results_dir`` only with ``--publish``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from cl_attractors.errors import ConfigError
from cl_attractors.io import read_yaml_mapping
from cl_attractors.paths import resolve_args

DESCRIPTION = "Meta-learn a method's hyperparameters with Optuna TPE on Eq. 2 (one study)."
MAX_JOBS = 1024  # threads of one process: more is a typo (each holds a fit in memory)
TOP_KEYS = {
    "fit",
    "space",
    "sampler",
    "pruner",
    "heartbeat",
    "n_trials",
    "study_name",
    "storage",
    "out_dir",
    "results_dir",
}


@dataclass
class Search:
    """A study's settings: the search YAML with the command line applied on top."""

    fit_args: list[str]
    space: Any  # the YAML's space: mapping, checked by parse_space
    out_dir: Path
    study_name: str
    storage: str
    n_trials: int = 30
    n_jobs: int = 1
    replicas: int = 1  # trials trained at once as one replica group (1: one trial at a time)
    sampler: dict[str, Any] = field(default_factory=dict)
    pruner: dict[str, Any] = field(default_factory=lambda: {"type": "median"})
    heartbeat: dict[str, int] = field(default_factory=dict)
    results_dir: Path | None = None  # where a finished study's outputs are copied
    changes: list[str] = field(default_factory=list)  # how the command line changes the protocol


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise ConfigError(f"tune: {message}")


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Known ``tune`` options, and the rest (``fit`` overrides applied after the YAML's)."""
    p = _Parser(prog="cli.py tune", allow_abbrev=False, description=DESCRIPTION)
    p.add_argument("--config", required=True, help="search YAML (e.g. configs/search/sticky_paper.yaml)")
    p.add_argument("--n_trials", type=int, help="COMPLETE + PRUNED trials the study should hold in total")
    p.add_argument("--n_jobs", type=int, default=1, help="trials in parallel threads of this process")
    p.add_argument("--study_name", help="study name in the storage")
    p.add_argument(
        "--storage",
        help="Optuna RDB URL (postgresql+psycopg2://USER@HOST:PORT/DB) or journal:///PATH/study.log "
        "(default sqlite:///<out_dir>/study.db)",
    )
    p.add_argument("--out_dir", help="trial runs, study.db, tables, plots and best_method.yaml")
    p.add_argument(
        "--results_dir",
        help="copy the outputs there once the study has finished (default: the YAML's, only when "
        "the command line keeps the YAML's protocol: no fit overrides, the YAML's n_trials)",
    )
    p.add_argument(
        "--publish",
        action="store_true",
        help="copy to the YAML's results_dir even though the command line changes the protocol",
    )
    p.add_argument(
        "--replicas",
        help="ask TPE for R trials at once (constant liar) and train them as one replica group",
    )
    p.add_argument("--sampler_seed", type=int, help="override sampler.seed (give workers distinct seeds)")
    return p.parse_known_args(list(argv))


def load_search(argv: Sequence[str]) -> Search:
    """Read the search YAML, apply the command line, and check every scalar setting."""
    args, extra = parse_args(argv)
    path = Path(args.config)
    raw = read_yaml_mapping(path, "--config")
    if raw.keys() - TOP_KEYS:
        raise ConfigError(
            f"search config {path} has unknown keys {sorted(raw.keys() - TOP_KEYS)}; "
            f"allowed: {sorted(TOP_KEYS)}"
        )
    fit = raw.get("fit") or []
    if not isinstance(fit, list) or not all(isinstance(a, str | int | float) for a in fit):
        raise ConfigError(f"search.fit={fit!r} is not allowed; use a list of fit arguments")
    for key in ("sampler", "pruner", "heartbeat"):
        if not isinstance(raw.get(key) or {}, dict):
            raise ConfigError(f"search.{key}={raw[key]!r} is not allowed; use a mapping")
    out_dir = Path(args.out_dir or raw.get("out_dir") or f"runs/tune/{path.stem}")
    changes = [f"fit overrides {' '.join(extra)}"] if extra else []
    if args.n_trials is not None and args.n_trials != raw.get("n_trials", 30):
        changes.append(f"--n_trials {args.n_trials}")
    results_dir = args.results_dir or (None if changes and not args.publish else raw.get("results_dir"))
    search = Search(
        fit_args=resolve_args(fit, path) + extra,  # paths in the YAML: relative to it
        space=raw.get("space"),
        out_dir=out_dir,
        study_name=str(args.study_name or raw.get("study_name") or path.stem),
        storage=args.storage or raw.get("storage") or f"sqlite:///{(out_dir / 'study.db').resolve()}",
        n_trials=args.n_trials if args.n_trials is not None else raw.get("n_trials", 30),
        n_jobs=args.n_jobs,
        sampler=dict(raw.get("sampler") or {}),
        pruner=dict(raw.get("pruner") or {"type": "median"}),
        heartbeat=dict(raw.get("heartbeat") or {}),
        replicas=_replicas(args.replicas),
        results_dir=_optional_path(results_dir, "results_dir"),
        changes=changes,
    )
    _optional_path(raw.get("results_dir"), "results_dir")
    if args.sampler_seed is not None:
        search.sampler["seed"] = args.sampler_seed
    _check_int("n_trials", search.n_trials)
    _check_int("n_jobs", search.n_jobs)
    if search.n_jobs > MAX_JOBS:
        raise ConfigError(f"search.n_jobs={search.n_jobs} is not allowed; use an integer in [1, {MAX_JOBS}]")
    if search.replicas > 1:
        if search.n_jobs > 1:
            raise ConfigError("--n_jobs with --replicas is not allowed; use one of them")
        search.sampler["constant_liar"] = True  # R trials asked before any is told
    return search


def _replicas(value: str | None) -> int:
    """``--replicas``: a positive integer (1 when not given)."""
    if value is None:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"--replicas {value} is not allowed; use a positive integer")
    return int(value)


def _optional_path(value: Any, name: str) -> Path | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"search.{name}={value!r} is not allowed; use a folder path or null")
    return None if value is None else Path(value)


def _check_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"search.{name}={value!r} is not allowed; use an integer >= {minimum}")
