"""What made a grid's results: the exact command, its seeds and variants, and its wall time.

``cli.py experiment`` appends one record per invocation to ``<out_dir>/<name>.invocations.json``
(a grid resumed three times has three); the report copies them into ``aggregate.json`` and states
them in ``results.md``.
"""

from __future__ import annotations

import datetime
import json
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


def record_invocation(
    spec: ExperimentSpec, argv: Sequence[str], started: float, failed: int, ended: float | None = None
) -> dict:
    """Append this invocation (command line, seeds, variants, start, end, wall time, load) and
    return its record."""
    ended = time.time() if ended is None else ended
    record = {
        "command": "python cli.py experiment " + shlex.join(list(argv)),
        "seeds": list(spec.seeds),
        "variants": list(spec.variants),
        "started": _iso(started),
        "ended": _iso(ended),
        "wall_s": round(ended - started, 1),
        "failed_runs": failed,
        "load_avg_1min_at_end": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    write_json(invocations_path(spec), [*load_invocations(spec), record])
    return record


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
        f"| {r['started']} | `{r['command']}` | {duration(r['wall_s'])} | {r['failed_runs']} "
        f"| {r.get('load_avg_1min_at_end', '')} on {r.get('cpus', '?')} CPUs |"
        for r in invocations
    ]
    total = sum(r["wall_s"] for r in invocations)
    lines += ["", f"Total wall time: {duration(total)} over {len(invocations)} invocation(s)."]
    return "\n".join(lines) + "\n"
