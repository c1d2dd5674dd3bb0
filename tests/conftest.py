"""Shared helpers: tiny synthetic runs through the real CLI, in-process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def tiny_args(run_dir: Path, *extra: str, config: str = "configs/experiment/vanilla.yaml",
              num_tasks: int = 3) -> list[str]:
    """``fit`` arguments for a few-second run: synthetic data, a 16-unit MLP, lr 1e-2."""
    return ["fit", "--config", str(ROOT / config), "--data.source", "synthetic",
            "--data.synthetic_size", "256", "--data.num_tasks", str(num_tasks),
            "--data.batch_size", "32", "--data.steps_per_batch", "2", "--model.hidden_sizes", "[16]",
            "--model.optimizer.init_args.lr", "0.01", "--model.optimizer.init_args.fused", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu",
            "--run_dir", str(run_dir), *extra]


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Configs use repo-relative paths: run every test from the repository root."""
    monkeypatch.chdir(ROOT)
