"""Replica groups against the process pool: runs per hour for R in {1, 2, 4, 8, ...} on one machine.

The same N runs (one variant, N seeds) are trained by the local pool (``--workers`` one-thread
``fit`` processes) and, for each R, as replica groups (``experiment --replicas R``: N / R groups,
``--workers`` group processes at once, each one thread on a CPU, or sharing the GPU). The protocol is
the paper's network, batch, optimizer and method on the embedded MNIST, shortened (``--tasks``
tasks of ``--train_size`` examples; every task evaluated on the 10k test split after every task)
so that a CPU measures it in minutes; process start-up and data loading count, as they do in a
grid. Where there is a GPU (``--accelerator gpu``), ``nvidia-smi`` is sampled every half second:
mean utilisation and peak memory of each phase. Prints and writes
``benchmarks/results/replicas[_<method>][_<device>].json`` (no method part for vanilla).

    OMP_NUM_THREADS=1 python benchmarks/bench_replicas.py [--replicas 1 2 4 8] [--runs 8]
        [--workers 1] [--tasks 3] [--train_size 2000] [--method vanilla] [--accelerator cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cl_attractors.grid.replicas import ReplicaRunner
from cl_attractors.grid.runner import GridRunner, gpu_slots
from cl_attractors.grid.spec import ExperimentSpec
from cl_attractors.io import write_json

ROOT = Path(__file__).resolve().parents[1]


def grid(out_dir: Path, args: argparse.Namespace) -> ExperimentSpec:
    """``--runs`` seeds of the paper's network with ``--method``, on the shortened protocol."""
    return ExperimentSpec(
        name="bench",
        kind="curves",
        base=str(ROOT / "configs/experiment/vanilla.yaml"),
        seeds=list(range(args.runs)),
        variants={"run": ["--model.method", str(ROOT / f"configs/method/{args.method}.yaml")]},
        overrides=[
            *("--data.num_tasks", str(args.tasks), "--data.train_size", str(args.train_size)),
            *("--trainer.accelerator", args.accelerator, "--tasks.heatmaps", "false"),
        ],
        out_dir=out_dir,
    )


class GpuSampler:
    """``nvidia-smi`` every half second in a thread: utilisation (%) and memory used (MiB)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
        while not self.stop.wait(0.5):
            try:
                out = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout
                util, mem = out.strip().splitlines()[0].split(",")
                self.samples.append((float(util), float(mem)))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return

    def __enter__(self) -> GpuSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {}
        return {
            "gpu_util_mean_pct": round(statistics.mean(u for u, _ in self.samples), 1),
            "gpu_memory_peak_mib": max(m for _, m in self.samples),
        }


def measure(name: str, runner: Any, out_dir: Path, args: argparse.Namespace, gpu: bool) -> dict[str, Any]:
    todo = grid(out_dir, args).runs()
    sampler = GpuSampler() if gpu else None
    start = time.perf_counter()
    if sampler:
        sampler.__enter__()
    try:
        outcomes = runner.run(todo, desc=name)
    finally:
        if sampler:
            sampler.__exit__()
    seconds = time.perf_counter() - start
    failed = [o.run.run_dir for o in outcomes if o.returncode]
    if failed:
        raise SystemExit(f"{name}: runs failed: {failed}")
    out = {"seconds": round(seconds, 1), "runs_per_hour": round(3600 * len(todo) / seconds, 1)}
    return out | (sampler.summary() if sampler else {})


def accuracies(out_dir: Path) -> dict[str, float]:
    """Each run's final average accuracy (the pool's and a group's must agree run by run)."""
    return {
        p.parent.name: json.loads(p.read_text())["avg_acc_seen"][-1]
        for p in sorted(out_dir.glob("run/seed_*/metrics.json"))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--runs", type=int, default=8, help="runs of each phase (a multiple of every R)")
    parser.add_argument("--workers", type=int, default=1, help="processes at once (pool fits or groups)")
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--train_size", type=int, default=2000)
    parser.add_argument("--method", default="vanilla", help="a configs/method/ name")
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args()
    gpu = args.accelerator != "cpu" and shutil.which("nvidia-smi") is not None
    slots = gpu_slots([0] if gpu else None, args.workers)
    load_before = os.getloadavg()[0]
    phases: dict[str, dict[str, Any]] = {}
    agree: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        pool_dir = Path(tmp) / "pool"
        phases["pool"] = measure("pool", GridRunner(slots), pool_dir, args, gpu)
        reference = accuracies(pool_dir)
        for r in args.replicas:
            out = Path(tmp) / f"replicas{r}"
            runner = ReplicaRunner(slots, r, out / "groups")
            phases[f"replicas_{r}"] = measure(f"R={r}", runner, out, args, gpu)
            ours = accuracies(out)
            agree[f"replicas_{r}"] = max(abs(ours[k] - reference[k]) for k in reference)
            shutil.rmtree(out)
    pool_rate = phases["pool"]["runs_per_hour"]
    device = "gpu" if gpu else "cpu"
    result = {
        "protocol": (
            f"{args.runs} runs of configs/method/{args.method}.yaml, 784-2000-10, batch 50, Adam 1e-4, "
            f"embedded MNIST: {args.tasks} tasks of {args.train_size} training examples, every task "
            "evaluated on the 10k test split after every task; start-up and data loading included"
        ),
        "device": device,
        "cores": len(os.sched_getaffinity(0)),
        "workers": args.workers,
        "threads_per_process": int(os.environ["OMP_NUM_THREADS"]),
        "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "phases": phases,
        "speedup_vs_pool": {k: round(v["runs_per_hour"] / pool_rate, 2) for k, v in phases.items()},
        "max_final_acc_difference_vs_pool": agree,
    }
    print(json.dumps(result, indent=2))
    method = "" if args.method == "vanilla" else f"_{args.method}"
    name = f"replicas{method}.json" if device == "cpu" else f"replicas{method}_{device}.json"
    write_json(Path(__file__).parent / "results" / name, result)


if __name__ == "__main__":
    main()
