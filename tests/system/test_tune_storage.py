"""`tune` across machines for real: two worker processes of the CLI on one study in a PostgreSQL
server (started here from Debian's packages) or in a journal file, one SIGKILLed mid-trial and
started again; bad database URLs against the real server; optuna-dashboard serving a study."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

import cli
from cl_attractors.tune import study as tune
from tests.helpers import finish, fit_args, free_port, start, wait_for, write_search

N_TRIALS = 4
WORKER_TIMEOUT_S = 420  # a stale trial never failed would make the workers wait forever
# about 3 s a trial on a quiet core: long enough to be killed between its first and last task
MEDIUM = fit_args("--data.synthetic_size", "1024", "--model.net.hidden_sizes", "[64]", num_tasks=3)
MISSING = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH; "
    ".ci/run installs them (apt-get install postgresql): run it, or install that package"
)


def pg_bin() -> Path:
    """The newest PostgreSQL server's bin folder (Debian's layout first, then PATH)."""
    found = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").is_file()]
    if found:
        return max(found, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).resolve().parent
    pytest.fail(MISSING)


def run(*cmd: object) -> None:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {done.returncode}: {done.stderr[-2000:]}")


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 in a temporary folder, stopped at the end: its URL
    without a database name. initdb refuses root: as root, the server runs as ``postgres``."""
    bindir = pg_bin()
    root = Path(tempfile.mkdtemp(prefix="cl-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail(f"no system user postgres to run the server as; {MISSING}")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    try:
        run(*as_user, bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        server = f"-k {root} -p {port} -h 127.0.0.1"
        run(*as_user, bindir / "pg_ctl", "-D", data, "-l", root / "server.log", "-w", "-o", server, "start")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def create_database(server: str, name: str) -> str:
    engine = sqlalchemy.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as con:
        con.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return f"{server}/{name}"


def rdb_reader(url: str) -> Callable[[], optuna.Study | None]:
    """The study once a worker created it. Opening an RDBStorage writes to the schema, so the
    reader opens it only once the study's row exists: no race with the workers creating it."""
    engine, opened = sqlalchemy.create_engine(url), []

    def read() -> optuna.Study | None:
        if not opened:
            try:
                with engine.connect() as con:
                    query = sqlalchemy.text("SELECT 1 FROM studies WHERE study_name = 'search'")
                    if con.execute(query).first() is None:
                        return None
            except sqlalchemy.exc.SQLAlchemyError:  # no schema yet
                return None
            opened.append(optuna.load_study(study_name="search", storage=url))
        return opened[0]

    return read


def journal_reader(path: Path) -> Callable[[], optuna.Study | None]:
    storage = JournalStorage(JournalFileBackend(str(path)))

    def read() -> optuna.Study | None:
        try:
            return optuna.load_study(study_name="search", storage=storage)
        except KeyError:  # no worker created the study yet
            return None

    return read


def kill_one_worker_mid_trial(tmp_path: Path, url: str, reader: Callable[[], optuna.Study | None]) -> None:
    """Two workers on ``url``; SIGKILL one between the first and the last task of one of its
    trials, start it again, let all finish, and check the study."""
    path = write_search(
        tmp_path,
        n_trials=N_TRIALS,
        fit=MEDIUM,
        heartbeat={"interval": 1, "grace_period": 3},
        sampler={"seed": 3, "n_startup_trials": 1, "constant_liar": True},
    )
    args = ("tune", "--config", str(path), "--storage", url)
    victim, other = (start(*args, "--sampler_seed", str(seed)) for seed in (1, 2))
    killed: list[FrozenTrial] = []

    def victim_mid_trial() -> bool:
        study = reader()
        running = study.get_trials(states=(TrialState.RUNNING,)) if study else []
        killed[:] = [
            t
            for t in running
            if t.user_attrs.get("worker", "").endswith(f":{victim.pid}") and t.intermediate_values
        ]
        return bool(killed)

    procs = [victim, other]
    try:
        wait_for(victim_mid_trial, victim)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        procs.append(start(*args, "--sampler_seed", "3"))  # the killed worker, started again
        for proc in procs[1:]:
            finish(proc, timeout=WORKER_TIMEOUT_S)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    check_study(reader(), killed[0])


def check_study(study: optuna.Study | None, killed: FrozenTrial) -> None:
    """n_trials COMPLETE + PRUNED, none RUNNING or WAITING, no φ counted twice, and the killed
    trial (and only it) FAIL, retried once with its φ."""
    assert study is not None
    trials = study.get_trials()
    table = "\n".join(
        f"{t.number} {t.state.name} {t.params} {t.user_attrs.get('worker')} "
        f"retry of {t.system_attrs.get('failed_trial')} {t.datetime_start} {t.datetime_complete}"
        for t in trials
    )
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(counted) == N_TRIALS, table
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)], table
    assert [t.number for t in trials if t.state == TrialState.FAIL] == [killed.number], table
    assert len({tuple(sorted(t.params.items())) for t in counted}) == N_TRIALS, table
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0] in counted and retries[0].params == killed.params, table
    assert len({t.user_attrs["run_dir"] for t in trials}) == len(trials), table
    assert study.metric_names == ["Eq. 2"]


def test_two_workers_on_postgresql_one_killed_mid_trial(tmp_path: Path, postgres: str) -> None:
    url = create_database(postgres, "tune_kill")
    kill_one_worker_mid_trial(tmp_path, url, rdb_reader(url))


def test_two_workers_on_a_journal_file_one_killed_mid_trial(tmp_path: Path) -> None:
    path = tmp_path / "study.log"
    kill_one_worker_mid_trial(tmp_path, f"journal://{path}", journal_reader(path))


def test_a_database_the_server_lacks_is_one_line_before_any_trial(
    tmp_path: Path, postgres: str, capsys: pytest.CaptureFixture
) -> None:
    path = write_search(tmp_path)
    assert cli.main(["tune", "--config", str(path), "--storage", f"{postgres}/no_such_db"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: search.storage=") and "\n" not in err
    assert 'database "no_such_db" does not exist; create the database first' in err
    assert not (tmp_path / "study" / "trials").exists()


def test_optuna_dashboard_serves_a_tune_study(tmp_path: Path) -> None:
    tune.main(["--config", str(write_search(tmp_path, n_trials=1))])
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    assert dashboard.is_file(), f"{dashboard} missing: install requirements.txt (optuna-dashboard)"
    port = free_port()
    url = f"sqlite:///{tmp_path / 'study' / 'study.db'}"
    proc = subprocess.Popen(
        [str(dashboard), url, "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/api/studies"
    answers: list[dict] = []

    def serves() -> bool:
        try:
            with urllib.request.urlopen(base, timeout=5) as page:
                answers.append(json.load(page))
        except OSError:
            return False
        return True

    try:
        wait_for(serves, proc, timeout=120)
        (summary,) = answers[0]["study_summaries"]
        assert summary["study_name"] == "search"
        with urllib.request.urlopen(f"{base}/{summary['study_id']}?after=0", timeout=30) as page:
            detail = json.load(page)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert detail["objective_names"] == ["Eq. 2"]
    (trial,) = detail["trials"]
    attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
    assert [k for k in attrs if k.startswith("A_row_")] == ["A_row_00", "A_row_01"]
    assert len(json.loads(attrs["A_row_00"])) == 2
