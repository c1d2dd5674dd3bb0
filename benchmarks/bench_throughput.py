"""Training throughput of the Lightning fit versus a plain-PyTorch loop, measured in one run.

Both train the paper's 784-2000-10 MLP on one full permuted-MNIST task (embedded data, batch 50,
fused Adam lr 1e-4, batches by tensor slicing). Throughput = batch / median step time (every
step's overhead included; the median resists bursts of other jobs on this shared machine); the
two are interleaved over ``--repeats`` rounds and the ratio is the median of the rounds' ratios. Prints and writes
``benchmarks/results/throughput.json``: samples/s of each, their ratio, and the fraction of the
float32 matmul ceiling (measured here at the training shapes) that each reaches.

    python benchmarks/bench_throughput.py [--repeats 2] [--train_size 50000]
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
from callbacks.task_sequence import TaskSequence  # noqa: E402
from cl_attractors.data import PermutedMNIST  # noqa: E402
from cl_attractors.module import CLModule, build_mlp  # noqa: E402

BATCH = 50


class TrainTimer(pl.Callback):
    """Start time of every training batch (step time = difference of consecutive starts)."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        self.starts.append(time.perf_counter())


def median_step(starts: list[float]) -> float:
    """Median seconds per step: robust to the bursts of other jobs on a shared machine."""
    return statistics.median(b - a for a, b in zip(starts, starts[1:]))


def adam(params) -> torch.optim.Optimizer:  # noqa: ANN001
    return torch.optim.Adam(params, lr=1e-4, fused=True)


def plain_loop(dm: PermutedMNIST) -> float:
    torch.manual_seed(0)
    net = build_mlp(784, [2000], 10)
    opt = adam(net.parameters())
    starts = []
    for x, y in dm.train_batches(0):
        starts.append(time.perf_counter())
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return BATCH / median_step(starts)


def lightning_fit(dm: PermutedMNIST) -> float:
    pl.seed_everything(0, verbose=False)
    timer = TrainTimer()
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                         default_root_dir=tempfile.mkdtemp(prefix="bench_"),
                         enable_model_summary=False, enable_progress_bar=False, deterministic=True,
                         callbacks=[TaskSequence(heatmaps=False), timer])
    trainer.fit(CLModule(optimizer=adam), datamodule=dm)
    return BATCH / median_step(timer.starts)


def matmul_ceiling() -> float:
    """GFLOP/s of the three training matmuls of one step (forward, grad input, grad weight)."""
    x, w, g = torch.randn(BATCH, 784), torch.randn(784, 2000), torch.randn(BATCH, 2000)
    for _ in range(20):
        x @ w, g @ w.T, x.T @ g
    n, t0 = 200, time.perf_counter()
    for _ in range(n):
        x @ w, g @ w.T, x.T @ g
    return 3 * 2 * BATCH * 784 * 2000 * n / (time.perf_counter() - t0) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train_size", type=int, default=None)
    args = parser.parse_args()
    dm = PermutedMNIST(num_tasks=1, batch_size=BATCH, train_size=args.train_size)
    dm.setup()
    plain, light = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        plain.append(plain_loop(dm))
        light.append(lightning_fit(dm))
    ceiling = matmul_ceiling()
    flop_per_sample = 3 * 2 * (784 * 2000 + 2000 * 10)
    ratios = [lt / pl_ for lt, pl_ in zip(light, plain)]
    best_plain, best_light = statistics.median(plain), statistics.median(light)
    result = {
        "device": "cpu", "threads": torch.get_num_threads(), "batch_size": BATCH,
        "train_samples": dm.num_train, "plain_samples_per_s": plain, "lightning_samples_per_s": light,
        "ratio_lightning_over_plain_per_round": ratios,
        "ratio_lightning_over_plain": statistics.median(ratios),
        "matmul_ceiling_gflops": ceiling,
        "plain_fraction_of_matmul_ceiling": best_plain * flop_per_sample / 1e9 / ceiling,
        "lightning_fraction_of_matmul_ceiling": best_light * flop_per_sample / 1e9 / ceiling,
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "throughput.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
