"""Run a grid on a Dask cluster: ``cli.py experiment ... --scheduler tcp://HOST:8786``.

Each run is one Dask task that runs :func:`cl_attractors.grid.runner.execute` on a worker, the
same function the local pool runs: the run's fcntl lock, a ``fit`` subprocess (one thread), its
log, skip-if-complete, resume from ``last.ckpt``. The fit dies with its worker, so when Dask
reschedules the task of a killed worker, the new attempt takes the freed lock and resumes from
the run's last checkpoint. Before any run starts, the scheduler (it unpickles every task) and every
worker are probed: they must import this project, the workers must see this checkout at the same
path and write a file under ``out_dir`` that this client can read back (the run root must be a
shared file system). See docs/distributed.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from cl_attractors.errors import ConfigError, one_line
from cl_attractors.grid.runner import CLI, Outcome, Processes, execute, track, worker_env
from cl_attractors.grid.spec import Run

SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
CONNECT_TIMEOUT_S = 10.0
POLL_S = 0.2  # how often the client looks for finished tasks and Ctrl-C
LOCK_WAIT_S = 5.0  # a killed worker's fit releases the run's lock within milliseconds
FIT_NEEDS = ("torch", "lightning", "jsonargparse")
ROOT = CLI.parent

_RUNNING: dict[str, Processes] = {}  # on a worker: the fits of each client session, by token
_RUNNING_LOCK = threading.Lock()


def check_address(address: str) -> str:
    """The scheduler address, or a one-line error naming what is wrong with it."""
    scheme, sep, location = address.partition("://")
    if not sep:
        scheme, location = "tcp", address
    if scheme not in SCHEMES:
        raise ConfigError(
            f"--scheduler {address}: scheme {scheme!r} is not allowed; use a Dask scheduler's address, "
            f"tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786; also {', '.join(SCHEMES[1:])})"
        )
    if scheme != "ucx" and not location.rpartition(":")[2].isdigit():
        raise ConfigError(f"--scheduler {address} has no port; use tcp://HOST:PORT (dask scheduler: 8786)")
    return f"{scheme}://{location}"


def _reachable(address: str) -> None:
    """Fail with one line unless a Dask scheduler answers at ``address``."""
    from distributed.comm import connect

    async def ping() -> None:
        comm = await connect(address, timeout=CONNECT_TIMEOUT_S)
        await comm.close()

    try:
        asyncio.run(ping())
    except (OSError, TimeoutError) as err:
        raise ConfigError(
            f"--scheduler {address}: no Dask scheduler answers ({one_line(err)}); start one with "
            "`dask scheduler` and pass the address it prints"
        ) from None


def probe(paths: list[str], out_dir: str, name: str) -> dict[str, object]:
    """On a worker: the fit dependencies it lacks, which of ``paths`` it cannot see, and the
    probe file it wrote under ``out_dir`` (or why it could not)."""
    lacking = [m for m in FIT_NEEDS if importlib.util.find_spec(m) is None]
    missing = [p for p in paths if not os.path.exists(p)]
    file = f"{name}-{socket.gethostname()}-{os.getpid()}"
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / file).write_text(name, encoding="utf-8")
        error = ""
    except OSError as err:
        error = err.strerror or str(err)
    return {"lacking": lacking, "missing": missing, "file": file, "error": error}


def _remove(out_dir: str, prefix: str) -> None:
    """On a worker (and here): delete the probe files of this session."""
    for path in Path(out_dir).glob(f"{prefix}-*"):
        path.unlink(missing_ok=True)


def importable() -> bool:
    """On the scheduler: reaching this line means it can import this project."""
    return True


def not_importable(who: str, err: BaseException) -> str:
    """The fix for a scheduler or worker that cannot unpickle this project's functions."""
    if "No module named" not in str(err):
        return f"{who} failed the start-up probe ({one_line(err)})"
    return (
        f"{who} cannot import cl_attractors ({one_line(err)}); start the scheduler and each worker "
        f"with PYTHONPATH={ROOT} (or run `pip install -e {ROOT}` in their environment)"
    )


def worker_problem(worker: str, result: object, out_dir: Path) -> str | None:
    """What is wrong with one worker's :func:`probe` result, as a fix-it sentence (None: nothing)."""
    if isinstance(result, BaseException):
        return not_importable(f"worker {worker}", result)
    assert isinstance(result, dict)
    if result["lacking"]:
        return f"worker {worker} cannot import {', '.join(result['lacking'])}; install requirements.txt there"
    if result["missing"]:
        return (
            f"worker {worker} cannot see {result['missing'][0]}; run the workers on a file system "
            "that holds this checkout at the same path"
        )
    if result["error"]:
        return f"worker {worker} cannot write out_dir {out_dir} ({result['error']}); use a shared run root"
    if not (out_dir / str(result["file"])).is_file():
        return (
            f"out_dir {out_dir} is not shared: a file worker {worker} wrote there is not visible here; "
            "put the run root on a file system that this machine and every worker mount at the same path"
        )
    return None


