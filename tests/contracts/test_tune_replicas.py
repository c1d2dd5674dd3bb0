"""``tune --replicas R``: R trials asked at once, trained as one group, told like trials run alone."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

import cli
from cl_attractors import metrics
from cl_attractors.tune import study as tune
from cl_attractors.tune.objective import Objective, matrix_from_attrs, probe_method
from cl_attractors.tune.replicas import run_group_trials
from cl_attractors.tune.space import parse_space
from tests.helpers import SPACE, fit_args, write_search

FIT = fit_args()


def test_trials_in_groups_complete_and_equal_the_same_trial_run_alone(tmp_path: Path) -> None:
    path = write_search(tmp_path, fit=FIT, n_trials=3)
    tune.main(["--config", str(path), "--replicas", "2"])  # a group of 2, then a group of 1
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert len({(t.params["a1"], t.params["lam"]) for t in trials}) == 3
    for t in trials:
        A = torch.tensor(matrix_from_attrs(t.user_attrs), dtype=torch.float64)
        assert t.value == pytest.approx(metrics.eq2(A)) and sorted(t.intermediate_values) == [0, 1]
        assert (tmp_path / "study" / "trials" / f"trial_{t.number:04d}" / "accuracy_matrix.csv").is_file()
    method = probe_method(FIT)
    alone = optuna.create_study(direction="maximize")
    alone.enqueue_trial(trials[1].params)
    alone.optimize(Objective(FIT, parse_space(SPACE, method.cls), tmp_path / "alone", method), n_trials=1)
    assert alone.best_value == pytest.approx(trials[1].value, abs=1e-9)


def test_a_pruned_trial_is_dropped_from_its_group(tmp_path: Path) -> None:
    method = probe_method(FIT)
    objective = Objective(FIT, parse_space(SPACE, method.cls), tmp_path, method)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    run_group_trials(objective, study, 2)
    for t in study.get_trials():
        assert t.state == TrialState.PRUNED and list(t.intermediate_values) == [0]
        assert t.user_attrs["tasks_done"] == 1 and "pruned at epoch 0" in t.user_attrs["prune_reason"]


@pytest.mark.parametrize("value", ["0", "x", "-1"])
def test_bad_replicas_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, value: str) -> None:
    assert cli.main(["tune", "--config", str(write_search(tmp_path, fit=FIT)), "--replicas", value]) == 2
    assert (
        capsys.readouterr().err.strip() == f"error: --replicas {value} is not allowed; use a positive integer"
    )
