"""A study has one protocol, and a quick try never publishes (issue 22): ``tune`` stores its fit
arguments, space and code version in the study, refuses to join it with others, and copies to the
YAML's results_dir only when the command line keeps the YAML's protocol (or says --publish)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from cl_attractors.errors import ConfigError
from cl_attractors.report.provenance import code_version
from cl_attractors.tune import study as tune
from cl_attractors.tune.protocol import check_protocol, protocol
from tests.helpers import SPACE, fit_args, write_search


def test_a_study_records_its_protocol_and_refuses_another(tmp_path: Path) -> None:
    results = tmp_path / "published"
    config = write_search(tmp_path, n_trials=1, results_dir=str(results))
    tune.main(["--config", str(config)])
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}")
    assert study.user_attrs["fit_args"] == fit_args() and study.user_attrs["space"] == SPACE
    assert study.user_attrs["code_versions"] == [code_version() or "unknown"]
    header = (results / "best_method.yaml").read_text()
    assert f"# protocol (fit arguments of every trial): {' '.join(fit_args())}" in header
    assert yaml.safe_load(header)["class_path"].endswith("StickyGradient")  # still a method config
    with pytest.raises(
        ConfigError, match=r"other fit arguments: .*`--data.num_tasks 3`; join it with its own"
    ):
        tune.main(["--config", str(config), "--data.num_tasks", "3"])
    assert len(study.get_trials()) == 1  # nothing joined


def test_check_protocol_on_a_study_made_before_protocols_were_stored() -> None:
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    notes = check_protocol(study, protocol(["--a", "1"], {"x": {}}), "memory")
    assert "recorded no protocol" in notes[0] and study.user_attrs["fit_args"] == ["--a", "1"]
    assert check_protocol(study, protocol(["--a", "1"], {"x": {}}), "memory") == []
    with pytest.raises(ConfigError, match=r"has other search space"):
        check_protocol(study, protocol(["--a", "1"], {"y": {}}), "memory")
    with pytest.raises(ConfigError, match=r"it was made with `1`, this command gives `2`"):
        check_protocol(study, protocol(["--a", "2"], {"x": {}}), "memory")


def test_each_trial_compiles_afresh_and_logs_the_one_hparams_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    resets: list[int] = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: resets.append(1))
    tune.main(["--config", str(write_search(tmp_path, n_trials=2))])
    assert len(resets) == 2  # no 8-recompilation warning however many φ a process tries
    (trial_dir,) = (tmp_path / "study" / "trials").rglob("trial_0001")
    events = EventAccumulator(str(trial_dir))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["grid"].string_value == "tune:search" and hparams["variant"].string_value == "trial_0001"
    assert "a1" not in hparams and "method.a1" in hparams and "method.lam" in hparams
