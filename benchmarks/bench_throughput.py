"""Training throughput of the Lightning fit versus a plain-PyTorch loop, measured in one run.

Both train the paper's 784-2000-10 MLP on one full permuted-MNIST task (embedded data, batch 50,
fused Adam lr 1e-4, batches by tensor slicing). Inside each Lightning fit, every ``--window``
Lightning steps are followed by as many plain-loop steps on a separate model, so both see the
same machine state (this shared machine's speed drifts by 1.5x within minutes). Throughput =
batch / median step time (a Lightning step is timed start to next start: all of Lightning's
per-step overhead is in); the ratio is the median over ``--repeats`` fits. It is measured for each
``--steps_per_chunk`` value (mini-batches per Lightning training batch: 1 is one mini-batch per
Lightning batch; 25 is the default, what chunking buys). Prints and writes
``benchmarks/results/throughput.json``: samples/s of each, their ratio, and the fraction of the
float32 matmul ceiling (measured here at the training shapes) that each reaches.

    python benchmarks/bench_throughput.py [--repeats 3] [--train_size 50000] [--steps_per_chunk 1 25]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from callbacks.task_sequence import TaskSequence
from cl_attractors.io import write_json
from cl_attractors.train.data import TaskData
from cl_attractors.train.families import Permuted
from cl_attractors.train.module import CLModule
from cl_attractors.train.networks import MLP

BATCH = 50


class PlainLoop:
    """The reference: the same model and optimizer in a bare PyTorch loop over the same batches."""

    def __init__(self, dm: TaskData) -> None:
        torch.manual_seed(0)
        self.net = MLP(784, [2000], 10)
        self.opt = adam(self.net.parameters())
        self.batches = dm.train_batches(0)
        self.it = iter(self.batches)

    def steps(self, n: int) -> list[float]:
        """Run ``n`` steps; the duration of each."""
        times = []
        for _ in range(n):
            batch = next(self.it, None)
            if batch is None:
                self.it = iter(self.batches)
                batch = next(self.it)
            t0 = time.perf_counter()
            loss = F.cross_entropy(self.net(batch[0]), batch[1])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            times.append(time.perf_counter() - t0)
        return times


class Interleaved(pl.Callback):
    """Times every Lightning batch (start to next start, all overhead included) and, after every
    ``window`` of them, runs as many plain-loop steps: both see the same machine state."""

    def __init__(self, plain: PlainLoop, window: int) -> None:
        self.plain, self.window = plain, window
        self.light: list[float] = []
        self.reference: list[float] = []
        self.last: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.light.append(now - self.last)
        self.last = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % self.window == 0:
            self.reference += self.plain.steps(self.window * len(batch))
            self.last = None  # the next interval would include the plain window


def adam(params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-4, fused=True)


def interleaved_fit(dm: TaskData, window: int) -> tuple[float, float]:
    """samples/s of (plain loop, Lightning fit) from median step times, interleaved in windows."""
    timer = Interleaved(PlainLoop(dm), window)
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        default_root_dir=tempfile.mkdtemp(prefix="bench_"),
        enable_model_summary=False,
        enable_progress_bar=False,
        deterministic=True,
        max_epochs=dm.schedule.max_epochs,
        num_sanity_val_steps=0,
        callbacks=[TaskSequence(heatmaps=False), timer],
    )
    trainer.fit(CLModule(MLP(784, [2000], 10), optimizer=adam), datamodule=dm)
    light_step = statistics.median(timer.light) / dm.steps_per_chunk  # a Lightning batch = K steps
    return BATCH / statistics.median(timer.reference), BATCH / light_step


def matmul_ceiling() -> float:
    """GFLOP/s of the three training matmuls of one step (forward, grad input, grad weight)."""
    x, w, g = torch.randn(BATCH, 784), torch.randn(784, 2000), torch.randn(BATCH, 2000)
    for _ in range(20):
        x @ w, g @ w.T, x.T @ g
    n, t0 = 200, time.perf_counter()
    for _ in range(n):
        x @ w, g @ w.T, x.T @ g
    return 3 * 2 * BATCH * 784 * 2000 * n / (time.perf_counter() - t0) / 1e9


def measure(steps_per_chunk: int, repeats: int, train_size: int | None, window: int) -> dict:
    """The ratio of Lightning to plain throughput with chunks of ``steps_per_chunk`` mini-batches."""
    dm = TaskData(
        family=Permuted(),
        num_tasks=1,
        batch_size=BATCH,
        steps_per_chunk=steps_per_chunk,
        train_size=train_size,
    )
    dm.setup()
    # about 50 optimizer steps per window, whatever the chunk
    plain, light = zip(
        *(interleaved_fit(dm, window or max(1, 50 // steps_per_chunk)) for _ in range(repeats))
    )
    ratios = [lt / p for lt, p in zip(light, plain)]
    return {
        "steps_per_chunk": steps_per_chunk,
        "train_samples": dm.num_train,
        "plain_samples_per_s": list(plain),
        "lightning_samples_per_s": list(light),
        "ratio_lightning_over_plain_per_round": ratios,
        "ratio_lightning_over_plain": statistics.median(ratios),
        "plain_median": statistics.median(plain),
        "lightning_median": statistics.median(light),
    }


CEILING_NOTE = (
    "a fraction of the matmul ceiling above 1 means the ceiling was measured while other work "
    "loaded the cores (it is measured once, the training throughput over minutes); the fraction "
    "is left out (null): rerun on a quiet machine"
)


def ceiling_fraction(fraction: float) -> tuple[float | None, bool]:
    """The fraction of the measured matmul ceiling, or None when it is above 1 (impossible on a
    quiet machine: the ceiling was measured under load), with whether it was flagged."""
    return (None, True) if fraction > 1.0 else (fraction, False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train_size", type=int, default=None)
    parser.add_argument("--window", type=int, default=0, help="Lightning batches per window (0: ~50 steps)")
    parser.add_argument(
        "--steps_per_chunk", type=int, nargs="+", default=[1, 25], help="as data.steps_per_chunk"
    )
    args = parser.parse_args()
    runs = [measure(k, args.repeats, args.train_size, args.window) for k in args.steps_per_chunk]
    ceiling = matmul_ceiling()
    flop_per_sample = 3 * 2 * (784 * 2000 + 2000 * 10)
    flagged = False
    for run in runs:
        for name in ("plain", "lightning"):
            fraction = run.pop(f"{name}_median") * flop_per_sample / 1e9 / ceiling
            run[f"{name}_fraction_of_matmul_ceiling"], bad = ceiling_fraction(fraction)
            flagged = flagged or bad
    result = {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "batch_size": BATCH,
        "matmul_ceiling_gflops": ceiling,
        "runs": runs,
    }
    if flagged:
        result["ceiling_note"] = CEILING_NOTE
        print(f"warning: {CEILING_NOTE}", file=sys.stderr)
    print(json.dumps(result, indent=2))
    write_json(Path(__file__).parent / "results" / "throughput.json", result)


if __name__ == "__main__":
    main()
