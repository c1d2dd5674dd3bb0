"""Meta-learning φ with Optuna TPE (paper Sec. 2.1, Eq. 2, App. 6.2).

    python cli.py tune --config configs/search/sticky_paper.yaml [--n_trials 12] [--replicas R]
        [fit overrides]

Each trial is one full task sequence (one ``trainer.fit``) built from the search config's ``fit``
arguments plus the trial's φ; its value is Eq. 2 of the final accuracy matrix on the split the
``fit`` arguments name (``val`` for tuning). The partial Eq. 2 after every task feeds the pruner.
The study lives in an Optuna storage (SQLite in ``out_dir`` by default; PostgreSQL or a journal file
for several machines): re-running the same command continues it up to ``n_trials`` COMPLETE + PRUNED
trials; several processes may share one URL.
"""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import optuna
from optuna.trial import TrialState

from callbacks.terminal import banners_off
from cl_attractors.errors import ConfigError, one_line
from cl_attractors.io import read_yaml_mapping
from cl_attractors.paths import resolve_args
from cl_attractors.tune.export import publish, write_plots, write_tables
from cl_attractors.tune.objective import Objective, probe_method
from cl_attractors.tune.replicas import run_in_groups
from cl_attractors.tune.space import Fixed, check_space_values, fit_overrides, parse_space
from cl_attractors.tune.storage import open_storage, shown
from cl_attractors.tune.workers import Workers, counted

