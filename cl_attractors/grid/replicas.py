"""``experiment --replicas R``: a grid's pending runs trained R at a time as replica groups.

Runs whose fit arguments are the same but for the seed and the run directory (one variant, or one
variant at one sweep value) share architecture and protocol; :func:`pack` makes groups of up to R
of them, never mixing variants, nor runs that would resume from different tasks. Each group is one
``cli.py replicas --runs GROUP.json`` process (``cl_attractors/replicas/group.py``) holding every
run's lock, its log in ``<out_dir>/groups/``; its runs' directories are exactly those their own fits
would write, so skipping finished runs, resuming, reports and ``merge`` see no difference. A run
that fails in a group (NaN) is reported with its log like a failed fit. The runs of a variant
whose method or network has no replica form (LwF, replay, a CNN) are trained one fit per process
in the same worker slots, as the pool trains them, so a mixed grid needs one command.
"""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from pathlib import Path

from cl_attractors.errors import ConfigError
from cl_attractors.grid.runner import (
    CLI,
    Outcome,
    Processes,
    execute,
    held,
    log_tail,
    take_lock,
    track,
    worker_env,
)
from cl_attractors.grid.spec import Run
from cl_attractors.io import write_json
from cl_attractors.paths import prune_task_checkpoints, task_checkpoints

PER_RUN_FLAGS = ("--seed_everything", "--data.seed", "--seed", "--run_dir")
Sizer = Callable[[list[str]], int]
"""Given one run's fit arguments: the largest number of such replicas that fit the device."""


def parse_replicas(value: str | None) -> int | str | None:
    """``--replicas``: a positive integer, ``auto``, or None (not given)."""
    if value is None or value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"--replicas {value} is not allowed; use a positive integer or auto")
    return int(value)


def group_key(run: Run) -> tuple[str, ...]:
    """What runs of one group share: the fit arguments without the per-run values, and the task
    they would resume from."""
    args, out, skip = list(run.args), [], False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in PER_RUN_FLAGS:
            skip = True
            continue
        out.append(arg)
    found = task_checkpoints(run.run_dir / "checkpoints")
    return (*out, f"resume:{found[0].name if found else '-'}")


def pack(runs: list[Run], replicas: int) -> list[list[Run]]:
    """Groups of at most ``replicas`` runs of one key, in the order the runs come."""
    by_key: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        by_key.setdefault(group_key(run), []).append(run)
    return [same[i : i + replicas] for same in by_key.values() for i in range(0, len(same), replicas)]


class ReplicaRunner:
    """Runs groups of replicas, ``len(slots)`` processes at a time (a GPU id or None each); the
    runs of the variants in ``alone`` (a method or network without a replica form) one fit per
    process in the same slots.

    Args:
        slots: the worker slots (see ``runner.gpu_slots``).
        replicas: runs per group.
        groups_dir: where each group's run list and log go.
        alone: variants whose runs are not grouped.
    """

    def __init__(
        self, slots: list[int | None], replicas: int, groups_dir: Path, alone: set[str] | None = None
    ) -> None:
        self.slots = slots
        self.replicas, self.groups_dir = replicas, groups_dir
        self.alone = set(alone or ())
        self.stop = threading.Event()
        self.procs = Processes()
        self.free = list(slots)
        self.lock = threading.Lock()

    def describe(self, todo: int) -> str:
        text = f"groups of up to {self.replicas} replicas, {len(self.slots)} process(es) at a time"
        if self.alone:
            names = ", ".join(sorted(self.alone))
            text += f"; one fit per process for the variants without a replica form: {names}"
        return text

    def run(self, runs: list[Run], desc: str = "runs") -> list[Outcome]:
        if not runs:
            return []
        ordered = sorted(runs, key=held)
        grouped = pack([run for run in ordered if run.variant not in self.alone], self.replicas)
        place = {id(run): i for i, run in enumerate(ordered)}  # runs come seed by seed: so do groups
        singles = [[run] for run in ordered if run.variant in self.alone]
        groups = sorted(grouped + singles, key=lambda group: place[id(group[0])])
        pool = ThreadPoolExecutor(max_workers=len(self.slots))
        futures = [pool.submit(self._execute, group) for group in groups]
        try:
            outcomes = (o for f in as_completed(futures) for o in f.result())
            return track(outcomes, runs, desc)
        except KeyboardInterrupt:
            self.stop.set()
            self.procs.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)

    def _execute(self, group: list[Run]) -> list[Outcome]:
        with self.lock:
            slot = self.free.pop()
        try:
            if self.stop.is_set():
                return [Outcome(run, -1, "not started (interrupted)") for run in group]
            if group[0].variant in self.alone:
                return [execute(group[0], worker_env(slot), self.procs, Path.cwd(), math.inf, stop=self.stop)]
            return execute_group(group, worker_env(slot), self.procs, self.groups_dir, self.stop)
        finally:
            with self.lock:
                self.free.append(slot)


def execute_group(
    group: list[Run], env: dict[str, str], procs: Processes, groups_dir: Path, stop: threading.Event
) -> list[Outcome]:
    """Run one group under every run's lock (waited for, as the pool waits); runs found complete
    once locked are left out. Finished runs keep only their final checkpoint unless told."""
    with ExitStack() as stack:
        todo = []
        for run in group:
            run.run_dir.mkdir(parents=True, exist_ok=True)
            fh = stack.enter_context(open(run.run_dir / ".lock", "w", encoding="utf-8"))
            if not take_lock(fh, math.inf, stop):
                return [Outcome(r, -1, "not started (interrupted)") for r in group]
            if not run.complete:
                todo.append((run, fh.fileno()))
        if not todo:
            return [Outcome(run, 0) for run in group]
        code, log = _spawn_group([run for run, _ in todo], [fd for _, fd in todo], env, procs, groups_dir)
    outcomes = [Outcome(run, 0) for run in group if all(run is not r for r, _ in todo)]
    for run, _ in todo:
        ok = run.complete
        if ok and not run.keep_task_checkpoints:
            prune_task_checkpoints(run.run_dir)
        tail = "" if ok else "\n".join(t for t in (log_tail(run.run_dir / "run.log"), log_tail(log)) if t)
        outcomes.append(Outcome(run, 0 if ok else (code or 1), tail))
    return outcomes


def _spawn_group(
    runs: list[Run], fds: list[int], env: dict[str, str], procs: Processes, groups_dir: Path
) -> tuple[int, Path]:
    """Start ``cli.py replicas`` on the group (it inherits the runs' locks); its exit code and log."""
    groups_dir.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256("\n".join(str(r.run_dir) for r in runs).encode()).hexdigest()[:12]
    spec, log = groups_dir / f"{name}.json", groups_dir / f"{name}.log"
    write_json(spec, [list(run.args) for run in runs])
    command = [sys.executable, str(CLI), "replicas", "--runs", str(spec)]
    for run in runs:
        header = f"{' '.join(['python', 'cli.py', *command[2:]])}\nlog: {log}\n"
        (run.run_dir / "run.log").write_text(header, encoding="utf-8")
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(
            command, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True, pass_fds=tuple(fds)
        )
        procs.add(proc)
        try:
            return proc.wait(), log
        finally:
            procs.discard(proc)
