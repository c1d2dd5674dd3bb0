"""Once-per-task cost of the importance estimators: the Linear-layer identity against the definition.

EWC's Fisher (``empirical``: 1000 samples; ``true``: 1000 samples x 10 classes) and MAS's importance
(1000 samples) on the paper's 784-2000-10 MLP, each computed both ways
(``cl_attractors.methods.importance``: ``fast=True``, one matrix product per layer; ``fast=False``,
the definition, ``vmap(grad)`` over chunks of 32 per-sample gradients), interleaved in
``--repeats`` rounds; the ratio is the median over rounds of definition / fast in the same round.
Also the largest relative difference between the two results. Prints and writes
``benchmarks/results/importance.json``.

    python benchmarks/bench_importance.py [--repeats 3] [--samples 1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cl_attractors.io import write_json
from cl_attractors.methods.importance import fisher_diagonal, mas_importance
from cl_attractors.train.networks import MLP

Estimate = Callable[[bool], dict[str, torch.Tensor]]


def timed(estimate: Estimate, fast: bool) -> tuple[float, dict[str, torch.Tensor]]:
    start = time.perf_counter()
    out = estimate(fast)
    return time.perf_counter() - start, out


def max_rel_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max() / b[k].abs().max().clamp_min(1e-30)) for k in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = MLP(784, [2000], 10)
    params: dict[str, torch.Tensor] = dict(net.named_parameters())
    x, y = torch.rand(args.samples, 784), torch.randint(0, 10, (args.samples,))
    cases: dict[str, Estimate] = {
        "ewc_empirical": lambda fast: fisher_diagonal(net, params, x, y, "empirical", fast=fast),
        "ewc_true": lambda fast: fisher_diagonal(net, params, x, y, "true", fast=fast),
        "mas": lambda fast: mas_importance(net, params, x, fast=fast),
    }
    results = {}
    for name, estimate in cases.items():
        fast_s, slow_s, ratios, diff = [], [], [], 0.0
        for _ in range(args.repeats):
            t_fast, a = timed(estimate, True)
            t_slow, b = timed(estimate, False)
            fast_s.append(t_fast)
            slow_s.append(t_slow)
            ratios.append(t_slow / t_fast)
            diff = max(diff, max_rel_diff(a, b))
        results[name] = {
            "fast_s": statistics.median(fast_s),
            "definition_s": statistics.median(slow_s),
            "speedup": statistics.median(ratios),
            "max_rel_diff": diff,
        }
        r = results[name]
        print(
            f"{name:14s} fast {r['fast_s']:.3f} s  definition {r['definition_s']:.2f} s"
            f"  speed-up {r['speedup']:.0f}x  max rel. diff {diff:.1e}",
            flush=True,
        )
    out = {"samples": args.samples, "threads": args.threads, "repeats": args.repeats, "results": results}
    write_json(Path(__file__).parent / "results" / "importance.json", out)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
