"""``cli.py experiment`` (run a grid, then report) and ``cli.py report`` (re-render only).

    python cli.py experiment --config configs/grid/fig2.yaml [--seeds 0 1 2] [--workers N]
        [--workers-per-gpu K] [--scheduler tcp://HOST:8786] [--replicas R|auto]
        [--variants control sticky] [--set VARIANT:key=value ...] [--out_dir DIR]
        [--results_dir DIR | --publish] [fit overrides ...]
    python cli.py report --config configs/grid/fig2.yaml

Each run is a normal ``fit`` in ``<out_dir>/<variant>/seed_<s>`` (each seed sets both
``--seed_everything`` and ``--data.seed``: new task permutations per seed). Unknown arguments
are fit overrides passed to every run; ``--set`` gives one variant an argument. An invocation
that changes the config's protocol renders under ``<out_dir>/results/``
(:mod:`cl_attractors.commands.grid_args`). Complete runs are skipped, interrupted ones resume from
their last checkpoint, failed ones are reported (exit status 1) without stopping the others.
Runs go to the local pool (``grid/runner.py``), or with ``--scheduler`` to a Dask cluster
(``grid/cluster.py``, docs/distributed.md), or with ``--replicas`` R at a time as replica groups,
one process each (``grid/replicas.py``, docs/performance.md).
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cl_attractors.commands.grid_args import (
    ARGS_FILE,
    RECORD_FILE,
    check_reuse,
    grid_parser,
    grid_spec,
    record,
    recorded_args,
)
from cl_attractors.errors import ConfigError, one_line
from cl_attractors.grid.cluster import DaskRunner, check_address
from cl_attractors.grid.replicas import ReplicaRunner, Sizer, parse_replicas
from cl_attractors.grid.runner import GridRunner, gpu_slots
from cl_attractors.grid.spec import ExperimentSpec, Run, default_workers
from cl_attractors.io import write_json
from cl_attractors.paths import prune_task_checkpoints
from cl_attractors.report.provenance import code_version, finish_invocation, start_invocation
from cl_attractors.report.render import render
from cl_attractors.runs import GRID_FILE

__all__ = ["ARGS_FILE", "main", "report_main", "run_experiment"]
DESCRIPTION = (
    "Run a grid of fits (a paper figure: variants x seeds x sweep values) in parallel, skipping "
    "finished runs and resuming interrupted ones, then render its tables, figure and results.md "
    "and print the final table."
)
REPORT_DESCRIPTION = "Re-render a grid's tables, figure and results.md from its saved runs only."
MAX_WORKERS = 4096  # parallel fits on one machine; more is a typo (and memory for nothing)
Probe = Callable[[list[str]], object]  # builds a fit from its arguments without training


def probe_variants(spec: ExperimentSpec, extra: list[str], probe: Probe) -> None:
    """Build each variant's first run without training (``probe``), before any run starts: a
    refused fit argument stops the command with one line naming the variant."""
    seen: set[str] = set()
    for run in spec.runs(extra):
        if run.variant in seen:
            continue
        seen.add(run.variant)
        args = list(run.args)
        i = args.index("--run_dir")
        try:
            probe(args[1:i] + args[i + 2 :])
        except ConfigError as err:
            raise ConfigError(f"{one_line(err)} (in the fit arguments of variants.{run.variant})") from None


def local_slots(workers: int | None, per_gpu: int | None) -> list[int | None]:
    """The local pool's worker slots (see :func:`gpu_slots`) from --workers / --workers-per-gpu."""
    n_workers, gpus = default_workers()
    for flag, value in (("--workers", workers), ("--workers-per-gpu", per_gpu)):
        if value is not None and not 1 <= value <= MAX_WORKERS:
            raise ConfigError(f"{flag} {value} is not allowed; use an integer in [1, {MAX_WORKERS}]")
    if per_gpu is None:
        return gpu_slots(gpus, workers or n_workers)
    if workers is not None:
        raise ConfigError("--workers with --workers-per-gpu is not allowed; use one of them")
    if not gpus:
        raise ConfigError(f"--workers-per-gpu {per_gpu} is not allowed: no GPU is visible; use --workers N")
    return gpu_slots(gpus, 0, per_gpu)


def make_runner(
    spec: ExperimentSpec,
    todo: list[Run],
    workers: int | None,
    per_gpu: int | None,
    scheduler: str | None,
    replicas: int | str | None = None,
    sizer: Sizer | None = None,
) -> GridRunner | DaskRunner | ReplicaRunner:
    """The local pool, the replica groups, or the Dask cluster at ``scheduler`` once it has passed
    its checks (it is contacted only when there is something ``todo``)."""
    if replicas is not None:
        if scheduler is not None:
            raise ConfigError("--replicas with --scheduler is not allowed; use one of them")
        size, alone = group_size(replicas, todo, sizer)
        return ReplicaRunner(local_slots(workers, per_gpu), size, spec.out_dir / "groups", alone)
    if scheduler is None:  # no more workers than runs to do: bounded before they are allocated
        return GridRunner(local_slots(workers, per_gpu)[: max(len(todo), 1)])
    if workers is not None or per_gpu is not None:
        raise ConfigError(
            "--workers/--workers-per-gpu with --scheduler is not allowed; the cluster's worker threads "
            "set the parallel runs (GPUs: docs/distributed.md)"
        )
    check_address(scheduler)
    if not todo:
        return GridRunner([None])
    cwd = Path.cwd()
    return DaskRunner(scheduler, cwd, spec.out_dir, [cwd / str(spec.base)])


