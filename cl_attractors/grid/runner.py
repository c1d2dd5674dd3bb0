"""Run a grid's fit runs: :func:`execute` runs one, :class:`GridRunner` is the local pool.

Each run is ``python cli.py fit ...`` in its own process and session, with its output in
``<run_dir>/run.log``, under the run's lock (``<run_dir>/.lock``, an fcntl lock the fit inherits:
two experiment processes, or two Dask clients, never run the same run). A failed run is reported
with its log tail and the others go on; Ctrl-C kills the running fits and keeps every finished run
(their task-boundary checkpoints make them resumable). The Dask backend (``grid/cluster.py``) runs
the same :func:`execute` on its workers.
"""

from __future__ import annotations

import ctypes
import fcntl
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import IO

from cl_attractors.grid.progress import Outcome, track
from cl_attractors.grid.spec import Run, held
from cl_attractors.paths import prune_task_checkpoints
from cl_attractors.repair import repair_outputs

CLI = Path(__file__).resolve().parents[2] / "cli.py"
LOG_TAIL_LINES = 5
HELD = "another experiment process is running this run"
PR_SET_PDEATHSIG = 1


def worker_env(gpu: int | None) -> dict[str, str]:
    """Environment of a worker: one intra-op thread; on GPU machines, only its own device."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return env


def gpu_slots(gpus: list[int] | None, workers: int, per_gpu: int = 1) -> list[int | None]:
    """The device of each worker slot: ``workers`` slots (0 = ``per_gpu`` per GPU) dealt to the GPUs
    in turn, so the first runs spread over all devices; without GPUs, CPU slots (None)."""
    if not gpus:
        return [None] * workers
    return [gpus[i % len(gpus)] for i in range(workers or len(gpus) * per_gpu)]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


class Processes:
    """The fit processes one runner started (thread-safe), to stop them all on Ctrl-C."""

    def __init__(self) -> None:
        self.procs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.stopped = False

    def add(self, proc: subprocess.Popen) -> None:
        """Track ``proc``; once :meth:`stop` has run, end it at once (it started too late)."""
        with self.lock:
            if not self.stopped:
                self.procs.add(proc)
                return
        proc.kill()

    def discard(self, proc: subprocess.Popen) -> None:
        with self.lock:
            self.procs.discard(proc)

    def stop(self, grace_s: float = 10.0) -> int:
        """Terminate every running fit, kill those still alive after ``grace_s``, end any fit
        started later; how many were running."""
        with self.lock:
            self.stopped = True
            procs = list(self.procs)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return len(procs)


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn`` making the fit die with the process that started it (Linux): a Dask
    worker that dies takes its fit along, which frees the run's lock for the retried task."""
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def take_lock(fh: IO[str], wait_s: float, stop: threading.Event | None) -> bool:
    """Take the run's lock, retrying for ``wait_s`` seconds (or until ``stop`` is set); whether
    it was taken."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline or (stop is not None and stop.wait(0.2)):
                return False
            if stop is None:
                time.sleep(0.2)


def execute(
    run: Run,
    env: dict[str, str],
    procs: Processes,
    cwd: Path,
    lock_wait_s: float = 0.0,
    die_with_parent: bool = False,
    stop: threading.Event | None = None,
) -> Outcome:
    """Run one fit under the run's lock, in ``cwd`` (relative paths of the spec resolve there);
    the lock is waited for ``lock_wait_s`` seconds (until ``stop``); a run found complete once
    locked (another process ran it meanwhile) is not run again. A finished run keeps only its
    final checkpoint unless the run says ``keep_task_checkpoints``."""
    local = replace(run, run_dir=Path(cwd) / run.run_dir)
    local.run_dir.mkdir(parents=True, exist_ok=True)
    with open(local.run_dir / ".lock", "w", encoding="utf-8") as lock:
        if not take_lock(lock, lock_wait_s, stop):
            return (
                Outcome(run, -1, "not started (interrupted)")
                if stop and stop.is_set()
                else Outcome(run, 1, HELD)
            )
        repair_outputs(local.run_dir)  # a finished run whose metrics.json was torn or lags
        if local.complete:
            return Outcome(run, 0)
        code = _spawn(local, env, procs, cwd, lock.fileno(), die_with_parent)
        if code == 0:
            repair_outputs(local.run_dir)  # resumed from its final checkpoint: nothing was rewritten
    ok = code == 0 and local.complete
    if ok and not run.keep_task_checkpoints:
        prune_task_checkpoints(local.run_dir)
    return Outcome(run, 0 if ok else (code or 1), "" if ok else log_tail(local.run_dir / "run.log"))


def _spawn(run: Run, env: dict[str, str], procs: Processes, cwd: Path, lock_fd: int, die: bool) -> int:
    """Run the fit in a child that inherits the run's lock: should the runner be killed, the
    orphaned child (unless ``die``) keeps the run locked until it ends, so no second fit starts."""
    command = run.command()
    with open(run.run_dir / "run.log", "w", encoding="utf-8") as fh:
        fh.write(" ".join(["python", "cli.py", *command]) + "\n")
        fh.flush()
        proc = subprocess.Popen(
            [sys.executable, str(CLI), *command],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            pass_fds=(lock_fd,),
            preexec_fn=_die_with_parent(os.getpid()) if die and sys.platform == "linux" else None,
        )
        procs.add(proc)
        try:
            return proc.wait()
        finally:
            procs.discard(proc)


class GridRunner:
    """The local pool: ``workers`` threads each running one fit at a time, one slot per worker
    (a GPU id, or None for CPU; see :func:`gpu_slots`)."""

    def __init__(self, slots: list[int | None]) -> None:
        self.workers = len(slots)
        self.slots: queue.Queue[int | None] = queue.Queue()
        for slot in slots:
            self.slots.put(slot)
        self.stop = threading.Event()
        self.procs = Processes()

    def _execute(self, run: Run) -> Outcome:
        gpu = self.slots.get()
        try:
            if self.stop.is_set():
                return Outcome(run, -1, "not started (interrupted)")
            # another experiment process on the same out_dir holds this run: wait, then skip or resume
            return execute(run, worker_env(gpu), self.procs, Path.cwd(), math.inf, stop=self.stop)
        finally:
            self.slots.put(gpu)

    def describe(self, todo: int) -> str:
        return f"{min(self.workers, max(todo, 1))} worker(s)"

    def kill_all(self) -> None:
        """Stop starting runs and end every running fit (terminate, then kill)."""
        self.stop.set()
        self.procs.stop()

    def run(self, runs: list[Run], desc: str = "runs") -> list[Outcome]:
        """Run everything; returns the outcomes (re-raises KeyboardInterrupt after cleaning up)."""
        if not runs:
            return []
        pool = ThreadPoolExecutor(max_workers=self.workers)
        runs = sorted(runs, key=held)  # runs another process holds go last: the work is shared
        futures = [pool.submit(self._execute, r) for r in runs]
        try:
            return track((f.result() for f in as_completed(futures)), runs, desc)
        except KeyboardInterrupt:
            self.kill_all()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
