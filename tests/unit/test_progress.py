"""Grid progress (issue 22): one live line per running run and a grid ETA from finished tasks, in
a terminal; one line per finished task elsewhere. Read from the runs' files only."""

from __future__ import annotations

import io
import json
from pathlib import Path

from cl_attractors.grid.progress import Outcome, Progress, RunState, eta, run_line, run_state
from cl_attractors.grid.spec import Run


def _run(tmp_path: Path, variant: str, seed: int, done: int, total: int = 10) -> Run:
    run = Run(
        variant, variant, None, seed, tmp_path / variant / f"seed_{seed}", ("fit", "--data.num_tasks", "10")
    )
    run.run_dir.mkdir(parents=True)
    if done:
        seen = [0.9 - 0.01 * j for j in range(done)]
        metrics = {"tasks_done": done, "avg_acc_seen": seen, "complete": done == total}
        (run.run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_run_state_and_its_line(tmp_path: Path) -> None:
    fresh, busy = _run(tmp_path, "control", 0, 0), _run(tmp_path, "ewc", 3, 4)
    assert run_state(fresh) == RunState(0, 10, None, False)  # N from the run's arguments
    assert (
        run_line(busy, run_state(busy))
        == "ewc seed 3: training task 5/10; after task 4: 87.00% over tasks seen"
    )
    ending = RunState(10, 10, 0.8, False)  # every task trained, the run's last files not yet written
    assert run_line(_run(tmp_path, "si", 1, 0), ending) == (
        "si seed 1: all 10 tasks trained, finishing; after task 10: 80.00% over tasks seen"
    )
    (busy.run_dir / "accuracy_matrix.csv").write_text("task,a,b\n0,1,1\n1,1,1\n")
    assert run_state(busy).total == 2  # the matrix, once written, has the last word


def test_eta_counts_only_the_tasks_finished_now() -> None:
    states = [RunState(10, 10, 0.9, True), RunState(4, 10, 0.8, False), RunState(0, None, None, False)]
    assert eta(states, done_at_start=14, elapsed_s=30.0) == "tasks 14/30; ETA after the first task"
    assert (
        eta(states, done_at_start=10, elapsed_s=60.0)
        == "tasks 14/30; ETA 4 min 00 s (from 4 tasks in 1 min 00 s)"
    )


def test_a_terminal_shows_one_live_line_per_running_run(tmp_path: Path) -> None:
    runs = [_run(tmp_path, "control", 0, 2), _run(tmp_path, "ewc", 0, 1), _run(tmp_path, "si", 0, 0)]
    out = Terminal()
    progress = Progress(runs, "fig2", stream=out)
    (runs[0].run_dir / "run.log").write_text("python cli.py fit ...\n")  # started now (ewc and si wait)
    progress.refresh()
    progress.refresh()
    text = out.getvalue()
    assert text.count("control seed 0: training task 3/10") == 2 and "ewc seed" not in text
    assert "\x1b[2F\x1b[J" in text  # the second refresh redrew the block of 2 lines
    assert "fig2: 0/3 runs finished, 0 failed; tasks 3/30" in text


def test_a_log_gets_a_line_per_finished_task_and_per_ended_run(tmp_path: Path) -> None:
    run = _run(tmp_path, "control", 0, 1)
    out = io.StringIO()
    progress = Progress([run], "main", stream=out)
    metrics = {"tasks_done": 2, "avg_acc_seen": [0.9, 0.85], "complete": False}
    (run.run_dir / "metrics.json").write_text(json.dumps(metrics))
    progress.refresh()
    progress.outcome(Outcome(run, 1, "Traceback: boom"))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("main: control seed 0: training task 3/10; after task 2: 85.00%")
    assert (
        "ETA" in lines[0]
        and lines[1].startswith(f"FAILED {run.run_dir} (exit 1)")
        and lines[2] == "Traceback: boom"
    )
