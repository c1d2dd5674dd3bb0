"""``cl_attractors.load_runs``: saved runs as a pandas table, without Lightning or torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import cl_attractors
from cl_attractors.errors import ConfigError
from tests.helpers import ROOT, metrics_json


def _config(method: dict | None, lr: float, seed: int) -> dict:
    return {
        "seed": seed,
        "model": {
            "hidden_sizes": [16],
            "method": method,
            "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": lr}},
        },
        "data": {"source": "synthetic", "num_tasks": 2},
    }


def _run(root: Path, name: str, config: dict | None, metrics: dict) -> None:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    if config is not None:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "accuracy_matrix.csv").write_text("task,after_task_0,after_task_1\n0,0.9,0.7\n1,0.1,0.8\n")


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    ewc = {"class_path": "cl_attractors.methods.ewc.EWC", "init_args": {"lam": 10.0, "layers": [0, 1]}}
    _run(
        tmp_path,
        "ewc/seed_0",
        _config(ewc, 1e-3, 0),
        metrics_json([0.9, 0.75], [None, 0.7], [0.9, 0.8], -0.2),
    )
    _run(
        tmp_path,
        "ewc/seed_1",
        _config(ewc, 1e-3, 1),
        metrics_json([0.8, 0.65], [None, 0.5], [0.8, 0.8], -0.3),
    )
    _run(
        tmp_path,
        "control/seed_0",
        _config(None, 1e-3, 0),
        metrics_json([0.9, 0.5], [None, 0.1], [0.9, 0.9], -0.8),
    )
    (tmp_path / "control" / "notes").mkdir()  # a directory without metrics.json is no run
    return tmp_path


def test_one_row_per_run_with_config_metrics_and_curves(runs_root: Path) -> None:
    runs = cl_attractors.load_runs(runs_root)
    assert list(runs["run"]) == ["control/seed_0", "ewc/seed_0", "ewc/seed_1"]
    ewc = runs.set_index("run").loc["ewc/seed_1"]
    assert (ewc["method"], ewc["method.lam"], ewc["method.layers"]) == ("EWC", 10.0, (0, 1))
    assert (ewc["lr"], ewc["optimizer"], ewc["seed"], ewc["data.num_tasks"]) == (1e-3, "Adam", 1, 2)
    assert ewc["model.hidden_sizes"] == (16,)
    assert (ewc["final_prev_acc"], ewc["final_current_acc"], ewc["bwt"]) == (0.5, 0.8, -0.3)
    assert ewc["avg_acc_seen"] == [0.8, 0.65] and ewc["accuracy_matrix"] == [[0.9, 0.7], [0.1, 0.8]]
    assert runs.set_index("run").loc["control/seed_0", "method"] == "Vanilla"


def test_grid_variant_and_commit_columns(runs_root: Path) -> None:
    made = {"grid": "fig2", "variant": "ewc", "code": "abc1234"}
    (runs_root / "ewc" / "seed_0" / "grid.json").write_text(json.dumps(made))
    (runs_root / "ewc" / "seed_0" / "timing.json").write_text('{"wall_time_s": 118.5, "tasks_done": 2}')
    runs = cl_attractors.load_runs(runs_root).set_index("run")
    shown = tuple(runs.loc["ewc/seed_0", ["grid", "variant", "commit", "wall_time_s"]])
    assert shown == ("fig2", "ewc", "abc1234", 118.5)
    assert runs.loc["control/seed_0", "variant"] == "control"  # from its place, made before grid.json
    assert pd.isna(runs.loc["control/seed_0", "grid"])


def test_groupby_method_and_long_format_curves(runs_root: Path) -> None:
    runs = cl_attractors.load_runs(runs_root)
    means = runs.groupby("method")["final_avg_acc"].mean()
    assert means.to_dict() == pytest.approx({"EWC": 0.70, "Vanilla": 0.5})
    curves = cl_attractors.task_curves(runs)
    assert len(curves) == 6 and list(curves["task"].unique()) == [0, 1]
    last = curves[(curves["method"] == "EWC") & (curves["task"] == 1)]
    assert sorted(last["avg_acc_seen"]) == [0.65, 0.75] and "accuracy_matrix" not in curves


def test_a_single_run_directory_old_configs_and_missing_configs(tmp_path: Path) -> None:
    old = {"seed_everything": 5, "model": {"hidden_sizes": [8]}, "data": {"seed": 5}}
    _run(tmp_path, "a", old, metrics_json([0.5], [None], [0.5], 0.0))
    _run(tmp_path, "b", None, metrics_json([0.5], [None], [0.5], 0.0))
    one = cl_attractors.load_runs(tmp_path / "a")
    assert list(one["run"]) == ["."] and one.loc[0, "seed"] == 5 and one.loc[0, "data.seed"] == 5
    both = cl_attractors.load_runs(tmp_path)
    assert both.set_index("run")["final_avg_acc"].to_dict() == {"a": 0.5, "b": 0.5}


def test_no_runs_and_bad_files(tmp_path: Path) -> None:
    assert cl_attractors.load_runs(tmp_path).empty
    with pytest.raises(ConfigError, match="is not a directory"):
        cl_attractors.load_runs(tmp_path / "missing")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"r/metrics.json cannot be read"):
        cl_attractors.load_runs(tmp_path)


def test_importing_the_package_loads_neither_lightning_nor_torch(runs_root: Path) -> None:
    code = (
        "import sys, cl_attractors\n"
        f"cl_attractors.load_runs({str(runs_root)!r})\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'torch', 'pytorch_lightning'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr[-1500:]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cl_attractors.nope  # noqa: B018
