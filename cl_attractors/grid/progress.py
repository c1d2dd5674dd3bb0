"""A grid's progress while its runs train, read from the runs' own files (``metrics.json`` after
each task, ``accuracy_matrix.csv``, ``run.log`` when it starts), so it works for the local pool and for a Dask
cluster on a shared disk alike.

In a terminal, a block redrawn every few seconds: the grid's line (runs finished and failed, tasks
done, an ETA from the tasks finished during this invocation) and one line per running run (variant,
seed, the task it trains, k/N, the accuracy over the tasks seen after its last finished task).
Elsewhere (a log file), one line each time a run finishes a task or a run ends.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cl_attractors.grid.spec import Run

REFRESH_S = 2.0


@dataclass
class Outcome:
    """What became of one run: return code (0 = ok) and the tail of its log."""

    run: Run
    returncode: int
    tail: str = ""


@dataclass(frozen=True)
class RunState:
    """What a run's files say: tasks done, of how many (None: not known yet), the accuracy over
    the tasks seen after the last one, and whether it finished."""

    done: int
    total: int | None
    acc: float | None
    complete: bool


def _num_tasks(run: Run) -> int | None:
    """N from the accuracy matrix (rows), else from the run's ``--data.num_tasks`` argument."""
    try:
        return len((run.run_dir / "accuracy_matrix.csv").read_text(encoding="utf-8").strip().splitlines()) - 1
    except OSError:
        pass
    args = list(run.args)
    flags = [i for i, a in enumerate(args[:-1]) if a == "--data.num_tasks"]
    return int(args[flags[-1] + 1]) if flags and args[flags[-1] + 1].isdigit() else None


def run_state(run: Run) -> RunState:
    try:
        metrics = json.loads((run.run_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        metrics = {}
    seen = metrics.get("avg_acc_seen") or [None]
    return RunState(
        int(metrics.get("tasks_done", 0)), _num_tasks(run), seen[-1], metrics.get("complete") is True
    )


def clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def eta(states: list[RunState], done_at_start: int, elapsed_s: float) -> str:
    """The grid's remaining time from the tasks finished during this invocation (their rate over
    the wall time so far, all workers together); an unknown N counts as the largest known one."""
    known = [s.total for s in states if s.total]
    default = max(known, default=0)
    total = sum(s.total or default for s in states)
    done = sum((s.total or default) if s.complete else s.done for s in states)
    finished_now = done - done_at_start
    if finished_now <= 0 or elapsed_s <= 0:
        return f"tasks {done}/{total}; ETA after the first task"
    left = max(total - done, 0) * elapsed_s / finished_now
    return f"tasks {done}/{total}; ETA {clock(left)} (from {finished_now} tasks in {clock(elapsed_s)})"


def run_line(run: Run, state: RunState) -> str:
    total = "?" if state.total is None else str(state.total)
    acc = "" if state.acc is None else f"; after task {state.done}: {100 * state.acc:.2f}% over tasks seen"
    if state.total is not None and state.done >= state.total:  # the run's last files being written
        return f"{run.variant} seed {run.seed}: all {total} tasks trained, finishing{acc}"
    return f"{run.variant} seed {run.seed}: training task {state.done + 1}/{total}{acc}"


class Progress:
    """The display of one grid invocation (see the module docstring); :meth:`outcome` records
    each ended run, :meth:`close` prints the last state."""

    def __init__(self, runs: list[Run], desc: str, stream: TextIO | None = None) -> None:
        self.runs, self.desc = runs, desc
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.ended: dict[Path, Outcome] = {}
        self.start, self.wall_start = time.monotonic(), time.time()
        self.states = {r.run_dir: run_state(r) for r in runs}
        self.at_start = sum(s.done for s in self.states.values())
        self.drawn = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Progress:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.refresh()
        if self.tty:
            self.stream.write("\n".join(self._block()[:1]) + "\n")
            self.stream.flush()

    def _loop(self) -> None:
        while not self.stop.wait(REFRESH_S):
            self.refresh()

    def _header(self) -> str:
        failed = sum(1 for o in self.ended.values() if o.returncode)
        ok = len(self.ended) - failed
        states = list(self.states.values())
        elapsed = time.monotonic() - self.start
        return (
            f"{self.desc}: {ok}/{len(self.runs)} runs finished, {failed} failed; "
            f"{eta(states, self.at_start, elapsed)}"
        )

    def _running(self) -> list[Run]:
        """Runs started during this invocation (their run.log is new) and not ended. Never by
        taking the run's lock: a poll holding it for an instant could turn a worker away."""
        return [r for r in self.runs if r.run_dir not in self.ended and self._started(r)]

    def _started(self, run: Run) -> bool:
        try:
            return (run.run_dir / "run.log").stat().st_mtime >= self.wall_start - 1.0
        except OSError:
            return False

    def _block(self) -> list[str]:
        return [self._header(), *(f"  {run_line(r, self.states[r.run_dir])}" for r in self._running())]

    def refresh(self) -> None:
        """Re-read the runs' files; redraw (terminal) or print the tasks finished since (log)."""
        with self.lock:
            before = dict(self.states)
            self.states = {r.run_dir: run_state(r) for r in self.runs}
            if self.tty:
                self._redraw(self._block())
                return
            for run in self.runs:
                new = self.states[run.run_dir]
                if new.done > before[run.run_dir].done and run.run_dir not in self.ended:
                    self._print(f"{self.desc}: {run_line(run, new)} ({self._header()})")

    def _redraw(self, lines: list[str]) -> None:
        up = f"\x1b[{self.drawn}F\x1b[J" if self.drawn else ""
        self.stream.write(up + "\n".join(lines) + "\n")
        self.stream.flush()
        self.drawn = len(lines)

    def _print(self, text: str) -> None:
        if self.tty and self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def outcome(self, outcome: Outcome) -> None:
        """A run ended: a failure is printed with its log tail, a success as one line."""
        with self.lock:
            self.ended[outcome.run.run_dir] = outcome
            self.states[outcome.run.run_dir] = run_state(outcome.run)
            run = outcome.run
            if outcome.returncode:
                self._print(
                    f"FAILED {run.run_dir} (exit {outcome.returncode}); "
                    f"log: {run.run_dir / 'run.log'}\n{outcome.tail}"
                )
            else:
                self._print(f"{self.desc}: {run.variant} seed {run.seed} finished ({self._header()})")


def track(outcomes: Iterable[Outcome], runs: list[Run], desc: str) -> list[Outcome]:
    """Collect outcomes as they come, showing the grid's progress meanwhile."""
    done: list[Outcome] = []
    with Progress(runs, desc) as progress:
        for outcome in outcomes:
            done.append(outcome)
            progress.outcome(outcome)
    return done
