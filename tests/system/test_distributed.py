"""The Dask backend for real: `dask scheduler` and `dask worker` processes on 127.0.0.1 (one
thread each), the grid through the CLI, a worker killed mid-run, Ctrl-C, and bad input."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import cli
from cl_attractors.commands import experiment
from cl_attractors.grid import cluster as dask_backend
from cl_attractors.grid import runner
from tests.helpers import ROOT, free_port, metrics_json, start, stderr_of, wait_for, write_spec

DASK = Path(sys.executable).parent / "dask"
SLOW_FIT = {  # ~10-30 s per run here: long enough to kill one mid-run
    "--data.source": "synthetic",
    "--data.synthetic_size": "4096",
    "--data.num_tasks": "3",
    "--data.batch_size": "16",
    "--model.net.hidden_sizes": "[256]",
    "--model.optimizer.init_args.fused": "false",
    "--trainer.accelerator": "cpu",
}
SLOW = [arg for pair in SLOW_FIT.items() for arg in pair]


class Cluster:
    """A scheduler and workers started by this test (and only those are ever killed)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        self.address = ""

    def start_scheduler(self, project: bool) -> None:
        args = ("--host", "127.0.0.1", "--port", "0", "--no-dashboard")
        scheduler = self._start("scheduler", *args, env=_env(project))
        self.address = self._wait_log(scheduler, r"Scheduler at:\s+(tcp://\S+)")

    def _start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = self.tmp / f"{name}-{len(self.procs)}.log"
        with open(log, "w", encoding="utf-8") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                [str(DASK), name, *args], stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp, env=env
            )
        proc.log = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def _wait_log(self, proc: subprocess.Popen, pattern: str, timeout: float = 120) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = re.search(pattern, proc.log.read_text())  # type: ignore[attr-defined]
            if found:
                return found.group(found.lastindex or 0)
            assert proc.poll() is None, proc.log.read_text()[-2000:]  # type: ignore[attr-defined]
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {pattern!r} in {proc.log}")  # type: ignore[attr-defined]

    def add_worker(self, project: bool = True) -> subprocess.Popen:
        """One worker process (no nanny: the process started here is the one running the fits)."""
        worker = self._start(
            "worker",
            self.address,
            *("--nthreads", "1", "--nworkers", "1", "--no-nanny", "--no-dashboard"),
            env=_env(project),
        )
        self._wait_log(worker, r"Registered to")
        self.workers.append(worker)
        return worker

    def fits(self) -> dict[int, psutil.Process]:
        """The fit processes running under each live worker, by worker pid (a process whose
        command line does not name its run yet, e.g. one still starting, is left out)."""
        out = {}
        for worker in self.workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in psutil.Process(worker.pid).children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        args = child.cmdline()
                        if "fit" in args and "--run_dir" in args:
                            out.setdefault(worker.pid, child)  # the outermost one
        return out

    def close(self) -> None:
        """SIGKILL every process started here, their fits first."""
        children = [c for p in self.procs if p.poll() is None for c in _children(p.pid)]
        for proc in [*children, *reversed(self.procs)]:
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                proc.kill()
        for proc in self.procs:
            proc.wait(timeout=30)


def _env(project: bool) -> dict[str, str]:
    """One thread; the project importable (PYTHONPATH) or not (the processes run in a temporary dir)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    if project:
        env["PYTHONPATH"] = str(ROOT)
    return env


def _children(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess):
        return psutil.Process(pid).children(recursive=True)
    return []


@contextlib.contextmanager
def dask_cluster(workers: int = 2, project: bool = True, scheduler_project: bool = True) -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory() as tmp:
        started = Cluster(Path(tmp))
        try:
            started.start_scheduler(scheduler_project)
            for _ in range(workers):
                started.add_worker(project)
            yield started
        finally:
            started.close()


@pytest.fixture(scope="module")
def shared() -> Iterator[Cluster]:
    with dask_cluster() as c:
        yield c


def exit_code(proc: subprocess.Popen, timeout: float) -> int:
    """``proc``'s exit status; past ``timeout``, fail with its threads' stacks (faulthandler)."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        proc.wait(timeout=30)
        pytest.fail(f"the experiment hung: {stderr_of(proc)[-6000:]}")


def complete(runs: Path) -> list[Path]:
    return [p.parent for p in runs.glob("*/seed_*/metrics.json") if json.loads(p.read_text())["complete"]]


# ---- a worker killed mid-run -------------------------------------------------------------------


def test_worker_killed_mid_run_every_run_completes_once_as_locally(tmp_path: Path) -> None:
    (tmp_path / "local").mkdir()
    experiment.main(["--config", str(write_spec(tmp_path / "local", overrides=SLOW)), "--workers", "2"])
    (tmp_path / "dask").mkdir()
    spec = write_spec(tmp_path / "dask", overrides=SLOW)
    runs = tmp_path / "dask" / "runs"
    with dask_cluster() as c:
        proc = start("experiment", "--config", str(spec), "--scheduler", c.address, env=_env(True))
        wait_for(lambda: mid_run(c, runs), proc, timeout=300)
        worker_pid, fit, killed = mid_run(c, runs)[0]
        os.kill(worker_pid, signal.SIGKILL)
        with contextlib.suppress(psutil.TimeoutExpired):
            fit.wait(timeout=5)
        died_with_worker = not fit.is_running()
        with contextlib.suppress(psutil.NoSuchProcess):
            fit.kill()
        assert exit_code(proc, 600) == 0, stderr_of(proc)[-3000:]
    assert died_with_worker, "the fit outlived its worker"
    assert "--ckpt_path last" in (killed / "run.log").read_text().splitlines()[0]  # resumed
    assert sorted(complete(runs)) == sorted(runs.glob("*/seed_*")) and len(complete(runs)) == 4
    for run_dir in runs.glob("*/seed_*"):
        starts = 2 if run_dir == killed else 1  # one TensorBoard event file per fit start: run once
        assert len(list(run_dir.glob("events.*"))) == starts, run_dir
        rel = run_dir.relative_to(runs) / "accuracy_matrix.csv"
        assert (runs / rel).read_bytes() == (tmp_path / "local" / "runs" / rel).read_bytes(), rel
    assert "FAILED" not in stderr_of(proc)


