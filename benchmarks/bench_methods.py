"""Per-step cost of the CL methods relative to vanilla, measured in one run.

Each variant is a ``CLModule`` (784-2000-10 MLP, fused Adam lr 1e-4) trained on fixed random
batches of 50 in a plain loop: forward, backward, ``on_before_optimizer_step``, Adam step,
``on_after_optimizer_step``. Variants run interleaved in rounds of ``--steps`` steps; a variant's
ratio is the median over rounds of its time over vanilla's time in the same round (robust to
the noise of a shared machine). EWC runs with 9 consolidated tasks, SI with 1 (so that both
pulls are on). Plain names are the methods as configured (``compile: auto``: fused
``torch.compile`` kernels on this model; compile time excluded, reported as warm-up);
``_eager`` variants use the eager in-place kernels (EWC's default; its ``_compiled`` variant
fuses the pull). ``grad_pass_floor`` is one in-place pass over the gradients: the least any
hook that edits ``p.grad`` costs on this machine's memory bandwidth. Prints and writes
``benchmarks/results/methods.json``.

    python benchmarks/bench_methods.py [--rounds 20] [--steps 20] [--no-eager] [--threads N]
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
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cl_attractors.io import write_json  # noqa: E402
from cl_attractors.methods import load_method  # noqa: E402
from cl_attractors.methods.base import CLMethod, MethodContext, Vanilla  # noqa: E402
from cl_attractors.methods.ewc import EWC  # noqa: E402
from cl_attractors.methods.si import SI  # noqa: E402
from cl_attractors.train.module import CLModule  # noqa: E402
from cl_attractors.train.networks import MLP  # noqa: E402

TARGETS = {"sticky": 1.10, "ewc_9_tasks": 1.10, "si": 1.15}


def prepare(module: CLModule) -> None:
    """Fill EWC/SI state so the per-step pull runs (random Fisher / importance)."""
    method = module.method
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        if isinstance(method, EWC):
            for _ in range(9):
                method._consolidate([torch.rand(p.shape, generator=gen) * 1e-3 for p in method.targets])
            method.tasks_consolidated = 9
        if isinstance(method, SI):
            for imp, anchor, p in zip(
                method.per_target("importance"), method.per_target("anchor_sum"), method.targets
            ):
                imp.copy_(torch.rand(p.shape, generator=gen))
                torch.mul(imp, p, out=anchor)
            method.tasks_consolidated = 1


class GradPassFloor(CLMethod):
    """Not a method: one in-place pass over the gradients (``g *= 1``), the least any method
    that edits ``p.grad`` in the hook can cost. Its ratio is the memory-bandwidth floor."""

    def on_before_optimizer_step(self, ctx: MethodContext, optimizer: torch.optim.Optimizer) -> None:
        torch._foreach_mul_([p.grad for p in self.targets if p.grad is not None], 1.0)


def make_step(module: CLModule, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> Callable[[int], None]:
    opt = torch.optim.Adam(module.parameters(), lr=1e-4, fused=True)
    method = module.method

    def run(steps: int) -> None:
        for i in range(steps):
            x, y = batches[i % len(batches)]
            loss = F.cross_entropy(module.net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            method.on_before_optimizer_step(module.context, opt)
            opt.step()
            method.on_after_optimizer_step(module.context, opt)

    return run


def variants(eager: bool) -> dict[str, Callable[[], CLMethod]]:
    """The methods as configured by default, plus (unless ``eager`` is False) each with the
    other kind of kernel."""

    def paper(name: str, **overrides: object) -> Callable[[], CLMethod]:
        return partial(load_method, ROOT / "configs" / "method" / f"{name}.yaml", **overrides)

    out: dict[str, Callable[[], CLMethod]] = {
        "vanilla": Vanilla,
        "grad_pass_floor": GradPassFloor,
        "sticky": paper("sticky"),
        "sticky_update": paper("sticky", apply_to="update", l1_apply_to="update"),
        "ewc_9_tasks": paper("ewc"),
        "si": paper("si"),
    }
    if eager:
        out |= {
            "sticky_eager": paper("sticky", compile=False),
            "sticky_update_eager": paper("sticky", apply_to="update", l1_apply_to="update", compile=False),
            "si_eager": paper("si", compile=False),
            "ewc_9_tasks_compiled": paper("ewc", compile=True),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-eager", action="store_true", help="only the default kernels")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    batches = [
        (torch.rand(50, 784, generator=gen), torch.randint(0, 10, (50,), generator=gen)) for _ in range(8)
    ]
    load_before = os.getloadavg()[0]
    runs, compile_s = {}, {}
    for name, factory in variants(not args.no_eager).items():
        torch.manual_seed(0)
        module = CLModule(MLP(784, [2000], 10), method=factory())
        prepare(module)
        runs[name] = make_step(module, batches)
        t0 = time.perf_counter()
        runs[name](3)  # warm-up (compiles the compiled variants)
        compile_s[name] = round(time.perf_counter() - t0, 2)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run(args.steps)
            times[name].append((time.perf_counter() - t0) / args.steps * 1e3)
    ratios = {
        name: statistics.median(t / v for t, v in zip(ts, times["vanilla"])) for name, ts in times.items()
    }
    result = {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch": 50,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "vanilla_step_ms": statistics.median(times["vanilla"]),
        "step_ms": {n: round(statistics.median(t), 3) for n, t in times.items()},
        "ratio_to_vanilla": {n: round(r, 3) for n, r in ratios.items()},
        "warmup_s": compile_s,
        "targets": TARGETS,
        # 1-min load average: ratios are only meaningful when it stays below the core count
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result, indent=2))
    write_json(ROOT / "benchmarks" / "results" / "methods.json", result)


if __name__ == "__main__":
    main()
