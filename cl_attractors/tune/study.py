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

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from callbacks.terminal import banners_off
from cl_attractors.errors import ConfigError, one_line
from cl_attractors.tune.export import publish, write_plots, write_tables
from cl_attractors.tune.objective import Objective, probe_method
from cl_attractors.tune.protocol import check_protocol, protocol
from cl_attractors.tune.replicas import run_in_groups
from cl_attractors.tune.search import Search, load_search
from cl_attractors.tune.space import Fixed, check_space_values, fit_overrides, parse_space
from cl_attractors.tune.storage import open_storage, shown
from cl_attractors.tune.workers import Workers, counted

BOOL_KEYS = ("multivariate", "constant_liar", "group")
SAMPLER_KEYS = {"seed", "n_startup_trials", "n_ei_candidates", *BOOL_KEYS}
PRUNERS = {"median": optuna.pruners.MedianPruner, "none": optuna.pruners.NopPruner}
METRIC = "Eq. 2"
MAX_POLL_S = 10


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
    """Create or load the named study (maximising its one objective, named "Eq. 2"); one made
    with other fit arguments or another space is refused (:mod:`cl_attractors.tune.protocol`)."""
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
    for note in check_protocol(study, protocol(search.fit_args, search.space), shown(search.storage)):
        print(f"note: {note}")
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
        objective.fresh_compile = False  # one dynamo cache shared by the threads (objective.py)
        import torch

        torch.set_num_threads(1)  # threads of one process must not fight over cores
    poll_s = min(search.heartbeat.get("interval", 60), MAX_POLL_S)

    def refresh(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        value = "" if trial.value is None else f", Eq. 2 {trial.value:.5f}"
        print(f"trial {trial.number} {trial.state.name.lower()}{value}: phi {phi_text(trial.params)}")
        write_tables(study, search.out_dir, objective.method)

    if search.replicas > 1:
        run_in_groups(objective, study, search.n_trials, search.replicas, storage)
        return
    if search.replicas > 1:
        run_in_groups(objective, study, search.n_trials, search.replicas, storage)
        return
    Workers(study, storage, search.n_trials, poll_s).run(objective, budget, search.n_jobs, refresh)


def main(argv: Sequence[str]) -> None:
    """``cli.py tune``: check the input, run or continue the study, export its results."""
    search = load_search(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours (φ to 4 digits)
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
    elif search.changes:
        print(
            f"not copied to a results folder: this command changes the config's protocol "
            f"({'; '.join(search.changes)}); its outputs stay in {search.out_dir} (--publish copies them)"
        )


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


def phi_text(phi: Any) -> str:
    """φ to 4 significant digits: ``a1=0.2791, lam=7.351, ...``."""
    if not isinstance(phi, dict):
        return str(phi)
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in phi.items())


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
        print(
            f"best: trial {best.number}, Eq. 2 {best.value:.5f}, phi {phi_text(best.user_attrs.get('phi'))}"
        )
        print(
            f"ready method config: {search.out_dir / 'best_method.yaml'}  "
            f"(fit ... --model.method {search.out_dir / 'best_method.yaml'})"
        )
    print(
        f"tables and plots: {search.out_dir}   TensorBoard: tensorboard --logdir {search.out_dir / 'trials'}"
    )
