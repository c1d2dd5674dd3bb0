"""The replica engine against single runs: a replica's accuracy matrix is its single run's (float64,
tiny synthetic protocol, every method of configs/method/), whatever group it is in; the run
directories are a single run's; a group resumes from its runs' checkpoints; a NaN replica fails alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cl_attractors.errors import ConfigError
from cl_attractors.replicas.group import run_group
from cl_attractors.train.cli import make_cli
from tests.helpers import ROOT

PRECISION = "32-true"
METHODS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "configs" / "method").glob("*.yaml"))


def args(run_dir: Path, seed: int, method: str = "configs/method/vanilla.yaml", *extra: str) -> list[str]:
    """A few-second float64 run: synthetic data, a 16-unit MLP, lr 1e-2 (the 32 examples of a
    mini-batch, 3 tasks of 8 steps)."""
    return [
        "fit",
        "--config",
        str(ROOT / "configs/experiment/vanilla.yaml"),
        "--model.method",
        str(ROOT / method),
        "--data.source",
        "synthetic",
        "--data.synthetic_size",
        "256",
        "--data.num_tasks",
        "3",
        "--data.batch_size",
        "32",
        "--data.steps_per_chunk",
        "4",
        "--model.net.init_args.hidden_sizes",
        "[16]",
        "--model.optimizer.init_args.lr",
        "0.01",
        "--model.optimizer.init_args.fused",
        "false",
        "--trainer.precision",
        PRECISION,
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.accelerator",
        "cpu",
        "--seed",
        str(seed),
        "--run_dir",
        str(run_dir),
        *extra,
    ]


def matrix(run_dir: Path) -> torch.Tensor:
    lines = (run_dir / "accuracy_matrix.csv").read_text().strip().splitlines()[1:]
    return torch.tensor([[float(v) for v in line.split(",")[1:]] for line in lines], dtype=torch.float64)


def single(run_dir: Path, seed: int, method: str) -> torch.Tensor:
    """The run made alone, as ``cli.py fit`` makes it."""
    make_cli(args(run_dir, seed, method))
    return matrix(run_dir)


@pytest.mark.parametrize("method", METHODS)
def test_a_replica_is_its_single_run(tmp_path: Path, method: str) -> None:
    alone = single(tmp_path / "alone", 1, method)
    failures = run_group([args(tmp_path / "r1", 1, method), args(tmp_path / "r2", 2, method)])
    assert failures == [None, None]
    assert (matrix(tmp_path / "r1") - alone).abs().max() <= 1e-9
    assert not torch.equal(matrix(tmp_path / "r2"), alone)  # the other replica is another run
    for name in ("config.yaml", "metrics.json", "permutations.pt", "checkpoints/task_02.ckpt"):
        assert (tmp_path / "r1" / name).is_file(), name
    ours, theirs = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("r1", "alone"))
    assert ours.keys() == theirs.keys() and ours["complete"]