BOOL_KEYS = ("multivariate", "constant_liar", "group")
SAMPLER_KEYS = {"seed", "n_startup_trials", "n_ei_candidates", *BOOL_KEYS}
PRUNERS = {"median": optuna.pruners.MedianPruner, "none": optuna.pruners.NopPruner}
METRIC = "Eq. 2"
MAX_POLL_S = 10
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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise ConfigError(f"tune: {message}")


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Known ``tune`` options, and the rest (``fit`` overrides applied after the YAML's)."""
    p = _Parser(prog="cli.py tune", allow_abbrev=False, description=__doc__)
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
    p.add_argument("--results_dir", help="copy the outputs there once the study has finished")
    p.add_argument("--sampler_seed", type=int, help="override sampler.seed (give workers distinct seeds)")
    p.add_argument(
        "--replicas",
        help="ask TPE for R trials at once (constant liar) and train them as one replica group",
    )
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
    search = Search(
        fit_args=resolve_args(fit, path) + extra,  # paths in the YAML: relative to it
        space=raw.get("space"),
        out_dir=out_dir,
        study_name=str(args.study_name or raw.get("study_name") or path.stem),
        storage=args.storage or raw.get("storage") or f"sqlite:///{(out_dir / 'study.db').resolve()}",
        n_trials=args.n_trials if args.n_trials is not None else raw.get("n_trials", 30),
        n_jobs=args.n_jobs,
        replicas=_replicas(args.replicas),
        sampler=dict(raw.get("sampler") or {}),
        pruner=dict(raw.get("pruner") or {"type": "median"}),
        heartbeat=dict(raw.get("heartbeat") or {}),
        results_dir=_optional_path(args.results_dir or raw.get("results_dir"), "results_dir"),
    )
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


def make_sampler(opts: dict[str, Any], offset: int) -> optuna.samplers.TPESampler:
    """Seeded TPE. A new study (``offset`` 0: no trial yet) uses the seed as it is; a process
    joining or resuming a study with ``offset`` trials mixes the two (numpy's ``SeedSequence``),
    so it does not replay the first process's samples, and two workers whose seed + offset
    coincide (seeds 1 and 2 joining at 1 and 0 trials) do not sample the same φ."""
    if opts.keys() - SAMPLER_KEYS:
        raise ConfigError(
            f"search.sampler has unknown keys {sorted(opts.keys() - SAMPLER_KEYS)}; "
            f"allowed: {sorted(SAMPLER_KEYS)}"
        )
    for key, value in opts.items():
        if not _sampler_value_ok(key, value):
            allowed = f"an integer in [0, {2**32 - 1}]" if key == "seed" else "an integer >= 0"
            raise ConfigError(
                f"search.sampler.{key}={value!r} is not allowed; use "
                f"{'true or false' if key in BOOL_KEYS else allowed}"
            )
    opts = dict(opts)
    if opts.get("seed") is not None and offset:
        opts["seed"] = int(np.random.SeedSequence([opts["seed"], offset]).generate_state(1)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(**opts)


def _sampler_value_ok(key: str, value: Any) -> bool:
    if key in BOOL_KEYS:
        return isinstance(value, bool)
    if key == "seed" and value is None:
        return True
    top = 2**32 - 1 if key == "seed" else math.inf
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= top


def make_pruner(opts: dict[str, Any]) -> optuna.pruners.BasePruner:
    """``median`` (MedianPruner with the remaining options) or ``none``."""
    opts = dict(opts)
    kind = opts.pop("type", "median")
    if kind not in PRUNERS:
        raise ConfigError(f"search.pruner.type={kind!r} is not allowed; use one of {sorted(PRUNERS)}")
    try:
        return PRUNERS[kind](**opts)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"search.pruner={opts!r} is not allowed for {kind}: {err}") from err


def open_study(search: Search, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create or load the named study (maximising its one objective, named "Eq. 2")."""
    study = optuna.create_study(
        study_name=search.study_name,
        storage=storage,
        direction="maximize",
        pruner=make_pruner(search.pruner),
        load_if_exists=True,
    )
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ConfigError(
            f"study {search.study_name!r} in {shown(search.storage)} does not maximise; "
            "use another study_name"
        )
    if study.metric_names != [METRIC]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([METRIC])
    study.sampler = make_sampler(search.sampler, len(study.get_trials(deepcopy=False)))
    return study


def run_study(
    search: Search, study: optuna.Study, storage: optuna.storages.BaseStorage, objective: Objective
) -> None:
    """Run trials until the study holds ``n_trials`` COMPLETE + PRUNED ones (this process runs at
    most as many as were missing when it started; see :class:`Workers`)."""
    budget = search.n_trials - counted(study)
    if budget <= 0:
        print(
            f"study {search.study_name!r} already holds {counted(study)} counted trials "
            f"(n_trials={search.n_trials}); refreshing its outputs only"
        )
        return
    if search.n_jobs > 1:
        import torch

        torch.set_num_threads(1)  # threads of one process must not fight over cores
    poll_s = min(search.heartbeat.get("interval", 60), MAX_POLL_S)

    def refresh(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        write_tables(study, search.out_dir, objective.method)

    if search.replicas > 1:
        run_in_groups(objective, study, search.n_trials, search.replicas, storage)
        return
    Workers(study, storage, search.n_trials, poll_s).run(objective, budget, search.n_jobs, refresh)


def main(argv: Sequence[str]) -> None:
    """``cli.py tune``: check the input, run or continue the study, export its results."""
    search = load_search(argv)
    with banners_off():  # per-trial banners would drown the study's log
        _run(search)


def _run(search: Search) -> None:
    """Check the space and fixed values, run or continue the study, export (and publish) it."""
    method = probe_method(search.fit_args)
    space = parse_space(search.space, method.cls)
    check_space_values(space, method.cls, method.init_args)
    fixed = {name: p.value for name, p in space.items() if isinstance(p, Fixed)}
    if fixed:  # the fixed values through the fit's own route (types, finite numbers)
        try:
            probe_method([*search.fit_args, *fit_overrides(fixed)])
        except ConfigError as err:
            raise ConfigError(f"{one_line(err)} (a fixed value of search.space)") from None
    make_pruner(search.pruner)  # both checked before the storage is touched
    make_sampler(search.sampler, 0)
    search.out_dir.mkdir(parents=True, exist_ok=True)
    storage = open_storage(search.storage, search.heartbeat)
    study = open_study(search, storage)
    run_study(search, study, storage, Objective(search.fit_args, space, search.out_dir, method))
    write_tables(study, search.out_dir, method)
    notes = write_plots(study, search.out_dir)
    _print_outcome(study, search, notes)
    if search.results_dir is not None:
        _publish(study, search, search.results_dir)


def _publish(study: optuna.Study, search: Search, results_dir: Path) -> None:
    """Copy the outputs to ``results_dir`` only when the study has finished (its budget counted and
    no trial running), so a grid never reads the best φ of a partial search."""
    running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    if counted(study) < search.n_trials or running:
        print(
            f"not copied to {results_dir}: the study holds {counted(study)} of {search.n_trials} "
            f"counted trials, {running} running; re-run this command to finish it"
        )
        return
    copied = publish(search.out_dir, results_dir)
    print(f"finished study copied to {results_dir}: {', '.join(copied)}")


def _print_outcome(study: optuna.Study, search: Search, notes: list[str]) -> None:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    print(
        f"study {search.study_name!r}: {states.count(TrialState.COMPLETE)} complete, "
        f"{states.count(TrialState.PRUNED)} pruned, {states.count(TrialState.FAIL)} failed "
        f"(storage {shown(search.storage)})"
    )
    for note in notes:
        print(f"note: {note}")
    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]
    if complete:
        best = study.best_trial
        print(f"best: trial {best.number}, Eq. 2 {best.value:.5f}, phi {best.user_attrs.get('phi')}")
        print(
            f"ready method config: {search.out_dir / 'best_method.yaml'}  "
            f"(fit ... --model.method {search.out_dir / 'best_method.yaml'})"
        )
    print(
        f"tables and plots: {search.out_dir}   TensorBoard: tensorboard --logdir {search.out_dir / 'trials'}"
    )
