"""Real SIGKILLs of `tune` and `experiment` processes (and their workers), then a re-run."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import psutil
import pytest
from optuna.trial import TrialState

from cl_attractors.commands import experiment
from cl_attractors.io import read_matrix_csv
from cl_attractors.tune import study as tune
from tests.helpers import finish, fit_args, start, wait_for, write_search, write_spec


def kill_with_descendants(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` (started by this test) and every process it started, children first
    collected, so that none is reparented away before it is found."""
    parent = psutil.Process(proc.pid)
    family = [*parent.children(recursive=True), parent]
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()


def trial_states(db: Path) -> list[str]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        try:
            return [row[0] for row in con.execute("SELECT state FROM trials ORDER BY number")]
        except sqlite3.OperationalError:
            return []


def test_tune_killed_mid_trial_resumes_to_the_requested_count(tmp_path: Path) -> None:
    slow = fit_args("--data.synthetic_size", "2048", "--model.net.hidden_sizes", "[256]", num_tasks=3)
    path = write_search(tmp_path, n_trials=3, fit=slow, heartbeat={"interval": 1, "grace_period": 2})
    db = tmp_path / "study" / "study.db"
    proc = start("tune", "--config", str(path))
    wait_for(lambda: trial_states(db).count("COMPLETE") >= 1 and trial_states(db)[-1] == "RUNNING", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    storage = f"sqlite:///{db}"
    before = {
        t.number: t.params
        for t in optuna.load_study(study_name="search", storage=storage).trials
        if t.state == TrialState.COMPLETE
    }
    time.sleep(3)  # past the heartbeat grace period: the RUNNING trial is stale
    tune.main(["--config", str(path)])
    trials = optuna.load_study(study_name="search", storage=storage).trials
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 3
    assert TrialState.FAIL in states and TrialState.RUNNING not in states
    assert {t.number: t.params for t in trials if t.number in before} == before  # nothing re-run


def test_two_tune_processes_on_one_storage_share_the_trials(tmp_path: Path) -> None:
    path = write_search(
        tmp_path, n_trials=4, sampler={"seed": 3, "n_startup_trials": 1, "constant_liar": True}
    )
    (tmp_path / "study").mkdir()
    procs = [start("tune", "--config", str(path), "--sampler_seed", str(s)) for s in (1, 2)]
    for p in procs:
        finish(p)
    trials = optuna.load_study(
        study_name="search", storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}"
    ).trials
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == 4 and len({t.number for t in trials}) == len(trials)  # exactly n_trials
    assert len({t.user_attrs["run_dir"] for t in trials}) == len(trials)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.FAIL)]


def test_experiment_killed_with_its_workers_resumes_and_matches_a_clean_grid(tmp_path: Path) -> None:
    slow = [
        "--data.source",
        "synthetic",
        "--data.synthetic_size",
        "4096",
        "--data.num_tasks",
        "3",
        "--data.batch_size",
        "16",
        "--model.net.hidden_sizes",
        "[256]",
        "--model.optimizer.init_args.fused",
        "false",
        "--trainer.accelerator",
        "cpu",
    ]
    (tmp_path / "c").mkdir()
    clean = write_spec(tmp_path / "c", overrides=slow)
    experiment.main(["--config", str(clean), "--workers", "2"])
    killed_root = tmp_path / "k"
    killed_root.mkdir()
    spec = write_spec(killed_root, overrides=slow)
    runs = killed_root / "runs"
    proc = start("experiment", "--config", str(spec), "--workers", "2")

    def done():
        return [p for p in runs.glob("*/seed_*/metrics.json") if json.loads(p.read_text())["complete"]]

    wait_for(lambda: len(done()) >= 1 and len(list(runs.glob("*/seed_*/checkpoints/last.ckpt"))) >= 2, proc)
    kill_with_descendants(proc)
    proc.wait(timeout=30)
    finished = {p: p.stat().st_mtime_ns for p in done()}
    assert 1 <= len(finished) < 4
    experiment.main(["--config", str(spec), "--workers", "2"])  # raises SystemExit if a run fails
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())  # kept, not re-run
    for variant in ("fast", "slow"):
        for seed in (0, 1):
            rel = Path(variant) / f"seed_{seed}" / "accuracy_matrix.csv"
            assert read_matrix_csv(runs / rel).equal(read_matrix_csv(tmp_path / "c" / "runs" / rel)), rel


def test_two_experiments_on_one_out_dir_share_the_runs_and_neither_reports_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    spec = write_spec(tmp_path)  # 2 variants x 2 seeds
    runs = tmp_path / "runs"
    proc = start("experiment", "--config", str(spec), "--workers", "1")
    wait_for(lambda: any(runs.glob("*/seed_*/run.log")), proc)
    experiment.main(["--config", str(spec), "--workers", "1"])  # SystemExit(1) if it saw a failure
    finish(proc)
    assert "0 failed" in capsys.readouterr().err
    logs = list(runs.glob("*/seed_*/run.log"))
    assert len(logs) == 4
    assert all(json.loads((p.parent / "metrics.json").read_text())["complete"] for p in logs)
    assert not [p for p in logs if "--ckpt_path" in p.read_text().splitlines()[0]]  # none run twice
