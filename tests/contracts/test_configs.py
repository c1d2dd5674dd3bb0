"""Smoke runs: every fit config and every method config runs end to end on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cl_attractors.train.cli import make_cli
from tests.helpers import ROOT, tiny_args


def _fit_configs() -> list[str]:
    """Experiment configs that are fit configs (grid configs for `experiment` hold `grid`/`variants`)."""
    out = []
    for path in sorted((ROOT / "configs" / "experiment").glob("*.yaml")):
        content = yaml.safe_load(path.read_text()) or {}
        if "defaults" in content or "trainer" in content:
            out.append(str(path.relative_to(ROOT)))
    return out


def _method_configs() -> list[str]:
    return [str(p.relative_to(ROOT)) for p in sorted((ROOT / "configs" / "method").rglob("*.yaml"))]


@pytest.mark.parametrize("config", _fit_configs())
def test_fit_config_runs(tmp_path: Path, config: str) -> None:
    make_cli(tiny_args(tmp_path, config=config, num_tasks=2))
    assert json.loads((tmp_path / "metrics.json").read_text())["complete"]


@pytest.mark.parametrize("method", _method_configs())
def test_method_config_runs(tmp_path: Path, method: str) -> None:
    make_cli(tiny_args(tmp_path, "--model.method", method, num_tasks=2))
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["complete"] and summary["final_avg_acc"] is not None
