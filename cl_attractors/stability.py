"""Accuracy through training (``--eval_every_n_steps``): the fixed test subsample, the long-format
curve file and the stability-gap numbers (De Lange et al., 2023: accuracy on the old tasks dips
right after a task switch, then recovers or not). Pure functions; no Lightning, no torch.

The curve of a run is ``eval_curve.csv`` in its directory, one row per (evaluation, task):
``step`` (optimizer steps taken), ``task`` (the task evaluated, from 0), ``trained`` (the task being
trained at that step) and ``accuracy`` on the task's subsample.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

CURVE_FILE = "eval_curve.csv"
COLUMNS = ("step", "task", "trained", "accuracy")
GAP_COLUMNS = ["switch", "curve", "before", "min", "drop", "min_step", "recover_steps"]


def subsample(n_test: int, size: int, seed: int, task: int) -> np.ndarray:
    """The sorted indices of the ``size`` test images of ``task`` evaluated during training: a
    function of ``(seed, task)`` only, so every run of a seed sees the same images."""
    rng = np.random.default_rng([seed, task])
    return np.sort(rng.choice(n_test, size=size, replace=False))


def curve_csv(rows: Sequence[Sequence[float]]) -> str:
    """The curve file's text for ``rows`` of (step, task, trained, accuracy)."""
    frame = pd.DataFrame(list(rows), columns=list(COLUMNS))
    frame = frame.astype({"step": int, "task": int, "trained": int, "accuracy": float})
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.6f")
    return buffer.getvalue()


def read_curve(run_dir: Path) -> pd.DataFrame:
    """A run's curve (raises FileNotFoundError without ``eval_curve.csv``)."""
    return pd.read_csv(Path(run_dir) / CURVE_FILE)


def switches(curve: pd.DataFrame) -> list[int]:
    """The steps at which a new task starts: ``switches[k - 1]`` is task ``k``'s first step (the
    evaluation there sees the network at the end of task ``k - 1``)."""
    first = curve.groupby("trained")["step"].min().sort_index()
    return [int(s) for t, s in first.items() if t > 0]


def old_tasks_mean(curve: pd.DataFrame) -> pd.DataFrame:
    """Per evaluation after task 0: the mean accuracy over the tasks already finished (task <
    trained) and the accuracy on task 0; columns ``step``, ``trained``, ``old_mean``, ``first``."""
    old = curve[curve["task"] < curve["trained"]]
    mean = old.groupby(["step", "trained"], as_index=False)["accuracy"].mean()
    first = old[old["task"] == 0][["step", "accuracy"]].rename(columns={"accuracy": "first"})
    return mean.rename(columns={"accuracy": "old_mean"}).merge(first, on="step")


def gap_after_switch(
    steps: np.ndarray, acc: np.ndarray, start: int, end: float, before: float, tol: float
) -> dict[str, float]:
    """The stability gap of one accuracy curve after one switch.

    Args:
        steps, acc: the curve (ascending steps).
        start: the switch's step; ``before`` is the accuracy evaluated there (end of the old task).
        end: the next switch's step (``inf`` for the last task): the window is ``(start, end]``.
        tol: how close to ``before`` counts as recovered.

    Returns ``min`` (lowest accuracy in the window), ``drop`` (``before - min``), ``min_step``
    (steps after the switch where it was lowest) and ``recover_steps``: steps after the switch
    until the accuracy is back within ``tol`` of ``before`` at or after the minimum (0 when the
    drop is within ``tol``; NaN when it does not recover before the next switch).
    """
    window = (steps > start) & (steps <= end)
    s, a = steps[window], acc[window]
    if len(a) == 0:
        return {"min": math.nan, "drop": math.nan, "min_step": math.nan, "recover_steps": math.nan}
    lowest = int(np.argmin(a))
    low = float(a[lowest])
    recovered = np.nonzero(a[lowest:] >= before - tol)[0]
    if before - low <= tol:
        recover = 0.0
    elif len(recovered):
        recover = float(s[lowest + recovered[0]] - start)
    else:
        recover = math.nan
    return {"min": low, "drop": before - low, "min_step": float(s[lowest] - start), "recover_steps": recover}


def stability_gaps(curve: pd.DataFrame, tol: float) -> pd.DataFrame:
    """The stability gap of task 0 (``curve = "first"``) and of the mean over the old tasks
    (``"old_mean"``: tasks ``< k`` after the switch to task ``k``) after every switch; columns
    ``switch`` (the new task ``k``), ``curve``, ``before`` (at the switch: the end of task
    ``k - 1``) and :func:`gap_after_switch`'s numbers."""
    starts = switches(curve)
    rows = []
    for k, start in enumerate(starts, start=1):
        end = starts[k] if k < len(starts) else math.inf
        old = curve[(curve["task"] < k) & (curve["step"] >= start)]
        series = {
            "first": old[old["task"] == 0].set_index("step")["accuracy"],
            "old_mean": old.groupby("step")["accuracy"].mean(),
        }
        for name, acc in series.items():
            if start not in acc.index:
                continue
            steps, values = acc.index.to_numpy(), acc.to_numpy()
            before = float(acc.loc[start])
            gap = gap_after_switch(steps, values, start, end, before, tol)
            rows.append({"switch": k, "curve": name, "before": before, **gap})
    return pd.DataFrame(
        rows, columns=["switch", "curve", "before", "min", "drop", "min_step", "recover_steps"]
    )
