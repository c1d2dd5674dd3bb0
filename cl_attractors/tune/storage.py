"""The Optuna RDB storage of a search: heartbeats, stale-trial clean-up, schema-creation races."""

from __future__ import annotations

import datetime
import time
import warnings
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.trial import TrialState

from cl_attractors.errors import ConfigError, require

SCHEMA_RACE_RETRIES = 5
HEARTBEAT_KEYS = ("interval", "grace_period", "max_retry")


def open_storage(url: str, heartbeat: dict[str, int]) -> optuna.storages.RDBStorage:
    """The RDB storage with heartbeats: a killed worker's RUNNING trial turns FAIL after
    ``grace_period`` seconds without a heartbeat and is re-queued (``max_retry`` times)."""
    unknown = heartbeat.keys() - set(HEARTBEAT_KEYS)
    if unknown:
        raise ConfigError(
            f"search.heartbeat has unknown keys {sorted(unknown)}; allowed: {', '.join(HEARTBEAT_KEYS)}"
        )
    for key, value in heartbeat.items():
        minimum = 0 if key == "max_retry" else 1
        require(
            isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
            f"search.heartbeat.{key}",
            value,
            f"an integer >= {minimum}",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=heartbeat.get("max_retry", 1))
        attempt = 0
        while True:
            try:
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=_engine_kwargs(url),
                    heartbeat_interval=heartbeat.get("interval", 60),
                    grace_period=heartbeat.get("grace_period", 180),
                    heartbeat_stale_trial_callback=retry,
                )
            except Exception as err:
                # workers started together on a new database race to create its schema: the
                # loser's insert fails once the winner's is in, and a retry finds the schema made
                if _lost_schema_race(err) and attempt < SCHEMA_RACE_RETRIES:
                    attempt += 1
                    time.sleep(0.5 * attempt)
                    continue
                msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
                raise ConfigError(
                    f"search.storage={url!r} cannot be opened: {type(err).__name__}: {msg}"
                ) from err


def _lost_schema_race(err: Exception) -> bool:
    """The winner inserted the schema's rows (IntegrityError) or created a table first."""
    return isinstance(err, sqlalchemy.exc.IntegrityError) or (
        isinstance(err, sqlalchemy.exc.OperationalError) and "already exists" in str(err)
    )


def _engine_kwargs(url: str) -> dict[str, Any]:
    # SQLite: wait for other writers (threads or processes) instead of failing at once
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}


def fail_stale_trials(study: optuna.Study, storage: optuna.storages.RDBStorage) -> None:
    """Fail (and re-queue, through the storage's stale-trial callback) every RUNNING trial whose
    worker died: its last heartbeat is older than the grace period, or it never sent one and
    started longer ago than that. Optuna's own clean-up skips the second kind: a worker killed
    between creating a trial and starting its heartbeat thread (while TPE samples) would leave a
    RUNNING trial forever."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
        callback = storage.get_heartbeat_stale_trial_callback()
        for trial in _never_beaten(study, storage):
            if storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL) and callback:
                callback(study, storage.get_trial(trial._trial_id))


def _never_beaten(study: optuna.Study, storage: optuna.storages.RDBStorage) -> list[optuna.trial.FrozenTrial]:
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    with storage.engine.connect() as con:
        beaten = {row[0] for row in con.execute(sqlalchemy.text("SELECT trial_id FROM trial_heartbeats"))}
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=storage.grace_period or 0)
    return [
        t
        for t in running
        if t._trial_id not in beaten and t.datetime_start is not None and t.datetime_start < cutoff
    ]
