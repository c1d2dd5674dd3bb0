"""`tune` publishing as a user meets it (the system tier): a finished study is copied to its
results_dir and a partial one is not; a quick try that changes the protocol is published only with
--publish. What a study computes is checked in tests/contracts/test_tune.py."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from cl_attractors.tune import study as tune
from tests.helpers import write_search


def test_a_finished_study_is_copied_to_its_results_dir_and_a_partial_one_is_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    (results).mkdir()
    (results / "summary.md").write_text("kept")
    (tmp_path / "early").mkdir()
    diverging = write_search(tmp_path / "early", results_dir=str(tmp_path / "early" / "results"))
    early = ["--model.optimizer.init_args.lr", "1e20", "--publish"]
    tune.main(["--config", str(diverging), *early])  # both trials diverge (FAIL): 0 of 2 counted
    assert "not copied to" in capsys.readouterr().out and not (tmp_path / "early" / "results").exists()
    config = write_search(tmp_path, results_dir=str(results))
    tune.main(["--config", str(config)])  # two trials finish the study
    assert "finished study copied to" in capsys.readouterr().out
    assert (results / "best_method.yaml").read_text() == (tmp_path / "study" / "best_method.yaml").read_text()
    assert {"trials.csv", "trials.json", "top_trials.md", "summary.md"} <= {p.name for p in results.iterdir()}
    copy = optuna.load_study(study_name="search", storage=f"sqlite:///{results / 'study.db'}")
    assert len(copy.get_trials()) == 2 and copy.metric_names == ["Eq. 2"]


def test_a_quick_try_is_not_published_without_publish(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "published"
    config = write_search(tmp_path, n_trials=2, results_dir=str(results))
    tune.main(["--config", str(config), "--n_trials", "1"])
    assert "this command changes the config's protocol (--n_trials 1)" in capsys.readouterr().out
    assert not results.exists() and (tmp_path / "study" / "best_method.yaml").is_file()
    tune.main(["--config", str(config), "--n_trials", "1", "--publish"])
    assert "finished study copied to" in capsys.readouterr().out and (results / "best_method.yaml").is_file()
