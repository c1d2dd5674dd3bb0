"""Run a grid of fit runs in parallel worker processes, one thread each (or one GPU each).

Each run is ``python cli.py fit ...`` in its own process and session, with its output in
``<run_dir>/run.log``. A failed run is reported and the others go on; Ctrl-C kills the running
workers and keeps every finished run (their task-boundary checkpoints make them resumable).
"""

from __future__ import annotations

import fcntl
import os
import queue
import subprocess
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tqdm import tqdm

from cl_attractors.grid.spec import Run

CLI = Path(__file__).resolve().parents[2] / "cli.py"
LOG_TAIL_LINES = 5
LOCK_POLL_S = 1.0


@dataclass
class Outcome:
    """What became of one run: return code (0 = ok) and the tail of its log."""

    run: Run
    returncode: int
    tail: str = ""


def worker_env(gpu: int | None) -> dict[str, str]:
    """Environment of a worker: one intra-op thread; on GPU machines, only its own device."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return env


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


class GridRunner:
    """Executes runs with ``workers`` processes; ``gpus`` (if any) are handed out one per worker."""

    def __init__(self, workers: int, gpus: list[int] | None = None) -> None:
        self.workers = workers
        self.slots: queue.Queue[int | None] = queue.Queue()
        for i in range(workers):
            self.slots.put(gpus[i % len(gpus)] if gpus else None)
        self.stop = threading.Event()
        self.procs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()

    def _execute(self, run: Run) -> Outcome:
        gpu = self.slots.get()
        try:
            if self.stop.is_set():
                return Outcome(run, -1, "not started (interrupted)")
            run.run_dir.mkdir(parents=True, exist_ok=True)
            with open(run.run_dir / ".lock", "w") as lock:
                if not self._wait_for_lock(lock):
                    return Outcome(run, -1, "not started (interrupted)")
                if run.complete:  # another experiment process ran it while this one waited
                    return Outcome(run, 0, "finished by another experiment process")
                return self._spawn(run, gpu, lock.fileno())
        finally:
            self.slots.put(gpu)

    def _wait_for_lock(self, lock: IO[str]) -> bool:
        """Take the run's lock, waiting while another experiment process holds it (that process
        runs it; this one then skips it if finished, else resumes it). False when interrupted."""
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if self.stop.wait(LOCK_POLL_S):
                    return False

    @staticmethod
    def held(run: Run) -> bool:
        """Whether another process holds the run's lock right now."""
        path = run.run_dir / ".lock"
        if not path.is_file():
            return False
        with open(path) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
        return False

    def _spawn(self, run: Run, gpu: int | None, lock_fd: int) -> Outcome:
        """Run the fit in a child that inherits the run's lock: should this process be killed,
        the orphaned child keeps the run locked until it ends, so no second fit can start there."""
        log = run.run_dir / "run.log"
        with open(log, "w") as fh:
            fh.write(" ".join(["python", "cli.py", *run.command()]) + "\n")
            fh.flush()
            proc = subprocess.Popen(
                [sys.executable, str(CLI), *run.command()],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=worker_env(gpu),
                cwd=Path.cwd(),
                start_new_session=True,
                pass_fds=(lock_fd,),
            )
            with self.lock:
                self.procs.add(proc)
            code = proc.wait()
            with self.lock:
                self.procs.discard(proc)
        ok = code == 0 and run.complete
        return Outcome(run, 0 if ok else (code or 1), "" if ok else _tail(log))

    def kill_all(self) -> None:
        """Stop starting runs and end every running worker (terminate, then kill)."""
        self.stop.set()
        with self.lock:
            procs = list(self.procs)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def run(self, runs: list[Run], desc: str = "runs") -> list[Outcome]:
        """Run everything; returns the outcomes (re-raises KeyboardInterrupt after cleaning up)."""
        outcomes: list[Outcome] = []
        if not runs:
            return outcomes
        runs = sorted(runs, key=self.held)  # runs another process holds last: share the work
        bar = tqdm(total=len(runs), desc=desc, unit="run", file=sys.stderr, dynamic_ncols=True)
        pool = ThreadPoolExecutor(max_workers=self.workers)
        pending: set[Future] = {pool.submit(self._execute, r) for r in runs}
        try:
            while pending:
                done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in done:
                    outcome = fut.result()
                    outcomes.append(outcome)
                    bar.update(1)
                    if outcome.returncode:
                        failed = sum(1 for o in outcomes if o.returncode)
                        bar.set_postfix(failed=failed)
                        tqdm.write(
                            f"FAILED {outcome.run.run_dir} (exit {outcome.returncode}); "
                            f"log: {outcome.run.run_dir / 'run.log'}\n{outcome.tail}",
                            file=sys.stderr,
                        )
        except KeyboardInterrupt:
            self.kill_all()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            bar.close()
        pool.shutdown(wait=True)
        return outcomes
