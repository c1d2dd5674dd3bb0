"""Repair of a finished run's outputs from its own checkpoint (issue 21, class 5).

A run killed between its final checkpoint and its ``metrics.json`` (or whose ``metrics.json`` was
torn by a full disk or a copy) would otherwise read as unfinished forever: a resume from the final
checkpoint trains nothing and writes nothing. :func:`repair_outputs` rebuilds ``metrics.json`` and
``accuracy_matrix.csv`` from the accuracy matrix A kept in the newest task checkpoint that loads
(read weights-only), with the same summaries the fit writes (:func:`cl_attractors.metrics.summarize`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cl_attractors import metrics
from cl_attractors.errors import ConfigError
from cl_attractors.io import load_tensors, matrix_to_csv, write_json, write_text
from cl_attractors.paths import task_checkpoints


def _recorded(run_dir: Path) -> tuple[int, bool]:
    """Tasks ``metrics.json`` says are done (-1: missing or torn), and whether it says complete."""
    try:
        saved = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        done, complete = saved.get("tasks_done"), saved.get("complete") is True
    except (OSError, ValueError, AttributeError):
        return -1, False
    return (done if isinstance(done, int) else -1), complete


def _task_state(run_dir: Path) -> dict[str, Any] | None:
    """The task sequence's state (A, initial, tasks_done) in the newest loadable task checkpoint."""
    for path in task_checkpoints(run_dir / "checkpoints"):
        try:
            ckpt = load_tensors(path, mmap=True)
        except ConfigError:
            continue
        for state in (ckpt.get("callbacks") or {}).values() if isinstance(ckpt, dict) else ():
            if isinstance(state, dict) and {"A", "tasks_done"} <= state.keys():
                return state
    return None


def repair_outputs(run_dir: Path) -> bool:
    """Rewrite ``run_dir``'s metrics.json and accuracy_matrix.csv from its checkpoint when the
    checkpoint holds more finished tasks than metrics.json says, or all of them while metrics.json
    is torn or says incomplete; whether it did. Never writes fewer tasks than are recorded, never
    touches a metrics.json that says complete."""
    run_dir = Path(run_dir)
    recorded, complete = _recorded(run_dir)
    state = _task_state(run_dir)
    if state is None or state["A"] is None or complete:
        return False
    A, k = state["A"], int(state["tasks_done"])
    if k < recorded or (k == recorded and k < A.shape[0]):
        return False  # metrics.json is as far as the checkpoint (or further): nothing to repair
    initial = state.get("initial")
    if bool(A[:, :k].isnan().any()):
        return False  # a filled part with holes is not a state the fit writes: leave it to a re-run
    summary: dict[str, Any] = {
        "complete": k == A.shape[0],
        "tasks_done": k,
        "initial_acc": None if initial is None else initial.tolist(),
    }
    summary.update(metrics.summarize(A[:k, :k], None if initial is None else initial[:k]))
    write_text(run_dir / "accuracy_matrix.csv", matrix_to_csv(A))
    write_json(run_dir / "metrics.json", summary)
    return True
