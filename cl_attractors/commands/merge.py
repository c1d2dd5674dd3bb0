"""``cli.py merge``: bring a grid's finished runs home from another machine's copy of its out_dir.

    python cli.py merge --config configs/grid/fig4.yaml --from /mnt/gpu-box/runs/fig4
        [--seeds ...] [--variants ...] [--out_dir DIR] [fit overrides ...]

A run made elsewhere (a lent GPU machine, a node without the shared disk) is a directory like any
other. Merging copies each run that is finished there and missing or unfinished here, with its
files' modification times (the provenance counts a run in the invocation during which it
finished), and appends that machine's invocation records that are not here yet. A run finished
here is never replaced, nor one a fit is running in; a run made with other fit arguments is
refused, as ``experiment`` refuses it. Then ``cli.py report`` renders the whole grid.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from cl_attractors.commands.grid_args import ARGS_FILE, check_reuse, grid_parser, grid_spec, read_json
from cl_attractors.errors import ConfigError
from cl_attractors.grid.runner import held
from cl_attractors.grid.spec import ExperimentSpec, Run, is_complete
from cl_attractors.io import write_json
from cl_attractors.report.provenance import read_records

LOCKS = (".lock", ".fit.lock")  # held by the machine that ran it; meaningless here


def _without_run_dir(args: Sequence[str]) -> list[str]:
    """Fit arguments without ``--run_dir``'s value (the other machine's out_dir may differ)."""
    args = list(args)
    i = args.index("--run_dir") if "--run_dir" in args else len(args)
    return args[:i] + args[i + 2 :]


def _check_same_fit(run: Run, theirs: Path) -> None:
    recorded = read_json(theirs / ARGS_FILE, None)
    if recorded is None or _without_run_dir(recorded) != _without_run_dir(run.args):
        raise ConfigError(
            f"--from: {theirs} was made with other fit arguments than {run.run_dir} takes "
            f"(see {theirs / ARGS_FILE}); merge with the same --seeds, --variants and overrides"
        )


def merge_runs(spec: ExperimentSpec, source: Path, extra: list[str]) -> dict[str, int]:
    """Copy ``source``'s finished runs of ``spec`` that are not finished here; counts of what
    was ``merged``, ``kept`` (finished here already), ``running`` (a fit holds it here)."""
    runs = spec.runs(extra)
    check_reuse(runs)
    todo = [(run, source / run.run_dir.relative_to(spec.out_dir)) for run in runs]
    todo = [(run, theirs) for run, theirs in todo if is_complete(theirs)]
    for run, theirs in todo:
        _check_same_fit(run, theirs)  # every run, before anything is copied
    counts = {"merged": 0, "kept": 0, "running": 0}
    for run, theirs in todo:
        if run.complete or held(run):
            counts["kept" if run.complete else "running"] += 1
            continue
        shutil.rmtree(run.run_dir, ignore_errors=True)  # unfinished here: theirs replaces it
        shutil.copytree(theirs, run.run_dir, ignore=shutil.ignore_patterns(*LOCKS))
        write_json(run.run_dir / ARGS_FILE, list(run.args))  # this machine's run_dir
        counts["merged"] += 1
    return counts


def merge_records(spec: ExperimentSpec, source: Path) -> int:
    """Append ``source``'s invocation records (every grid's file there) missing here, by id;
    how many were added."""
    added = 0
    for path in sorted(source.glob("*.invocations.json")):
        here = spec.out_dir / path.name
        records = read_records(here)
        known = {r.get("id") for r in records}
        new = [r for r in read_records(path) if r.get("id") not in known]
        if new:
            write_json(here, sorted(records + new, key=lambda r: float(r.get("started_s", 0.0))))
            added += len(new)
    return added


def main(argv: Sequence[str]) -> None:
    parser = grid_parser("cli.py merge", running=False)
    parser.add_argument("--from", dest="source", required=True, help="the other machine's out_dir")
    args, extra = parser.parse_known_args(list(argv))
    source = Path(args.source)
    if not source.is_dir():
        raise ConfigError(f"--from {source} is not a directory; give the other machine's out_dir")
    spec = grid_spec(args, extra)
    if source.resolve() == spec.out_dir.resolve():
        raise ConfigError(f"--from {source} is this grid's own out_dir; give the other machine's copy")
    counts = merge_runs(spec, source, extra)
    added = merge_records(spec, source)
    report = f"python cli.py report --config {args.config}" + (
        f" --out_dir {args.out_dir}" if args.out_dir else ""
    )
    print(
        f"{spec.name}: {counts['merged']} finished runs merged from {source} into {spec.out_dir} "
        f"({counts['kept']} already finished here, {counts['running']} running here: left as they "
        f"are); {added} invocation records added. Next: {report}"
    )
