"""Meta-search studies read from their saved tables (``results/tune/<name>/trials.csv``): how many
trials a study needed to come close to its final best Eq. 2 ("30 TPE trials suffice")."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cl_attractors.report.claims import NOT_RUN

FINISHED = ("COMPLETE", "PRUNED")


def load_trials(path: Path) -> pd.DataFrame | None:
    """The study's trials table (None when the file does not exist)."""
    return pd.read_csv(path) if Path(path).is_file() else None


def trials_to_reach(trials: pd.DataFrame, fraction: float) -> dict:
    """Over the finished (COMPLETE + PRUNED) trials in number order, the ones the budget counts:
    the 1-based count at which the best Eq. 2 of the COMPLETE trials so far first reached
    ``fraction`` of the study's final best, that best, and the number of finished trials. A
    FAIL trial (e.g. a killed worker's, re-queued) is not counted."""
    ordered = trials[trials["state"].isin(FINISHED)].sort_values("number")
    finished = len(ordered)
    scores = ordered["eq2"].where(ordered["state"] == "COMPLETE")
    best_so_far = scores.cummax()
    if best_so_far.isna().all():
        return {"finished": finished, "reached_at": None, "best": None}
    best = float(best_so_far.max())
    reached = (best_so_far >= fraction * best).to_numpy().nonzero()[0]
    return {"finished": finished, "reached_at": int(reached[0]) + 1, "best": best}


def wall_time_s(trials: pd.DataFrame) -> float | None:
    """The study's wall time: the union of its trials' [start, end] intervals (several workers
    overlap; the time between sessions is not counted). A FAIL trial without a reason (a killed
    worker's, failed later by the heartbeat rule) is left out: its end is when it was found
    stale, not when it stopped. None for a table without start and end times."""
    if not {"datetime_start", "datetime_complete"} <= set(trials.columns):
        return None
    kept = trials["state"].isin(FINISHED) | ((trials["state"] == "FAIL") & trials["reason"].fillna("").ne(""))
    spans = trials[kept][["datetime_start", "datetime_complete"]].dropna().apply(pd.to_datetime)
    total, end = 0.0, None
    for start, stop in spans.sort_values("datetime_start").itertuples(index=False):
        if end is None or start > end:
            total, end = total + (stop - start).total_seconds(), stop
        elif stop > end:
            total, end = total + (stop - end).total_seconds(), stop
    return total


def check_trials(claim: dict, trials: pd.DataFrame | None) -> dict:
    """``trials`` claim: ``budget`` (the paper's 30), ``fraction`` (0.95), ``within``: holds when
    the study, run to its budget, reached ``fraction`` of its final best by trial ``within``."""
    budget, fraction, within = int(claim["budget"]), float(claim["fraction"]), int(claim["within"])
    base = {"value": None, "lo": None, "hi": None, "n": None}
    if trials is None:
        return {**base, "measured": "study not run yet", "verdict": NOT_RUN}
    found = trials_to_reach(trials, fraction)
    if found["finished"] < budget or found["reached_at"] is None:
        measured = f"{found['finished']} of {budget} trials finished"
        return {**base, "measured": measured, "verdict": NOT_RUN, "n": found["finished"]}
    measured = (
        f"{100 * fraction:g}% of the final best Eq. 2 ({found['best']:.4g}) first reached at trial "
        f"{found['reached_at']} of {found['finished']} (claim holds if by trial {within})"
    )
    verdict = "holds" if found["reached_at"] <= within else "does not hold"
    return {
        **base,
        "measured": measured,
        "verdict": verdict,
        "value": found["reached_at"],
        "n": found["finished"],
    }
