"""Grid throughput: runs/hour of the local pool and of the Dask backend on the same tiny grid, in one run.

Each repeat runs the grid once with the local pool (``GridRunner``) and once with ``DaskRunner`` on
a fresh ``LocalCluster`` of as many one-thread worker processes, in alternating order (this shared
machine's speed drifts). The Dask side's one-off start-up is timed apart from its runs: the
cluster's start, then the client's connection and the worker probes (which import the project,
and with it torch, on each worker). Overhead per run = the Dask runs' wall time over the pool's
(a ratio), and the seconds it adds per run; medians over ``--repeats``. Prints and writes
``benchmarks/results/grid.json``.

    python benchmarks/bench_grid.py [--runs 8] [--workers 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"  # the Dask worker processes inherit it, like the pool's fits
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cl_attractors.grid.cluster import DaskRunner
from cl_attractors.grid.runner import GridRunner, gpu_slots
from cl_attractors.grid.spec import ExperimentSpec
from cl_attractors.io import write_json

ROOT = Path(__file__).resolve().parents[1]
TINY = [  # a few seconds of training: the per-run costs that are not training show
    *("--data.source", "synthetic", "--data.synthetic_size", "256", "--data.num_tasks", "2"),
    *("--data.batch_size", "32", "--model.net.hidden_sizes", "[16]", "--tasks.heatmaps", "false"),
    *("--model.optimizer.init_args.fused", "false", "--trainer.accelerator", "cpu"),
]


def grid(out_dir: Path, runs: int) -> ExperimentSpec:
    """``runs`` tiny fits: two variants x ``runs // 2`` seeds."""
    return ExperimentSpec(
        name="bench",
        kind="curves",
        base=str(ROOT / "configs/experiment/vanilla.yaml"),
        seeds=list(range(runs // 2)),
        variants={
            "a": ["--model.optimizer.init_args.lr", "0.01"],
            "b": ["--model.optimizer.init_args.lr", "0.003"],
        },
        overrides=TINY,
        out_dir=out_dir,
    )


def worker_rss_mb() -> float:
    """On a Dask worker: its resident memory."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def run_pool(out_dir: Path, runs: int, workers: int) -> dict[str, float]:
    todo = grid(out_dir, runs).runs()
    start = time.perf_counter()
    outcomes = GridRunner(gpu_slots(None, workers)).run(todo, desc="pool")
    assert not [o for o in outcomes if o.returncode], "a pool run failed"
    return {"runs_s": time.perf_counter() - start}


def run_dask(out_dir: Path, runs: int, workers: int) -> dict[str, float]:
    from distributed import LocalCluster

    spec = grid(out_dir, runs)
    todo = spec.runs()
    start = time.perf_counter()
    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        started = time.perf_counter()
        runner = DaskRunner(cluster.scheduler_address, Path.cwd(), out_dir, [Path(str(spec.base))])
        probed = time.perf_counter()
        rss = runner.client.run(worker_rss_mb)
        outcomes = runner.run(todo, desc="dask")
        done = time.perf_counter()
    assert not [o for o in outcomes if o.returncode], "a Dask run failed"
    return {
        "cluster_start_s": started - start,
        "connect_probe_s": probed - started,
        "runs_s": done - probed,
        "worker_rss_mb": statistics.mean(rss.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="runs in the grid (even)")
    parser.add_argument("--workers", type=int, default=2, help="pool workers = Dask worker processes")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    samples: dict[str, list[dict[str, float]]] = {"pool": [], "dask": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            order = ("pool", "dask") if i % 2 == 0 else ("dask", "pool")
            for name in order:
                out = Path(tmp) / f"{name}{i}"
                run = run_pool if name == "pool" else run_dask
                samples[name].append(run(out, args.runs, args.workers))
                shutil.rmtree(out)
    med = {
        name: {k: statistics.median(s[k] for s in runs) for k in runs[0]} for name, runs in samples.items()
    }
    pool, dask = med["pool"], med["dask"]
    n = args.runs // 2 * 2
    startup = dask["cluster_start_s"] + dask["connect_probe_s"]
    result = {
        "grid": f"{n} tiny synthetic fits (2 variants x {n // 2} seeds), {args.workers} one-thread workers",
        "cores": len(os.sched_getaffinity(0)),
        "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "repeats": args.repeats,
        "pool": {
            "runs_per_hour": round(3600 * n / pool["runs_s"]),
            "s_per_run": round(pool["runs_s"] / n, 2),
        },
        "dask_localcluster": {
            "runs_per_hour": round(3600 * n / dask["runs_s"]),
            "runs_per_hour_with_startup": round(3600 * n / (dask["runs_s"] + startup)),
            "s_per_run": round(dask["runs_s"] / n, 2),
            "cluster_start_s": round(dask["cluster_start_s"], 2),
            "connect_probe_s": round(dask["connect_probe_s"], 2),
            "worker_rss_mb_after_probe": round(dask["worker_rss_mb"]),
        },
        "overhead_per_run_ratio": round(dask["runs_s"] / pool["runs_s"], 3),
        "overhead_per_run_s": round((dask["runs_s"] - pool["runs_s"]) / n, 2),
        "samples": samples,
    }
    print(json.dumps(result, indent=2))
    write_json(Path(__file__).parent / "results" / "grid.json", result)


if __name__ == "__main__":
    main()