def run_task(run: Run, cwd: str, token: str) -> Outcome:
    """The Dask task of one run (on a worker): :func:`execute`, the fit dying with this worker."""
    with _RUNNING_LOCK:
        procs = _RUNNING.setdefault(token, Processes())
    return execute(run, worker_env(None), procs, Path(cwd), lock_wait_s=LOCK_WAIT_S, die_with_parent=True)


def stop_runs(token: str) -> int:
    """On a worker: end the fits of one client session (Ctrl-C, or the end of the session)."""
    with _RUNNING_LOCK:
        procs = _RUNNING.setdefault(token, Processes())
    return procs.stop()


class DaskRunner:
    """Runs a grid's runs as tasks of the Dask cluster at ``address``, from working directory ``cwd``."""

    def __init__(self, address: str, cwd: Path, out_dir: Path, paths: list[Path]) -> None:
        from distributed import Client

        self.address = check_address(address)
        _reachable(self.address)
        self.cwd, self.token = cwd, uuid.uuid4().hex
        self.client = Client(self.address, timeout=CONNECT_TIMEOUT_S)
        try:
            self._check_workers(cwd / out_dir, [cwd, *paths])
        except BaseException:
            self.client.close()
            raise

    def _check_workers(self, out_dir: Path, paths: list[Path]) -> None:
        try:
            self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise ConfigError(
                f"--scheduler {self.address}: no worker joined within {CONNECT_TIMEOUT_S:.0f} s; start some "
                f"with `dask worker {self.address} --nthreads 1` (docs/distributed.md)"
            ) from None
        try:  # the scheduler unpickles every task: it needs this project too
            self.client.run_on_scheduler(importable)
        except Exception as err:
            raise ConfigError(not_importable(f"the scheduler at {self.address}", err)) from None
        prefix = f".probe-{self.token}"
        results = self.client.run(probe, [str(p) for p in paths], str(out_dir), prefix, on_error="return")
        problems = [p for w, r in sorted(results.items()) if (p := worker_problem(w, r, out_dir))]
        self.client.run(_remove, str(out_dir), prefix, on_error="ignore")
        _remove(str(out_dir), prefix)
        if problems:
            more = f" (and {len(problems) - 1} more worker problem(s))" if len(problems) > 1 else ""
            raise ConfigError(problems[0] + more)
        self.threads = sum(self.client.nthreads().values())

    def describe(self, todo: int) -> str:
        return f"the Dask cluster at {self.address} ({self.threads} worker thread(s))"

    def _outcomes(self, futures: dict, interrupted: threading.Event) -> Iterator[Outcome]:
        """The outcomes as the tasks end; Ctrl-C raises here, between two polls, nowhere else."""
        from distributed import as_completed

        done = as_completed(futures)
        while not done.is_empty():
            for future in done.next_batch(block=False):
                try:
                    yield future.result()
                except Exception as err:  # a task Dask gave up on (e.g. KilledWorker): that run failed
                    yield Outcome(futures[future], 1, f"{type(err).__name__}: {one_line(err)}")
            if interrupted.wait(POLL_S):
                raise KeyboardInterrupt

    def run(self, runs: list[Run], desc: str = "runs") -> list[Outcome]:
        """Run everything on the cluster; Ctrl-C cancels the tasks and ends their fits."""
        with deferred_interrupt() as interrupted:
            futures = {
                self.client.submit(
                    run_task, r, str(self.cwd), self.token, key=f"fit-{r.variant}-{r.seed}-{self.token}"
                ): r
                for r in runs
            }
            try:
                return track(self._outcomes(futures, interrupted), runs, desc)
            except KeyboardInterrupt:
                self.client.cancel(list(futures), force=True)
                raise
            finally:
                self.client.run(stop_runs, self.token, on_error="ignore")
                self.client.close()


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[threading.Event]:
    """While inside, Ctrl-C sets the event instead of raising KeyboardInterrupt wherever the main
    thread happens to be (Dask's client machinery, a finalizer); the runner raises it at a safe
    point, and a second Ctrl-C cannot cut its clean-up short."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)
