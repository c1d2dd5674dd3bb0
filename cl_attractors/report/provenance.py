"""What made a grid's results: the exact command, the code, its seeds and variants, its wall time.

``cli.py experiment`` appends one record per invocation to ``<out_dir>/<name>.invocations.json``
(a grid resumed three times has three) when it starts, and gives it its end when it ends; the
report copies them into ``aggregate.json`` and states them in ``results.md``. An invocation that
was killed has no end: its wall time is bounded below by its last finished run (``made_by``).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import shlex
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from cl_attractors.grid.spec import ExperimentSpec
from cl_attractors.io import write_json


def invocations_path(spec: ExperimentSpec) -> Path:
    return spec.out_dir / f"{spec.name}.invocations.json"


def load_invocations(spec: ExperimentSpec) -> list[dict]:
    """The recorded invocations of ``spec``'s grid (oldest first; [] when none or unreadable)."""
    return read_records(invocations_path(spec))


def read_records(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


ROOT = Path(__file__).resolve().parents[2]
CODE = ("cl_attractors", "callbacks", "cli.py", "configs")  # what a run's numbers depend on


COMMIT_ENV = "CL_ATTRACTORS_COMMIT"  # outside a git checkout: the commit the code was copied from


def code_version(root: Path = ROOT) -> str | None:
    """The commit of the checkout at ``root`` (short hash), ``+ uncommitted changes`` when its code
    or configs differ from it. Outside a git checkout (a copy sent to another machine, which has
    no ``.git``) the value of ``$CL_ATTRACTORS_COMMIT`` marked as stated, else None."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", *CODE)
    except (OSError, subprocess.SubprocessError):
        stated = os.environ.get(COMMIT_ENV)
        return f"{stated} (stated: copied, no git)" if stated else None
    return f"{commit} + uncommitted changes" if dirty else commit


def gpus() -> list[str]:
    """The names of the GPUs this process sees (torch; [] without CUDA)."""
    import torch

    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def start_invocation(spec: ExperimentSpec, argv: Sequence[str], started: float) -> str:
    """Record this invocation before it runs anything, with no end yet: one killed mid-grid (a
    session that ends, a machine that stops) keeps its record. Returns the record's id."""
    record_id = f"{os.getpid()}-{started:.6f}"
    record = {
        "id": record_id,
        "command": "python cli.py experiment " + shlex.join(list(argv)),
        "code": code_version(),
        "seeds": list(spec.seeds),
        "variants": list(spec.variants),
        "started": _iso(started),
        "started_s": started,
        "ended": None,
        "wall_s": None,
        "failed_runs": None,
        "cpus": os.cpu_count(),
        "gpus": gpus(),
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
    return float(record["started_s"]) if "started_s" in record else _parse(record["started"])


def _parse(iso: str) -> float:
    return datetime.datetime.strptime(iso, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=datetime.UTC).timestamp()


def _windows(records: list[dict]) -> list[tuple[float, float]]:
    """Each record's span: start to end (to the next start of the same grid, or now, when it has
    no end: killed, or still running); ends are written to the second."""
    starts = [_start_s(r) for r in records] + [math.inf]
    return [
        (starts[i], _parse(r["ended"]) + 1.0 if r.get("ended") else starts[i + 1])
        for i, r in enumerate(records)
    ]


def made_by(spec: ExperimentSpec, finished: Sequence[Path]) -> dict:
    """What made the runs whose ``finished`` metrics.json files these are: every invocation of
    this grid, and those of other grids sharing its out_dir (Fig. 5 and the sensitivity grid reuse
    Fig. 2's runs) in which one of them finished, oldest first, each with ``runs_made``; an
    unended one gets a lower bound of its wall time (to its last finished run) and
    ``interrupted``. ``outside`` counts the runs that finished in no recorded invocation."""
    times = [p.stat().st_mtime for p in finished if p.exists()]
    made: set[int] = set()
    records = []
    for path in sorted(spec.out_dir.glob("*.invocations.json")):
        grid = path.name.removesuffix(".invocations.json")
        own = read_records(path)
        for record, (start, end) in zip(own, _windows(own)):
            inside = [i for i, t in enumerate(times) if start <= t <= end]
            if grid != spec.name and not inside:
                continue
            made.update(inside)
            record = {**record, "grid": grid, "runs_made": len(inside)}
            if not record.get("ended"):
                last = max((times[i] for i in inside), default=start)
                record.update(wall_s=round(last - start, 1), interrupted=True)
            records.append(record)
    records.sort(key=_start_s)
    return {"invocations": records, "finished_runs": len(times), "outside": len(times) - len(made)}


def total_wall(provenance: dict) -> str:
    """The summed wall time, ``≥`` when an invocation has no recorded end or some runs were made
    outside every recorded invocation."""
    total = duration(sum(r["wall_s"] for r in provenance["invocations"]))
    partial = provenance["outside"] or any(r.get("interrupted") for r in provenance["invocations"])
    return f"≥ {total}" if partial else total


def wall_text(record: dict) -> str:
    """One invocation's wall time, ``≥`` (and why) when it has no recorded end."""
    if not record.get("interrupted"):
        return duration(record["wall_s"])
    bound = duration(record["wall_s"])
    return f"≥ {bound} (no end recorded: interrupted or still running; to its last finished run)"


def last_command(provenance: dict, grid: str) -> str | None:
    """The command line of ``grid``'s own last invocation."""
    own = [r["command"] for r in provenance["invocations"] if r.get("grid") == grid]
    return own[-1] if own else None


def duration(seconds: float) -> str:
    """``1 h 02 min``, ``3 min 12 s`` or ``41 s``."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


COLUMNS = (
    "started",
    "command",
    "code (commit)",
    "runs finished",
    "wall time",
    "failed runs",
    "load (1 min) at end",
)


def markdown(provenance: dict) -> str:
    """The results.md section: each invocation's command, runs made and wall time, and the total."""
    rows, lines = provenance["invocations"], []
    if rows:
        lines += ["| " + " | ".join(COLUMNS) + " |", "|---" * len(COLUMNS) + "|"]
        lines += [
            f"| {r['started']} | `{r['command']}` | {_or_dash(r.get('code'))} | {r['runs_made']} | "
            f"{wall_text(r)} | {_or_dash(r['failed_runs'])} | {_or_dash(r.get('load_avg_1min_at_end'))} "
            f"on {machine(r)} |"
            for r in rows
        ]
        lines += ["", f"Total wall time: {total_wall(provenance)} over {len(rows)} invocation(s)."]
    if provenance["outside"]:
        lines += [
            "",
            f"{provenance['outside']} of the {provenance['finished_runs']} finished runs finished outside "
            "every recorded invocation (made before `cli.py experiment` recorded its invocations when "
            "they start, or copied here): the total is a lower bound.",
        ]
    return "\n".join(lines) + "\n"


def machine(record: dict) -> str:
    """``2 CPUs``, or ``16 CPUs, 1 GPU (NVIDIA H200)`` where the invocation saw GPUs."""
    cpus, names = f"{record.get('cpus', '?')} CPUs", record.get("gpus") or []
    if not names:
        return cpus
    kinds = ", ".join(sorted(set(names)))
    return f"{cpus}, {len(names)} GPU{'s' if len(names) > 1 else ''} ({kinds})"


def _or_dash(value: object) -> str:
    return "—" if value is None else str(value)
