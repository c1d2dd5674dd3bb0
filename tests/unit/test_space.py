"""The search space as data: parsing, conditional parameters, the shipped search configs."""

from __future__ import annotations

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from cl_attractors.errors import ConfigError
from cl_attractors.methods.base import Vanilla
from cl_attractors.tune.space import Fixed, Sampled, fit_overrides, parse_space, suggest
from tests.helpers import ROOT


def test_space_parsing_and_overrides() -> None:
    space = parse_space({"params": {"choices": ["all", "weights"]}, "layers": [0]}, Vanilla)
    assert space == {"params": Sampled(CategoricalDistribution(["all", "weights"])), "layers": Fixed([0])}
    assert parse_space({"params": {"low": 1, "high": 2, "log": False}}, Vanilla)["params"] == Sampled(
        FloatDistribution(1.0, 2.0, log=False)
    )
    assert parse_space({"params": {"low": 1, "high": 64, "int": True}}, Vanilla)["params"] == Sampled(
        IntDistribution(1, 64, log=True)
    )
    assert fit_overrides({"params": "weights", "layers": [0], "x": True}) == [
        "--model.method.init_args.params",
        "weights",
        "--model.method.init_args.layers",
        "[0]",
        "--model.method.init_args.x",
        "true",
    ]
    with pytest.raises(ConfigError, match=r"allowed: \['params', 'layers'\]"):
        parse_space({"a1": 1.0}, Vanilla)


def test_a_conditional_parameter_is_sampled_only_when_its_choice_matches() -> None:
    from cl_attractors.methods.ewc import EWC

    space = parse_space(
        {
            "mode": {"choices": ["separate", "online"]},
            "gamma_online": {"low": 0.5, "high": 1.0, "log": False, "when": {"mode": "online"}},
        },
        EWC,
    )
    assert space["gamma_online"] == Sampled(FloatDistribution(0.5, 1.0), when=(("mode", "online"),))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    phis = [suggest(study.ask(), space) for _ in range(12)]
    assert {p["mode"] for p in phis} == {"separate", "online"}
    assert all(("gamma_online" in p) == (p["mode"] == "online") for p in phis)
    for bad in ({"mode": "both"}, {"lam": "online"}, "online"):
        with pytest.raises(ConfigError, match="search.space.gamma_online.when"):
            parse_space(
                {
                    "mode": {"choices": ["separate", "online"]},
                    "gamma_online": {"low": 0.5, "high": 1.0, "when": bad},
                },
                EWC,
            )


def test_shipped_search_config_holds_table_3() -> None:
    raw = yaml.safe_load((ROOT / "configs/search/sticky_paper.yaml").read_text())
    assert raw["n_trials"] == 30
    assert {k: (v["low"], v["high"]) for k, v in raw["space"].items() if isinstance(v, dict)} == {
        "a1": (0.01, 10.0),
        "mu": (1e-3, 8.0),
        "sigma": (0.01, 7.0),
        "gamma": (0.01, 7.0),
        "zeta": (1e-7, 1e-3),
        "lam": (4.0, 10.0),
    }
    assert all(v.get("log", True) for v in raw["space"].values() if isinstance(v, dict))
    fit = " ".join(map(str, raw["fit"]))
    assert "--data.eval_split val" in fit and "--data.num_tasks 10" in fit
    seed = int(raw["fit"][raw["fit"].index("--data.seed") + 1])
    assert seed not in range(100)  # disjoint from the reporting seeds


def test_the_four_searches_share_one_budget_and_protocol() -> None:
    """sticky_paper, sticky_decoupled, ewc and si differ only in the method and its space."""
    studies = {
        n: yaml.safe_load((ROOT / f"configs/search/{n}.yaml").read_text())
        for n in ("sticky_paper", "sticky_decoupled", "ewc", "si")
    }

    def shared(raw: dict) -> dict:
        fit = list(raw["fit"])
        fit[fit.index("--model.method") + 1] = "<method>"
        own = ("space", "study_name", "out_dir", "results_dir")
        return {**{k: v for k, v in raw.items() if k not in own}, "fit": fit}

    first, *rest = [shared(raw) for raw in studies.values()]
    assert all(other == first for other in rest)
    assert first["n_trials"] == 30 and first["pruner"]["type"] == "median"
    assert all(raw["results_dir"] == f"results/tune/{name}" for name, raw in studies.items())
    assert studies["sticky_decoupled"]["space"]["f_min"] == {"low": 0.0, "high": 1.0, "log": False}
    assert studies["ewc"]["space"]["fisher"] == {"choices": ["empirical", "true"]}
