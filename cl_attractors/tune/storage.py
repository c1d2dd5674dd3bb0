"""The storage of a search: an Optuna RDB URL (SQLite, PostgreSQL, MySQL) or a journal file, with
heartbeats and stale-trial clean-up on both, and one-line errors for URLs that cannot work.

* ``sqlite:///FILE``, ``postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB``, ``mysql+pymysql://...``:
  :class:`optuna.storages.RDBStorage` (SQLAlchemy URLs).
* ``journal://PATH`` (``journal:///abs/study.log``, ``journal://runs/study.log``): Optuna's
  ``JournalStorage(JournalFileBackend(PATH))``, one append-only file on a file system every worker
  shares, for clusters without a database server.
"""

from __future__ import annotations

import contextlib
import datetime
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat  # not exported; RDBStorage implements it too
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from cl_attractors.errors import USERINFO, ConfigError, mask_secrets, register_secret, require
from cl_attractors.tune.journal import repair_journal

SCHEMA_RACE_RETRIES = 5
HEARTBEAT_KEYS = ("interval", "grace_period", "max_retry")
JOURNAL = "journal://"
FORMS = (
    "sqlite:///FILE.db, postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB, "
    "mysql+pymysql://USER:PASSWORD@HOST:PORT/DB or journal:///PATH/study.log"
)
PIP_NAMES = {
    "psycopg2": "psycopg2-binary",
    "psycopg": "psycopg[binary]",
    "MySQLdb": "mysqlclient",
    "pymysql": "PyMySQL",
}
CONNECT_TIMEOUT_S = 10
HEARTBEAT_ATTR = "heartbeat"
StaleCallback = Callable[[optuna.Study, FrozenTrial], None]


def open_storage(url: str, heartbeat: dict[str, int]) -> optuna.storages.BaseStorage:
    """The study's storage with heartbeats: a killed worker's RUNNING trial turns FAIL after
    ``grace_period`` seconds without a heartbeat and is re-queued (``max_retry`` times). Any URL
    that cannot work (unknown scheme, missing driver, unreachable server, missing folder) is a
    one-line ConfigError saying how to fix it, before any trial."""
    url = _with_password_encoded(url)
    _check_heartbeat(heartbeat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=heartbeat.get("max_retry", 1))
        interval, grace = heartbeat.get("interval", 60), heartbeat.get("grace_period", 180)
        if url.startswith("journal:"):
            return _journal(url, interval, grace, retry)
        return _rdb(url, interval, grace, retry)


def _check_heartbeat(heartbeat: dict[str, int]) -> None:
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


def shown(url: str) -> str:
    """``url`` as it may be printed: every password masked (:func:`cl_attractors.errors.mask_secrets`,
    which every error line goes through too)."""
    return mask_secrets(url)


def _with_password_encoded(url: str) -> str:
    """``url`` with its password masked from every later message, and percent-encoded when it
    holds '@' (SQLAlchemy would cut it at the first '@' and take the rest for the host)."""
    match = USERINFO.match(url)
    if match is None:
        return url
    register_secret(match["pw"])
    if "@" not in match["pw"]:
        return url
    encoded = quote(unquote(match["pw"]), safe="")
    register_secret(encoded)
    return f"{match['scheme']}{match['user']}:{encoded}@{url[match.end() :]}"


def _rdb(url: str, interval: int, grace: int, retry: StaleCallback) -> RDBStorage:
    _check_driver(url)
    attempt = 0
    while True:
        try:
            return RDBStorage(
                url,
                engine_kwargs=_engine_kwargs(url),
                heartbeat_interval=interval,
                grace_period=grace,
                heartbeat_stale_trial_callback=retry,
            )
        except Exception as err:
            # workers started together on a new database race to create its schema: the
            # loser's insert fails once the winner's is in, and a retry finds the schema made
            if _lost_schema_race(err) and attempt < SCHEMA_RACE_RETRIES:
                attempt += 1
                time.sleep(0.5 * attempt)
                continue
            raise ConfigError(f"search.storage={shown(url)!r} cannot be opened: {_why(err)}") from err


