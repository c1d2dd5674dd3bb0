"""``cli.py merge``: bring a grid's finished runs home from another machine's copy of its out_dir.

    python cli.py merge --config configs/grid/fig4.yaml --from /mnt/gpu-box/runs/fig4
        [--seeds ...] [--variants ...] [--out_dir DIR] [fit overrides ...]

A run made elsewhere (a lent GPU machine, a node without the shared disk) is a directory like any
other. Merging copies each run that is finished there and missing or unfinished here, with its
files' modification times (the provenance counts a run in the invocation during which it
finished), and appends that machine's invocation records that are not here yet. A run finished
here is never replaced, nor one a fit or a grid is running in (both locks are taken for the swap);
a run made with other fit arguments is refused, as ``experiment`` refuses it. Then ``cli.py
report`` renders the whole grid.

The copy is not trusted (:mod:`cl_attractors.transfer`): links are copied only as links inside the
run, anything else refused before a byte is written; each run is copied beside its place here,
verified (metrics.json complete, the accuracy matrix and config.yaml present and readable), then
swapped in atomically, so a merge killed at any moment leaves the local run as it was or the
merged run whole.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from cl_attractors.commands.grid_args import ARGS_FILE, check_reuse, grid_parser, grid_spec, read_json
from cl_attractors.errors import ConfigError
from cl_attractors.grid.spec import ExperimentSpec, Run, is_complete
from cl_attractors.io import read_matrix_csv, read_yaml_mapping, write_json
from cl_attractors.report.provenance import read_records
from cl_attractors.transfer import check_tree, clear_stale, copy_inside, staging_path, swap_in

LOCKS = (".lock", ".fit.lock")  # the grid's and the fit's: held by the machine that ran it


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


def check_copy(run_dir: Path, where: Path) -> None:
    """A finished run's files, whole: metrics.json complete with its curves, the n x n accuracy
    matrix and config.yaml readable (``where`` names the run in the message)."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        n = len(metrics["avg_acc_seen"])
        ok = metrics.get("complete") is True and metrics.get("num_tasks", n) == n > 0
        matrix = read_matrix_csv(run_dir / "accuracy_matrix.csv")
        ok = ok and tuple(matrix.shape) == (n, n)
        read_yaml_mapping(run_dir / "config.yaml", "config.yaml")
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as err:
        raise ConfigError(f"--from: {where} is not a whole finished run ({err}); not merged") from None
    if not ok:
        raise ConfigError(
            f"--from: {where} is not a whole finished run (metrics.json and the matrix disagree)"
        )


@contextmanager
def both_locks(run_dir: Path) -> Iterator[bool]:
    """Hold the grid's and the fit's lock of ``run_dir`` (True), or False when either is held."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        for name in LOCKS:
            handle = stack.enter_context(open(run_dir / name, "a", encoding="utf-8"))
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
        yield True


def merge_one(run: Run, theirs: Path) -> str:
    """Copy ``theirs`` beside ``run``, verify, swap it in, all under both of the run's locks (no
    fit or grid starts meanwhile): "merged", "kept" (finished here) or "running" (locked here)."""
    clear_stale(run.run_dir)
    if run.complete:
        return "kept"
    with both_locks(run.run_dir) as locked:
        if not locked:
            return "running"
        staged = staging_path(run.run_dir)
        try:
            copy_inside(theirs, staged, skip=LOCKS)
            check_copy(staged, theirs)
            write_json(staged / ARGS_FILE, list(run.args))  # this machine's run_dir
            swap_in(staged, run.run_dir)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    return "merged"


def merge_runs(spec: ExperimentSpec, source: Path, extra: list[str]) -> dict[str, int]:
    """Copy ``source``'s finished runs of ``spec`` that are not finished here; counts of what
    was ``merged``, ``kept`` (finished here already), ``running`` (a fit or grid holds it here)."""
    runs = spec.runs(extra)
    check_reuse(runs)
    todo = [(run, source / run.run_dir.relative_to(spec.out_dir)) for run in runs]
    todo = [(run, theirs) for run, theirs in todo if is_complete(theirs)]
    for run, theirs in todo:  # every run, before anything is copied
        _check_same_fit(run, theirs)
        check_tree(theirs, skip=LOCKS)
    counts = {"merged": 0, "kept": 0, "running": 0}
    for run, theirs in todo:
        counts[merge_one(run, theirs)] += 1
    return counts


def merge_records(spec: ExperimentSpec, source: Path) -> int:
    """Append ``source``'s invocation records (every grid's file there) missing here, by id;
    how many were added."""
    added = 0
    for path in sorted(source.glob("*.invocations.json")):
        if path.is_symlink() or not path.is_file():
            raise ConfigError(f"--from: {path} is not a regular file; remove it there")
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
