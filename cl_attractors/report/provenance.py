"""What made a grid's results: the exact command, its seeds and variants, and its wall time.

``cli.py experiment`` appends one record per invocation to ``<out_dir>/<name>.invocations.json``
(a grid resumed three times has three) when it starts, and gives it its end when it ends; the
report copies them into ``aggregate.json`` and states them in ``results.md``. An invocation that
was killed has no end: its wall time is bounded below by its last finished run (``settle``).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import shlex
import time
from collections.abc import Sequence
from pathlib import Path

from cl_attractors.grid.spec import ExperimentSpec
from cl_attractors.io import write_json


def invocations_path(spec: ExperimentSpec) -> Path:
    return spec.out_dir / f"{spec.name}.invocations.json"


def load_invocations(spec: ExperimentSpec) -> list[dict]:
    """The recorded invocations of ``spec``'s grid (oldest first; [] when none or unreadable)."""
    try:
        data = json.loads(invocations_path(spec).read_text())
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def start_invocation(spec: ExperimentSpec, argv: Sequence[str], started: float) -> str:
    """Record this invocation before it runs anything, with no end yet: one killed mid-grid (a
    session that ends, a machine that stops) keeps its record. Returns the record's id."""
    record_id = f"{os.getpid()}-{started:.6f}"
    record = {
        "id": record_id,
        "command": "python cli.py experiment " + shlex.join(list(argv)),
        "seeds": list(spec.seeds),
        "variants": list(spec.variants),
        "started": _iso(started),
        "started_s": started,
        "ended": None,
        "wall_s": None,
        "failed_runs": None,
        "cpus": os.cpu_count(),
    }
    write_json(invocations_path(spec), [*load_invocations(spec), record])
    return record_id


def finish_invocation(spec: ExperimentSpec, record_id: str, failed: int, ended: float | None = None) -> dict:
    """Give the started invocation ``record_id`` its end, wall time, failed runs and load."""
    ended = time.time() if ended is None else ended
    records = load_invocations(spec)
    record = next(r for r in records if r.get("id") == record_id)
    record.update(
        ended=_iso(ended),
        wall_s=round(ended - record["started_s"], 1),
        failed_runs=failed,
        load_avg_1min_at_end=round(os.getloadavg()[0], 2),
    )
    write_json(invocations_path(spec), records)
    return record


def _start_s(record: dict) -> float:
    if "started_s" in record:
        return float(record["started_s"])
    started = datetime.datetime.strptime(record["started"], "%Y-%m-%d %H:%M:%S UTC")
    return started.replace(tzinfo=datetime.UTC).timestamp()


def settle(invocations: list[dict], finished: Sequence[Path]) -> list[dict]:
    """The records with every unended invocation (killed, or still running) given a lower bound
    of its wall time: from its start to the last of ``finished`` (the metrics.json of finished
    runs) written before the next invocation started, and the number of those runs."""
    starts = [_start_s(r) for r in invocations]
    times = [p.stat().st_mtime for p in finished if p.exists()]
    settled = []
    for i, record in enumerate(invocations):
        if record.get("ended") is not None:
            settled.append(record)
            continue
        until = starts[i + 1] if i + 1 < len(starts) else math.inf
        own = [t for t in times if starts[i] <= t < until]
        wall = max(own) - starts[i] if own else 0.0
        settled.append({**record, "wall_s": round(wall, 1), "runs_finished": len(own), "interrupted": True})
    return settled


def total_wall(invocations: list[dict]) -> str:
    """The summed wall time, ``≥`` when an invocation has no recorded end."""
    total = duration(sum(r["wall_s"] for r in invocations))
    return f"≥ {total}" if any(r.get("interrupted") for r in invocations) else total


def wall_text(record: dict) -> str:
    """One invocation's wall time, ``≥`` (and why) when it has no recorded end."""
    if not record.get("interrupted"):
        return duration(record["wall_s"])
    return (
        f"≥ {duration(record['wall_s'])} (no end recorded: interrupted or still running; "
        f"to the last of its {record['runs_finished']} finished runs)"
    )


def duration(seconds: float) -> str:
    """``1 h 02 min``, ``3 min 12 s`` or ``41 s``."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def markdown(invocations: list[dict]) -> str:
    """The results.md section: each invocation's command and wall time, and the total."""
    if not invocations:
        return (
            "No invocation recorded (the runs were made before `cli.py experiment` recorded its "
            "command line and wall time, or by another out_dir).\n"
        )
    lines = ["| started | command | wall time | failed runs | load (1 min) at end |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['started']} | `{r['command']}` | {wall_text(r)} | {_or_dash(r['failed_runs'])} "
        f"| {_or_dash(r.get('load_avg_1min_at_end'))} on {r.get('cpus', '?')} CPUs |"
        for r in invocations
    ]
    lines += ["", f"Total wall time: {total_wall(invocations)} over {len(invocations)} invocation(s)."]
    return "\n".join(lines) + "\n"


def _or_dash(value: object) -> str:
    return "—" if value is None else str(value)
