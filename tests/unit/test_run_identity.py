"""A resume is the run's own (its config compared key by key), and every run logs one HParams
schema (issue 22). Pure functions on dicts and tiny classes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from callbacks.hparams import method_columns, run_hparams
from cl_attractors.errors import ConfigError
from cl_attractors.train.resume import check_resume, differences, resume_args


def test_differences_name_each_changed_leaf_but_not_how_to_resume() -> None:
    saved = {"model": {"method": {"init_args": {"gamma": 10.0, "a1": 0.28}}}, "ckpt_path": None}
    given = {"model": {"method": {"init_args": {"gamma": 4.7, "a1": 0.28}}}, "ckpt_path": "last"}
    assert differences(saved, given) == [("model.method.init_args.gamma", 10.0, 4.7)]
    assert differences(saved, {**saved, "ckpt_path": "last"}) == []


def test_a_resume_takes_the_runs_config_and_refuses_another(tmp_path: Path) -> None:
    saved = {"seed_everything": 3, "model": {"method": {"init_args": {"gamma": 10.0}}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    run = str(tmp_path)
    assert resume_args(["fit", "--run_dir", run, "--ckpt_path", "last"]) == [
        "fit",
        "--config",
        str(tmp_path / "config.yaml"),
        "--run_dir",
        run,
        "--ckpt_path",
        "last",
    ]
    assert resume_args(["fit", "-c", "x.yaml", "--run_dir", run, "--ckpt_path", "last"])[2] == "x.yaml"
    assert resume_args(["fit", "--run_dir", str(tmp_path / "new")]) == [
        "fit",
        "--run_dir",
        str(tmp_path / "new"),
    ]
    check_resume(run, {**saved, "ckpt_path": "last"})
    changed = {"seed_everything": 3, "model": {"method": {"init_args": {"gamma": 4.7}}}}
    with pytest.raises(ConfigError, match=r"--model.method.init_args.gamma=4.7 is not allowed on a resume"):
        check_resume(run, changed)


class Sticky:
    def __init__(self, a1: float, lam: float, sticky: bool, compile: str = "auto") -> None: ...


class EWC:
    def __init__(self, lam: float, fisher: str = "empirical", gamma_online: float = 1.0) -> None: ...


class Data:
    def __init__(self, num_tasks: int = 10, batch_size: int = 50, train_size: int | None = None) -> None: ...


def test_every_run_logs_every_methods_arguments_with_one_type_each(tmp_path: Path) -> None:
    methods = [Sticky, EWC]
    ewc = method_columns({"class_path": "cl_attractors.methods.ewc.EWC", "init_args": {"lam": 1000}}, methods)
    sticky = method_columns(
        {"class_path": "x.Sticky", "init_args": {"a1": 0.28, "lam": 7, "sticky": True}}, methods
    )
    control = method_columns(None, methods)
    assert list(ewc) == list(sticky) == list(control)  # one schema
    assert "method.compile" not in ewc  # plumbing
    assert (ewc["method"], ewc["method.lam"], ewc["method.fisher"], ewc["method.gamma_online"]) == (
        "EWC",
        1000.0,
        "empirical",
        1.0,
    )
    assert math.isnan(ewc["method.a1"]) and ewc["method.sticky"] == "—"
    assert (sticky["method.a1"], sticky["method.sticky"], sticky["method.fisher"]) == (0.28, "true", "—")
    assert control["method"] == "Vanilla" and math.isnan(control["method.lam"])
    (tmp_path / "grid.json").write_text('{"grid": "fig2", "variant": "ewc"}')
    config = {"seed_everything": 3, "data": {"num_tasks": 10, "batch_size": 50, "data_dir": "/x"}}
    row = run_hparams(config, methods, Data, tmp_path)
    assert (row["grid"], row["variant"], row["seed"], row["data.batch_size"]) == ("fig2", "ewc", 3.0, 50.0)
    assert math.isnan(row["data.train_size"]) and "data.data_dir" not in row
    assert run_hparams(config, methods, Data, None)["grid"] == "—"


class Rotate:
    def __init__(self, angles: list[float] | None = None, low: float = 0.0) -> None: ...


class Permute:
    def __init__(self, shared_fraction: float = 0.0, identity_first: bool = False) -> None: ...


class FamilyData:
    def __init__(self, family: object, num_tasks: int = 10) -> None: ...


def test_runs_of_different_families_log_one_schema() -> None:
    families = [Rotate, Permute]
    rotated = {"data": {"family": {"class_path": "x.Rotate", "init_args": {"angles": [0, 90]}}}}
    a = run_hparams(rotated, [], FamilyData, None, families)
    b = run_hparams({"data": {"family": {"class_path": "x.Permute"}}}, [], FamilyData, None, families)
    assert list(a) == list(b)  # one schema, whatever family a run uses
    assert (a["data.family"], a["data.family.angles"], a["data.family.low"]) == ("Rotate", "[0, 90]", 0.0)
    assert math.isnan(a["data.family.shared_fraction"]) and a["data.family.identity_first"] == "—"
    assert (b["data.family"], b["data.family.shared_fraction"], b["data.family.angles"]) == (
        "Permute",
        0.0,
        "—",
    )
