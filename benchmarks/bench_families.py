"""Training throughput of a rotated and a split run against a permuted run, measured in one run.

Each family's task transform is paid once per task (the datamodule caches the task's inputs), so a
rotated or a split run should train at (nearly) the speed of a permuted one. For each family, one
task of the paper's protocol (784-2000-10 MLP, batch 50, fused Adam lr 1e-4, embedded MNIST; the
split task: class-incremental digits 0-4, its outputs masked) is fitted ``--repeats`` times,
interleaved family by family so all see the same machine state; the throughput is images / wall
time of the whole task, the per-task transform and the evaluation of the task included. Prints and
writes ``benchmarks/results/families.json`` (with the command): images/s of each and the ratios
rotated/permuted and split/permuted (target >= 0.9).

    python benchmarks/bench_families.py [--repeats 3] [--train_size 50000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from callbacks.task_sequence import TaskSequence
from cl_attractors.io import write_json
from cl_attractors.train.data import TaskData
from cl_attractors.train.families import Permuted, Rotated, Split, TaskFamily
from cl_attractors.train.module import CLModule
from cl_attractors.train.networks import MLP

BATCH = 50
TARGET = 0.9


def families() -> dict[str, TaskFamily]:
    return {
        "permuted": Permuted(),
        "rotated": Rotated(angles=[45.0]),
        # one class-incremental task of five digits: its examples selected, 5 of 10 outputs masked
        # at every step (the images/s of fewer images: a rate, not a total)
        "split": Split("class", groups=[[0, 1, 2, 3, 4]]),
    }


def images_per_second(family: TaskFamily, train_size: int | None) -> float:
    """Images/s of one task's fit (transform, training steps and evaluation included)."""
    dm = TaskData(family=family, num_tasks=1, batch_size=BATCH, train_size=train_size, seed=0)
    dm.setup("fit")
    images = len(dm.task_split("train", 0)[1])
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
        check_val_every_n_epoch=dm.schedule.epochs_per_task,
        num_sanity_val_steps=0,
        callbacks=[TaskSequence(heatmaps=False)],
    )
    module = CLModule(MLP(784, [2000], 10), optimizer=lambda p: torch.optim.Adam(p, lr=1e-4, fused=True))
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train_size", type=int, default=None)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "families.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    samples: dict[str, list[float]] = {name: [] for name in families()}
    for _ in range(args.repeats):
        for name, family in families().items():
            samples[name].append(images_per_second(family, args.train_size))
    rate = {name: statistics.median(v) for name, v in samples.items()}
    result = {
        "command": " ".join(["python", "benchmarks/bench_families.py", *sys.argv[1:]]),
        "protocol": f"one task each: 784-2000-10 MLP, batch {BATCH}, fused Adam 1e-4, embedded MNIST "
        f"(train_size {args.train_size}), fit and the evaluation of the task timed; permuted, "
        "rotated 45 degrees, split class-incremental digits 0-4; repeats interleaved, medians",
        "device": "cpu",
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "images_per_s": rate,
        "all_images_per_s": samples,
        "ratio_rotated_to_permuted": rate["rotated"] / rate["permuted"],
        "ratio_split_to_permuted": rate["split"] / rate["permuted"],
        "target_ratio": TARGET,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
    }
    for name in ("rotated", "split"):
        ok = result[f"ratio_{name}_to_permuted"] >= TARGET
        ratio = result[f"ratio_{name}_to_permuted"]
        sign = ">=" if ok else "<"
        print(
            f"{name}: {rate[name]:.0f} images/s, {ratio:.3f} x permuted "
            f"({rate['permuted']:.0f}) {sign} {TARGET}"
        )
    write_json(Path(args.out), result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