def group_size(replicas: int | str, todo: list[Run], sizer: Sizer | None) -> tuple[int, set[str]]:
    """``--replicas``: R, checked against the device's memory, or ``auto``: the most that fit
    (of the variant that fits fewest); and the variants whose runs have no replica form (their
    method or network: ``sizer`` says 0), trained one per process."""
    firsts = {run.variant: run for run in reversed(todo)}  # each variant's sizes are its own
    sizes = {variant: sizer(list(run.args)) for variant, run in firsts.items()} if sizer else {}
    alone = {variant for variant, most in sizes.items() if most == 0}
    batched = [most for most in sizes.values() if most]
    if not batched:
        return (replicas if isinstance(replicas, int) else 1), alone
    most = min(batched)
    if replicas == "auto":
        return most, alone
    assert isinstance(replicas, int)
    if replicas > most:
        raise ConfigError(
            f"--replicas {replicas} is not allowed; a group of {replicas} does not fit the device's free "
            f"memory (at most {most} do); use --replicas {most} or auto"
        )
    return replicas, alone


def run_experiment(
    spec: ExperimentSpec,
    extra: list[str],
    workers: int | None,
    per_gpu: int | None = None,
    scheduler: str | None = None,
    invocation: tuple[Sequence[str], float] | None = None,
    recorded: dict[str, Any] | None = None,
    replicas: int | str | None = None,
    sizer: Sizer | None = None,
) -> int:
    """Run the grid's unfinished runs; returns the number of failed runs. With ``invocation`` (the
    command's arguments and start time), it is recorded before the first run and ended after the
    last, in the grid's provenance; ``recorded`` (its command-line changes) is kept for ``report``."""
    runs = spec.runs(extra)
    check_reuse(runs)
    if not spec.keep_task_checkpoints:  # finished before pruning existed, or by another runner
        freed = sum(prune_task_checkpoints(r.run_dir) for r in runs if r.complete)
        if freed:
            print(
                f"{spec.name}: finished runs' earlier task checkpoints deleted ({freed / 2**30:.1f} GiB)",
                file=sys.stderr,
            )
    # seed by seed (every variant of the first seed, then the next): an interrupted grid leaves
    # whole seeds, which pair across variants
    todo = sorted((r for r in runs if not r.complete), key=lambda r: spec.seeds.index(r.seed))
    runner = make_runner(spec, todo, workers, per_gpu, scheduler, replicas, sizer)
    write_json(spec.out_dir / RECORD_FILE, recorded or {"config": spec.name, "extra": extra})
    code = code_version()
    for run in todo:
        write_json(run.run_dir / ARGS_FILE, list(run.args))
        write_json(run.run_dir / GRID_FILE, {"grid": spec.name, "variant": run.variant, "code": code})
    print(
        f"{spec.name}: {len(runs)} runs, {len(runs) - len(todo)} already complete, "
        f"{len(todo)} to run with {runner.describe(len(todo))}",
        file=sys.stderr,
    )
    start = time.monotonic()
    record = start_invocation(spec, *invocation) if invocation else None
    outcomes = runner.run(todo, desc=spec.name)
    failed = [o for o in outcomes if o.returncode]
    print(
        f"{spec.name}: {len(outcomes) - len(failed)} runs finished, {len(failed)} failed, "
        f"wall time {time.monotonic() - start:.0f} s",
        file=sys.stderr,
    )
    for o in failed:
        print(f"  failed: {o.run.run_dir} (log: {o.run.run_dir / 'run.log'})", file=sys.stderr)
    if record:
        finish_invocation(spec, record, len(failed))
    return len(failed)


def main(argv: Sequence[str], probe: Probe | None = None, sizer: Sizer | None = None) -> None:
    """``cli.py experiment``: validate (and with ``probe``, build each variant's fit once), run
    what is missing, aggregate and render."""
    started = time.time()
    parser = grid_parser("cli.py experiment", running=True, description=DESCRIPTION)
    args, extra = parser.parse_known_args(list(argv))
    spec = grid_spec(args, extra)
    replicas = parse_replicas(args.replicas)
    if probe is not None and spec.needs_runs:
        probe_variants(spec, extra, probe)
    where_results(spec)
    try:
        failed = (
            run_experiment(
                spec,
                extra,
                args.workers,
                args.workers_per_gpu,
                args.scheduler,
                (argv, started),
                record(spec, args, extra),
                replicas,
                sizer,
            )
            if spec.needs_runs
            else 0
        )
    except KeyboardInterrupt:
        print(f"\nresume with: python cli.py experiment {shlex.join(argv)}", file=sys.stderr)
        raise
    path = render(spec, spec.runs(extra) if spec.needs_runs else [])
    print(f"results: {path}")
    if failed:
        raise SystemExit(1)


def where_results(spec: ExperimentSpec) -> None:
    """Say where an invocation that changes the config's protocol writes its tables instead."""
    if spec.changes:
        print(
            f"{spec.name}: this invocation changes the config's protocol ({'; '.join(spec.changes)}): "
            f"tables and figures go to {spec.results_dir}",
            file=sys.stderr,
        )


def report_main(argv: Sequence[str]) -> None:
    """``cli.py report``: re-render the tables, figures and results.md from finished runs only
    (with the fit overrides, seeds, variants and ``--set`` the last experiment of this out_dir
    recorded, unless the command line gives its own)."""
    parser = grid_parser("cli.py report", running=False, description=REPORT_DESCRIPTION)
    args, extra = parser.parse_known_args(list(argv))
    extra = recorded_args(args, extra)
    spec = grid_spec(args, extra)
    where_results(spec)
    print(f"results: {render(spec, spec.runs(extra) if spec.needs_runs else [])}")
