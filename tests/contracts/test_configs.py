"""Smoke runs: every fit config and every method config runs end to end on tiny synthetic data."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch
import yaml

import cl_attractors
from cl_attractors.methods.base import CLMethod
from cl_attractors.signatures import init_parameters
from cl_attractors.train.cli import make_cli
from cl_attractors.tune.search import load_search
from tests.helpers import ROOT, subclasses, tiny_args


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
    # a memory of M images needs M training images in the sequence (2 tasks of synthetic_size)
    memory = _method_yaml(method)[1].get("memory_size", 0)
    more = ("--data.synthetic_size", str(memory // 2 + 1)) if memory > 512 else ()
    make_cli(tiny_args(tmp_path, "--model.method", method, *more, num_tasks=2))
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["complete"] and summary["final_avg_acc"] is not None


TABLE_1 = {"a1": 0.279, "mu": 0.00363, "sigma": 0.0204, "gamma": 4.70, "zeta": 0.000574, "lam": 4.12}


def _method_yaml(path: str) -> tuple[str, dict]:
    raw = yaml.safe_load((ROOT / path).read_text())
    return raw["class_path"].rsplit(".", 1)[-1], raw.get("init_args") or {}


METHODS = {cls.__name__: cls for cls in subclasses(CLMethod)}


@pytest.mark.parametrize("method", _method_configs())
def test_method_configs_carry_the_papers_values(method: str) -> None:
    """The paper's values live in YAML: a run does not depend on the methods' code defaults (each
    method names its hyperparameters in ``CLMethod.hyperparameters``)."""
    name, init_args = _method_yaml(method)
    wanted = set(METHODS[name].hyperparameters)
    assert wanted <= init_args.keys(), wanted - init_args.keys()
    if name == "StickyGradient":
        assert {k: init_args[k] for k in TABLE_1} == TABLE_1


def test_data_and_model_groups_carry_the_papers_protocol() -> None:
    data = yaml.safe_load((ROOT / "configs/data/pmnist.yaml").read_text())["data"]
    model = yaml.safe_load((ROOT / "configs/model/mlp.yaml").read_text())["model"]
    assert (data["num_tasks"], data["epochs_per_task"], data["batch_size"]) == (10, 1, 50)
    net = model["net"]["init_args"]
    assert (net["input_size"], net["hidden_sizes"], net["num_classes"]) == (784, [2000], 10)
    assert model["optimizer"]["init_args"]["lr"] == 1e-4


@pytest.mark.parametrize("cls", [c for c in METHODS.values() if not inspect.isabstract(c)], ids=str)
def test_every_method_has_a_config_with_its_hyperparameters(cls: type[CLMethod]) -> None:
    configs = [_method_yaml(m) for m in _method_configs()]
    assert any(name == cls.__name__ for name, _ in configs), f"no configs/method/*.yaml for {cls.__name__}"
    assert set(cls.hyperparameters) <= set(init_parameters(cls))


@pytest.mark.parametrize("method", [m for m in _method_configs() if "ablation" not in m])
def test_a_method_is_selectable_by_its_class_name(tmp_path: Path, method: str) -> None:
    name, init_args = _method_yaml(method)
    values = [
        a
        for k, v in init_args.items()
        for a in (f"--model.method.{k}", v if isinstance(v, str) else json.dumps(v))
    ]
    cli = make_cli(tiny_args(tmp_path, "--model.method", name, *values)[1:], run=False)
    assert type(cli.model.method).__name__ == name
    assert all(getattr(cli.model.method, k, v) == v for k, v in init_args.items())


@pytest.mark.parametrize(
    "flags, data_seed",
    [(["--seed", "7"], 7), (["--data.seed", "9", "--seed_everything", "9"], 9), (["--data.seed", "3"], 3)],
)
def test_one_seed_sets_the_data_and_the_init_seed(tmp_path: Path, flags: list[str], data_seed: int) -> None:
    cli = make_cli(tiny_args(tmp_path, *flags)[1:], run=False)
    assert cli.datamodule.seed == data_seed and cli.config["seed_everything"] == data_seed
    assert torch.initial_seed() == data_seed


@pytest.mark.parametrize("search", sorted((ROOT / "configs" / "search").glob("*.yaml")), ids=lambda p: p.stem)
def test_search_configs_name_their_files_relative_to_themselves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, search: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    fit = load_search(["--config", str(search)]).fit_args
    named = [a for a in fit if a.endswith(".yaml")]
    assert named and all(Path(a).is_file() for a in named), named


def test_load_runs_reads_a_real_run(tmp_path: Path) -> None:
    make_cli(tiny_args(tmp_path / "sticky", "--model.method", "configs/method/sticky.yaml", num_tasks=2))
    runs = cl_attractors.load_runs(tmp_path)
    row = runs.iloc[0]
    assert (row["run"], row["method"], row["method.a1"], row["seed"]) == (
        "sticky",
        "StickyGradient",
        0.279,
        0,
    )
    assert (row["data.source"], row["lr"], row["model.hidden_sizes"]) == ("synthetic", 0.01, (16,))
    assert row["complete"] and len(row["avg_acc_seen"]) == 2 and len(row["accuracy_matrix"]) == 2
    assert row["final_avg_acc"] == row["avg_acc_seen"][-1]