def mid_run(c: Cluster, runs: Path) -> list[tuple[int, psutil.Process, Path]]:
    """(worker pid, fit, run dir) of each fit past its first checkpoint and not finished."""
    found = []
    for worker_pid, fit in c.fits().items():
        with contextlib.suppress(psutil.NoSuchProcess):
            args = fit.cmdline()
            run_dir = runs / Path(args[args.index("--run_dir") + 1]).relative_to(runs)
            if (run_dir / "checkpoints" / "last.ckpt").exists() and run_dir not in complete(runs):
                found.append((worker_pid, fit, run_dir))
    return found


# ---- the shared cluster: failures, locks, Ctrl-C -------------------------------------------------


def test_failed_run_is_reported_with_its_log_tail_and_the_others_finish(
    shared: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    spec = write_spec(
        tmp_path, seeds=[0], variants={"broken": ["--model.net.hidden_sizes", "[0]"], "fast": []}
    )
    with pytest.raises(SystemExit) as exit_info:
        experiment.main(["--config", str(spec), "--scheduler", shared.address])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "hidden_sizes[0]=0 is not allowed" in err and "1 failed" in err
    assert complete(tmp_path / "runs") == [tmp_path / "runs" / "fast" / "seed_0"]


def test_a_run_held_by_another_client_is_not_started(
    shared: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    spec = write_spec(tmp_path, seeds=[0], variants={"fast": []})
    run_dir = tmp_path / "runs" / "fast" / "seed_0"
    run_dir.mkdir(parents=True)
    with open(run_dir / ".lock", "w", encoding="utf-8") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SystemExit):
            experiment.main(["--config", str(spec), "--scheduler", shared.address])
    assert runner.HELD in capsys.readouterr().err
    assert not (run_dir / "run.log").exists()


def test_ctrl_c_cancels_the_tasks_and_ends_their_fits(shared: Cluster, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, overrides=SLOW)
    proc = start("experiment", "--config", str(spec), "--scheduler", shared.address, env=_env(True))
    wait_for(lambda: len(shared.fits()) == 2, proc, timeout=300)
    proc.send_signal(signal.SIGINT)
    assert exit_code(proc, 60) == 130, stderr_of(proc)[-2000:]
    assert "interrupted" in stderr_of(proc)
    assert f"resume with: python cli.py experiment --config {spec} --scheduler" in stderr_of(proc)
    deadline = time.time() + 30
    while shared.fits() and time.time() < deadline:
        time.sleep(0.2)
    assert shared.fits() == {} and all(w.poll() is None for w in shared.workers)
    assert complete(tmp_path / "runs") == []


# ---- bad input: one line, exit 2, before any run, nothing finished lost ---------------------------


def _grid_with_a_finished_run(tmp_path: Path) -> tuple[Path, dict[Path, int]]:
    spec = write_spec(tmp_path)
    done = tmp_path / "runs" / "fast" / "seed_0"
    done.mkdir(parents=True)
    (done / "metrics.json").write_text(json.dumps(metrics_json([0.9], [None], [0.9], 0.0)))
    return spec, {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*")}


def _fails_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], *messages: str
) -> None:
    spec, before = _grid_with_a_finished_run(tmp_path)
    assert cli.main(["experiment", "--config", str(spec), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and all(m in err for m in messages), err
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*")} == before


@pytest.mark.parametrize(
    ("scheduler", "message"),
    [
        ("http://127.0.0.1:8786", "scheme 'http' is not allowed; use a Dask scheduler's address"),
        ("tcp://127.0.0.1", "has no port; use tcp://HOST:PORT"),
    ],
)
def test_a_wrong_address(tmp_path: Path, capsys: pytest.CaptureFixture, scheduler: str, message: str) -> None:
    _fails_before_any_run(tmp_path, capsys, ["--scheduler", scheduler], message)


def test_an_unreachable_scheduler(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dask_backend, "CONNECT_TIMEOUT_S", 1.0)
    nobody = f"tcp://127.0.0.1:{free_port()}"  # a port nobody listens on
    _fails_before_any_run(tmp_path, capsys, ["--scheduler", nobody], "no Dask scheduler answers")


def test_workers_flags_with_a_scheduler(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _fails_before_any_run(
        tmp_path, capsys, ["--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"], "with --scheduler"
    )


@pytest.mark.parametrize(("scheduler_project", "who"), [(False, "the scheduler at"), (True, "worker tcp://")])
def test_a_cluster_without_the_project(
    tmp_path: Path, capsys: pytest.CaptureFixture, scheduler_project: bool, who: str
) -> None:
    with dask_cluster(workers=1, project=False, scheduler_project=scheduler_project) as c:
        argv = ["--scheduler", c.address]
        _fails_before_any_run(
            tmp_path, capsys, argv, who, "cannot import cl_attractors", f"PYTHONPATH={ROOT}"
        )
