"""`tune` under faults and bad input (the system tier): a resumed study adds trials without
repeating any, a diverging trial fails alone, a killed worker's trial is failed and re-queued with
its phi (SQLite and journal storages), two threads share one study, and bad search settings are one
line before any trial. The tiny studies that check what a search computes stay in
tests/contracts/test_tune.py."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

import cli
from cl_attractors.tune import storage as tune_storage
from cl_attractors.tune import study as tune
from tests.helpers import write_search


def load(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}")


def test_resuming_adds_trials_without_repeating_completed_ones(tmp_path: Path) -> None:
    path = write_search(tmp_path, n_trials=1)
    tune.main(["--config", str(path)])
    (first,) = load(tmp_path).get_trials()
    tune.main(["--config", str(path), "--n_trials", "2"])
    tune.main(["--config", str(path), "--n_trials", "2"])  # already full: runs nothing
    trials = load(tmp_path).get_trials()
    assert [t.number for t in trials] == [0, 1]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert (trials[0].params, trials[0].value) == (first.params, first.value)
    assert trials[1].params != first.params  # the resumed sampler does not replay trial 0


def test_diverging_trial_is_recorded_as_fail_and_the_study_goes_on(tmp_path: Path) -> None:
    tune.main(["--config", str(write_search(tmp_path)), "--model.optimizer.init_args.lr", "1e20"])
    trials = load(tmp_path).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL] * 2  # the first failure did not stop it
    assert all("training diverged: loss is nan" in t.user_attrs["fail_reason"] for t in trials)
    assert "FAIL" in (tmp_path / "study" / "trials.csv").read_text()
    assert not (tmp_path / "study" / "best_method.yaml").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"space": {"a1": {"low": 0.1, "high": 1.0}, "alpha": {"low": 1, "high": 2}}},
            "unknown parameter(s) ['alpha']",
        ),
        ({"space": {"a1": {"low": 5.0, "high": 1.0}}}, "search.space.a1.low=5.0 >= high=1.0 is not allowed"),
        (
            {"space": {"zeta": {"low": 0.0, "high": 1.0e-3}}},
            "search.space.zeta.low=0.0 <= 0 with log: true is not allowed",
        ),
        ({"n_trials": 0}, "search.n_trials=0 is not allowed"),
        (
            {"storage": "nosuchdb://x/y"},
            "search.storage='nosuchdb://x/y' has the unknown scheme 'nosuchdb'; use",
        ),
        ({"storage": "runs/study.db"}, "search.storage='runs/study.db' is not a storage URL; use sqlite:///"),
        (
            {"storage": "mysql://u@127.0.0.1/db"},
            "needs the Python driver 'MySQLdb', which is not installed; use",
        ),
        (
            {"storage": "sqlite:////nonexistent/dir/study.db"},
            "cannot be opened: OperationalError: unable to open database file; create the folder",
        ),
        (
            {"storage": "postgresql+psycopg2://u:secret@127.0.0.1:9/db"},
            "search.storage='postgresql+psycopg2://u:***@127.0.0.1:9/db' cannot be opened: OperationalError: "
            'connection to server at "127.0.0.1", port 9 failed: Connection refused; '
            "start the database server",
        ),
        (
            {"storage": "journal:///nonexistent/dir/s.log"},
            "the folder /nonexistent/dir does not exist; create",
        ),
        ({"storage": "journal:s.log"}, "search.storage='journal:s.log' is not allowed; use journal:///PATH"),
        ({"pruner": {"type": "hyperband"}}, "search.pruner.type='hyperband' is not allowed"),
        ({"sampler": {"multivariate": "yes"}}, "search.sampler.multivariate='yes' is not allowed"),
        ({"heartbeat": {"interval": 0}}, "search.heartbeat.interval=0 is not allowed"),
        ({"results_dir": 5}, "search.results_dir=5 is not allowed; use a folder path or null"),
    ],
)
def test_bad_input_is_one_line_before_any_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture, change: dict, message: str
) -> None:
    assert cli.main(["tune", "--config", str(write_search(tmp_path, **change))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "study" / "trials").exists()


def test_a_killed_workers_running_trial_is_failed_and_requeued_with_its_phi(tmp_path: Path) -> None:
    path = write_search(tmp_path, n_trials=1, heartbeat={"interval": 1, "grace_period": 1})
    (tmp_path / "study").mkdir()
    storage = tune_storage.open_storage(f"sqlite:///{tmp_path / 'study' / 'study.db'}", {"interval": 1})
    study = optuna.create_study(study_name="search", storage=storage, direction="maximize")
    killed = study.ask(
        {
            "a1": optuna.distributions.FloatDistribution(0.01, 10.0, log=True),
            "lam": optuna.distributions.FloatDistribution(4.0, 10.0, log=True),
        }
    )
    storage.record_heartbeat(killed._trial_id)  # then the worker dies: no more heartbeats
    time.sleep(2)
    tune.main(["--config", str(path)])
    trials = load(tmp_path).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].params == killed.params and trials[1].system_attrs["failed_trial"] == 0


@pytest.mark.parametrize("kind", ["sqlite:///{}/study.db", "journal://{}/study.log"])
def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_too(
    tmp_path: Path, kind: str
) -> None:
    storage = tune_storage.open_storage(kind.format(tmp_path), {"interval": 1, "grace_period": 1})
    study = optuna.create_study(study_name="search", storage=storage, direction="maximize")
    study.ask()  # killed while TPE sampled: no heartbeat was ever recorded
    fresh = study.ask()  # another worker's trial, started within the grace period: left alone
    time.sleep(1.5)
    storage.record_heartbeat(fresh._trial_id)
    tune_storage.fail_stale_trials(study, storage)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert study.get_trials()[2].system_attrs["failed_trial"] == 0


def test_a_journal_trial_goes_stale_after_its_last_heartbeat_not_an_inherited_one(tmp_path: Path) -> None:
    storage = tune_storage.open_storage(f"journal://{tmp_path}/study.log", {"interval": 1, "grace_period": 1})
    study = optuna.create_study(study_name="search", storage=storage, direction="maximize")
    dead = study.ask()
    storage.record_heartbeat(dead._trial_id)  # then its worker dies
    time.sleep(1.5)
    tune_storage.fail_stale_trials(study, storage)  # FAIL, re-queued with its system attrs
    retry = study.ask()  # pops the re-queued copy, which inherited the old heartbeat
    assert retry.number == 1 and "heartbeat" in study.get_trials()[1].system_attrs
    tune_storage.fail_stale_trials(study, storage)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.RUNNING]
    time.sleep(1.5)  # no heartbeat of its own either: now it is stale
    tune_storage.fail_stale_trials(study, storage)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.FAIL]


def test_two_threads_share_one_study(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    try:
        tune.main(["--config", str(write_search(tmp_path)), "--n_jobs", "2"])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    trials = load(tmp_path).get_trials()
    assert sorted(t.number for t in trials) == [0, 1]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["run_dir"] for t in trials}) == 2