def _check_driver(url: str) -> None:
    """A URL SQLAlchemy can parse, with a known scheme whose Python driver is installed."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise ConfigError(f"search.storage={shown(url)!r} is not a storage URL; use {FORMS}") from None
    if parsed.drivername.startswith("sqlite") and parsed.database in (None, "", ":memory:"):
        raise ConfigError(
            f"search.storage={shown(url)!r} keeps the study in memory and loses it at exit; "
            "use sqlite:///FILE.db (a file)"
        )
    try:
        dialect = parsed.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError as err:
        raise ConfigError(
            f"search.storage={shown(url)!r} has the unknown scheme {parsed.drivername!r}; use {FORMS}"
        ) from err
    try:
        dialect.import_dbapi()
    except ImportError as err:
        module = (err.name or str(err)).split(".")[0]
        raise ConfigError(
            f"search.storage={shown(url)!r} needs the Python driver {module!r}, which is not installed; "
            f"use `pip install {PIP_NAMES.get(module, module)}` or a scheme naming an installed "
            "driver (postgresql+psycopg2://)"
        ) from err


def _why(err: Exception) -> str:
    """The driver's first line and what to do about it."""
    text = str(getattr(err, "orig", None) or err).strip()
    first = text.splitlines()[0].strip() if text else type(err).__name__
    low = text.lower()
    if "does not exist" in low or "unknown database" in low:
        hint = "create the database first (e.g. `createdb NAME` on the database host)"
    elif "authentication" in low or "access denied" in low or "password" in low:
        hint = "fix the user name or password in the URL"
    elif "unable to open database file" in low:
        hint = "create the folder of the SQLite file first, or fix the path"
    elif any(s in low for s in ("refused", "timeout", "timed out", "translate host", "unreachable")):
        hint = "start the database server, or fix the host and port in the URL"
    else:
        hint = f"check the URL ({FORMS})"
    return f"{type(err).__name__}: {first}; {hint}"


def _lost_schema_race(err: Exception) -> bool:
    """The winner inserted the schema's rows (IntegrityError) or created a table first."""
    return isinstance(err, sqlalchemy.exc.IntegrityError) or (
        isinstance(err, sqlalchemy.exc.OperationalError) and "already exists" in str(err)
    )


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):  # wait for other writers (threads or processes), not fail at once
        return {"connect_args": {"timeout": 60}}
    if url.startswith("postgresql"):  # an unreachable host fails in seconds, not minutes
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    return {}


def _journal(url: str, interval: int, grace: int, retry: StaleCallback) -> HeartbeatJournalStorage:
    path = Path(url.removeprefix(JOURNAL)) if url.startswith(JOURNAL) else None
    if path is None or not path.name or path.is_dir():
        raise ConfigError(
            f"search.storage={shown(url)!r} is not allowed; use journal:///PATH/study.log (a file)"
        )
    if not path.parent.is_dir():
        raise ConfigError(
            f"search.storage={shown(url)!r}: the folder {path.parent} does not exist; create it on the file "
            "system every worker shares"
        )
    try:
        repair_journal(path)
        backend = JournalFileBackend(str(path))
    except OSError as err:
        raise ConfigError(f"search.storage={shown(url)!r} cannot be opened: {err}; fix the path") from None
    return HeartbeatJournalStorage(backend, interval, grace, retry)


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's ``JournalStorage`` with the heartbeats Optuna gives only its ``RDBStorage``.

    The worker running a trial writes the time to the trial's system attribute ``heartbeat``
    every ``interval`` seconds (one journal line each); a RUNNING trial whose last sign of life
    (heartbeat or start, whichever is later) is older than ``grace_period`` is stale. As a
    ``BaseHeartbeat`` it gets Optuna's own machinery: ``study.optimize`` runs the heartbeat
    thread and fails stale trials (then calls ``stale_callback``: re-queue) before each trial.
    Times are the workers' clocks (as in the journal's own start times): keep them in sync (NTP).
    """

    def __init__(
        self, backend: JournalFileBackend, interval: int, grace_period: int, stale_callback: StaleCallback
    ) -> None:
        super().__init__(backend)
        self.heartbeat_interval = interval
        self.grace_period = grace_period
        self.stale_callback = stale_callback

    def record_heartbeat(self, trial_id: int) -> None:
        # a trial another worker already failed as stale takes no more heartbeats
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        cutoff = time.time() - self.grace_period
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return [t._trial_id for t in running if _last_sign_of_life(t) < cutoff]

    def get_heartbeat_interval(self) -> int:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> StaleCallback:
        return self.stale_callback


def _last_sign_of_life(trial: FrozenTrial) -> float:
    # a re-queued trial inherits its failed original's system attributes, heartbeat included:
    # a heartbeat older than the trial's start is from that earlier life
    start = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
    return max(trial.system_attrs.get(HEARTBEAT_ATTR, 0.0), start)


def fail_stale_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> None:
    """Fail (and re-queue, through the storage's stale-trial callback) every RUNNING trial whose
    worker died: its last heartbeat is older than the grace period, or it never sent one and
    started longer ago than that. On an RDB storage Optuna's own clean-up skips the second kind:
    a worker killed between creating a trial and starting its heartbeat thread (while TPE
    samples) would leave a RUNNING trial forever."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
        if not isinstance(storage, RDBStorage):
            return
        callback = storage.get_heartbeat_stale_trial_callback()
        for trial in _never_beaten(study, storage):
            try:
                failed = storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:  # another worker failed it first
                continue
            if failed and callback:
                callback(study, storage.get_trial(trial._trial_id))


def _never_beaten(study: optuna.Study, storage: RDBStorage) -> list[FrozenTrial]:
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
