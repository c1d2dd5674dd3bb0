"""``cli.py tune``: the Optuna study over φ on tiny synthetic task sequences (2 tasks, ~1 s a trial)."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from cl_attractors import metrics
from cl_attractors.metrics import eq2_so_far
from cl_attractors.train.cli import make_cli
from cl_attractors.tune import study as tune
from cl_attractors.tune.objective import MONITOR, Objective, matrix_as_rows, matrix_from_attrs, probe_method
from cl_attractors.tune.space import parse_space
from tests.helpers import SPACE, fit_args, tiny_args, write_search


def load(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}")


def test_two_trial_search_completes_and_exports_a_loadable_method(tmp_path: Path) -> None:
    tune.main(["--config", str(write_search(tmp_path))])
    study, out = load(tmp_path), tmp_path / "study"
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for t in trials:
        A = matrix_from_attrs(t.user_attrs)
        assert sorted(k for k in t.user_attrs if k.startswith("A_row_")) == ["A_row_00", "A_row_01"]
        assert len(A) == 2 and all(v is not None for row in A for v in row)
        A = torch.tensor(A, dtype=torch.float64)
        assert t.value == pytest.approx(metrics.eq2(A))
        assert sorted(t.intermediate_values) == [0, 1]  # one pruning report per task
        for j, value in t.intermediate_values.items():
            part = A.clone()
            part[:, j + 1 :] = float("nan")
            assert value == pytest.approx(eq2_so_far(part), rel=1e-6)
        assert t.intermediate_values[1] == pytest.approx(t.value, rel=1e-6)
        assert t.user_attrs["phi"] == t.params and set(t.params) == {"a1", "lam"}
        assert (Path(t.user_attrs["run_dir"]) / "accuracy_matrix.csv").is_file()
        assert Path(t.user_attrs["run_dir"]).parent.parent == out / "trials"
    best = yaml.safe_load((out / "best_method.yaml").read_text())
    assert best["init_args"]["a1"] == study.best_trial.params["a1"]
    assert best["class_path"].endswith("StickyGradient")
    assert {"trials.csv", "trials.json", "top_trials.md", "optimization_history.png", "slice.png"} <= {
        p.name for p in out.iterdir()
    }
    run = tiny_args(tmp_path / "refit", "--model.method", str(out / "best_method.yaml"))
    refit = make_cli(run)
    assert refit.model.method.dip.a1 == pytest.approx(study.best_trial.params["a1"])
    assert (tmp_path / "refit" / "metrics.json").is_file()


def test_the_matrix_is_read_back_from_rows_or_from_an_older_studys_nested_list() -> None:
    A = torch.tensor([[0.5, 0.25], [float("nan"), 1.0]], dtype=torch.float64)
    attrs = {**matrix_as_rows(A), "eq2": 0.1}
    assert attrs["A_row_01"] == [None, 1.0]
    assert matrix_from_attrs(attrs) == [[0.5, 0.25], [None, 1.0]]
    assert matrix_from_attrs({"A": [[0.5]]}) == [[0.5]] and matrix_from_attrs({}) is None


def test_workers_joining_a_study_do_not_share_a_sampler_seed() -> None:
    space = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}

    def first_x(seed: int, offset: int) -> float:
        study = optuna.create_study(sampler=tune.make_sampler({"seed": seed}, offset))
        return study.ask(space).params["x"]

    plain = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=2))
    assert first_x(2, 0) == plain.ask(space).params["x"]  # a new study: the seed as it is
    assert len({first_x(2, 0), first_x(1, 1), first_x(2, 1), first_x(1, 2)}) == 4  # seed + offset collide


def test_eq2_so_far_grows_to_eq2() -> None:
    A = torch.tensor([[0.9, 0.8, 0.7], [0.1, 0.9, 0.6], [0.1, 0.1, 0.8]], dtype=torch.float64)
    steps = []
    for k in range(4):
        part = A.clone()
        part[:, k:] = float("nan")
        steps.append(eq2_so_far(part))
    den = 3 * (math.log(2) + math.log(3))
    assert steps == pytest.approx([0.0, 0.0, math.log(2) * 0.85 / den, metrics.eq2(A)])
    assert steps[3] == pytest.approx((math.log(2) * 0.85 + math.log(3) * 0.7) / den)
    assert eq2_so_far(torch.tensor([[0.7]], dtype=torch.float64)) == pytest.approx(0.7)


def test_the_median_pruner_stops_a_poor_trial_early(tmp_path: Path) -> None:
    space = {"mu": {"low": 1e-3, "high": 8.0}, "sigma": {"low": 0.01, "high": 7.0}}
    args = fit_args(num_tasks=3)
    method = probe_method(args)
    objective = Objective(args, parse_space(space, method.cls), tmp_path, method)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.enqueue_trial({"mu": 0.00363, "sigma": 0.0204})  # Table 1's init
    study.enqueue_trial({"mu": 8.0, "sigma": 7.0})  # a useless init
    study.optimize(objective, n_trials=2)
    good, poor = study.get_trials()
    assert good.state == TrialState.COMPLETE
    assert poor.state == TrialState.PRUNED and list(poor.intermediate_values) == [0, 1]
    assert poor.user_attrs["tasks_done"] == 2 and poor.user_attrs["A_row_00"][2] is None


def test_a_pruned_trial_keeps_its_partial_matrix(tmp_path: Path) -> None:
    method = probe_method(fit_args())
    objective = Objective(fit_args(), parse_space(SPACE, method.cls), tmp_path / "pruned", method)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    study.optimize(objective, n_trials=1)
    (pruned,) = study.get_trials()
    assert pruned.state == TrialState.PRUNED and list(pruned.intermediate_values) == [0]
    assert pruned.user_attrs["tasks_done"] == 1 and "pruned at epoch 0" in pruned.user_attrs["prune_reason"]
    assert pruned.user_attrs["A_row_00"][0] is not None and pruned.user_attrs["A_row_00"][1] is None
    events = EventAccumulator(pruned.user_attrs["run_dir"])
    events.Reload()  # its HParams row, with the metrics of the one task it finished
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["method.a1"].number_value == pytest.approx(pruned.params["a1"])
    assert [e.step for e in events.Scalars(MONITOR)] == [0] and "epoch" not in events.Tags()["scalars"]
    (avg_acc,) = events.Scalars("cl/avg_acc")
    assert avg_acc.step == 0 and avg_acc.value == pytest.approx(pruned.user_attrs["final_avg_acc"])
