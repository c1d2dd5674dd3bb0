"""Where the methods' per-step time goes: each hook alone, with its data in cache or not.

Each method (as configured by default, state filled as in ``bench_methods.py``) runs its
``on_before_optimizer_step`` on the full model's gradients, timed alone: ``warm`` right after an
untimed call on the same tensors (what fits stays in the caches), ``cold`` first writes a 96 MB
buffer so every array comes from memory, as in training, where the forward/backward and Adam
passes evict them. A
plain copy of the weights into the gradients gives the machine's memory bandwidth, and the
sticky gate without its exponential (``sticky_no_exp``) the share of the arithmetic. Prints and
writes ``benchmarks/results/kernels.json``.

    python benchmarks/bench_kernels.py [--repeats 40] [--threads N]
"""

from __future__ import annotations

import os

os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")  # a compile pool steals the 2 cores

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_methods import prepare  # noqa: E402

from cl_attractors.io import write_json  # noqa: E402
from cl_attractors.methods import load_method  # noqa: E402
from cl_attractors.methods.base import CLMethod  # noqa: E402
from cl_attractors.methods.formulas import Dip  # noqa: E402
from cl_attractors.train.module import CLModule  # noqa: E402
from cl_attractors.train.networks import MLP  # noqa: E402


def hook_of(method: CLMethod) -> Callable[[], None]:
    """The method's pre-step hook on a full model with random gradients."""
    module = CLModule(MLP(784, [2000], 10), method=method)
    prepare(module)
    for p in module.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    return lambda: method.on_before_optimizer_step(module.context, optimizer)


def plain_passes() -> dict[str, Callable[[], None]]:
    """A copy (the bandwidth reference) and the sticky gate with f's exponential left out."""
    module = CLModule(MLP(784, [2000], 10))
    grads = [torch.randn_like(p) for p in module.parameters()]
    params = [p.detach() for p in module.parameters()]
    dip = Dip(a1=0.279, lam=4.12, gamma=4.70, f_min=0.0)

    def no_exp(gs: list[torch.Tensor], ws: list[torch.Tensor]) -> None:
        for g, w in zip(gs, ws):
            d = w - dip.a1
            g.copy_(torch.where(d * g > 0, g, g * (dip.lam - dip.lam * d * d)))

    fused = torch.compile(no_exp, dynamic=False, options={"compile_threads": 1})
    return {
        "copy": lambda: torch._foreach_copy_(grads, params),
        "sticky_no_exp": lambda: fused(grads, params),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with torch.no_grad():
        runs = {
            "sticky": hook_of(load_method(ROOT / "configs/method/sticky.yaml", stats_every=10**9)),
            "ewc_9_tasks": hook_of(load_method(ROOT / "configs/method/ewc.yaml")),
            "si": hook_of(load_method(ROOT / "configs/method/si.yaml")),
            **plain_passes(),
        }
        evict = torch.empty(24 * 2**20)  # 96 MB: more than the last-level cache
        for run in runs.values():
            run()  # compiles
        times: dict[str, dict[str, list[float]]] = {n: {"warm": [], "cold": []} for n in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                for state in ("warm", "cold"):
                    if state == "cold":
                        evict.fill_(1.0)
                    else:
                        run()  # brings this variant's arrays into the caches
                    t0 = time.perf_counter()
                    run()
                    times[name][state].append((time.perf_counter() - t0) * 1e3)
    ms = {n: {s: round(statistics.median(v), 3) for s, v in t.items()} for n, t in times.items()}
    copy_bytes = 2 * sum(p.numel() for p in CLModule(MLP(784, [2000], 10)).parameters()) * 4
    result = {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "repeats": args.repeats,
        "ms": ms,
        "bandwidth_gb_s": {s: round(copy_bytes / ms["copy"][s] / 1e6, 1) for s in ("warm", "cold")},
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))
    write_json(ROOT / "benchmarks" / "results" / "kernels.json", result)


if __name__ == "__main__":
    main()
