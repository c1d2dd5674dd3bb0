"""``tune --replicas R``: R trials at once, trained as one replica group.

Optuna's TPE is asked for R trials before any of them is told (``constant_liar``: the running ones
count as bad guesses, so the R φ spread instead of piling up on one point); their runs (one φ each,
the search's ``fit`` arguments otherwise) train as one group
(:mod:`cl_attractors.replicas.group`). After every task each trial's Eq. 2 so far goes to its
pruner; a pruned trial's replica is dropped from the group (its loss leaves the sum). Then each
trial is told its final Eq. 2, or its fate, with the same user attributes as a trial run alone.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import lightning.pytorch as pl
import optuna
from optuna.storages._heartbeat import BaseHeartbeat  # not exported; as tune/storage.py
from optuna.trial import TrialState

from callbacks.task_sequence import TaskSequence
from cl_attractors import metrics
from cl_attractors.replicas.group import fit, prepare
from cl_attractors.replicas.module import ReplicaModule
from cl_attractors.replicas.sequence import ReplicaSequence
from cl_attractors.tune.objective import Objective, describe, worker_name
from cl_attractors.tune.space import fit_overrides, suggest
from cl_attractors.tune.workers import counted


class GroupPruning(pl.Callback):
    """After each task (once the sequence has filled the column): each live trial's Eq. 2 so far
    to its pruner; a trial to prune is dropped from the group."""

    def __init__(self, trials: Sequence[optuna.Trial], sequence: ReplicaSequence) -> None:
        self.trials, self.sequence = list(trials), sequence
        self.pruned: dict[int, str] = {}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert isinstance(pl_module, ReplicaModule)
        if not trainer.datamodule.schedule.position(trainer.current_epoch).last:
            return
        task = self.sequence.task
        for r, trial in enumerate(self.trials):
            if not bool(pl_module.active[r]):
                continue
            trial.report(metrics.eq2_so_far(self.sequence.runs[r].matrix), task)
            if trial.should_prune():
                self.pruned[r] = f"Trial was pruned at epoch {task}."
                pl_module.drop(r)


@contextlib.contextmanager
def heartbeats(storage: optuna.storages.BaseStorage, trials: Sequence[optuna.Trial]) -> Iterator[None]:
    """Every trial of the group beats while it trains, as ``study.optimize`` makes its one trial
    beat: otherwise another worker sharing the study would fail them as stale."""
    interval = storage.get_heartbeat_interval() if isinstance(storage, BaseHeartbeat) else None
    if not isinstance(storage, BaseHeartbeat) or not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            for trial in trials:
                storage.record_heartbeat(trial._trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_group_trials(
    objective: Objective, study: optuna.Study, n: int, storage: optuna.storages.BaseStorage | None = None
) -> None:
    """Ask ``n`` trials, train them as one group (their heartbeats kept in ``storage``), tell
    each its outcome."""
    with warnings.catch_warnings():  # Optuna warns that heartbeats are study.optimize's: ours beat
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        trials = [study.ask() for _ in range(n)]
    args, kept = [], []
    for trial in trials:
        phi = suggest(trial, objective.space)
        run_dir = objective.out_dir / "trials" / f"trial_{trial.number:04d}"
        trial.set_user_attr("phi", phi)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker", worker_name())
        args.append(["--trainer.enable_progress_bar", "false", *objective.fit_args, *fit_overrides(phi)])
        args[-1] += ["--run_dir", str(run_dir)]
        kept.append(trial)
    try:
        group = prepare(args, checkpoints=False)
    except Exception as err:
        for trial in kept:
            trial.set_user_attr("fail_reason", describe(err))
            study.tell(trial, state=TrialState.FAIL)
        raise
    pruning = GroupPruning(kept, group.sequence)
    with heartbeats(storage, kept) if storage is not None else contextlib.nullcontext():
        failures = fit(group, [pruning])
    for r, trial in enumerate(kept):
        tell(study, trial, group.sequence.runs[r], failures[r], pruning.pruned.get(r))


def tell(
    study: optuna.Study, trial: optuna.Trial, run: TaskSequence, failure: str | None, pruned: str | None
) -> None:
    """Record a trial's matrix and numbers as a trial run alone records them, and tell its fate."""
    reason: dict[str, Any] = {}
    if pruned is not None:
        reason["prune_reason"] = pruned
    elif failure is not None:
        reason["fail_reason"] = failure
    summary = Objective.record(trial, run, **reason)
    value = summary.get("eq2")
    if pruned is not None:
        study.tell(trial, state=TrialState.PRUNED)
    elif failure is not None or not summary["complete"] or value is None:
        if failure is None:
            trial.set_user_attr(
                "fail_reason", f"no finite Eq. 2 after {summary['tasks_done']} tasks (eq2={value})"
            )
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, value)


def run_in_groups(
    objective: Objective,
    study: optuna.Study,
    n_trials: int,
    replicas: int,
    storage: optuna.storages.BaseStorage | None = None,
) -> None:
    """Groups of up to ``replicas`` trials, as many trials as the study missed of ``n_trials``
    (COMPLETE + PRUNED) when this started (a failing trial is not retried for ever)."""
    budget = n_trials - counted(study)
    while budget > 0:
        n = min(replicas, budget)
        run_group_trials(objective, study, n, storage)
        budget -= n
