"""TensorBoard as a dashboard: what a tiny run writes to its event file and hparams.yaml.

The browser-level check (headless Chromium screenshots of the same data) is docs/check_tensorboard.sh.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from tests.helpers import ROOT, fit_tasks, tiny_cli


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("dash") / "run"
    sticky = str(ROOT / "configs/method/sticky.yaml")
    fit_tasks(tiny_cli(run_dir, "--model.method", sticky, "--trainer.log_every_n_steps", "8"))
    return run_dir


@pytest.fixture(scope="module")
def events(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_scalars_are_on_the_task_axis_without_noise_curves(events: EventAccumulator) -> None:
    tags = set(events.Tags()["scalars"])
    assert {"cl/avg_acc", "cl/current_acc", "cl/eq2", "cl/bwt", "cl/forgetting", "test/acc/task_2"} <= tags
    assert not tags & {"epoch", "cl/task", "hp_metric"}
    assert sorted({e.step for e in events.Scalars("cl/current_acc")}) == [0, 1, 2]
    assert sorted({e.step for e in events.Scalars("cl/bwt")}) == [1, 2]
    assert any(t.startswith("method/") for t in tags)  # the method's statistics, per task too
    assert sorted({e.step for e in events.Scalars("method/dip_fraction")}) == [0, 1, 2]  # every task
    # the training loss every log_every_n_steps optimizer steps (chunks hold 2 of them): x = steps
    assert [e.step for e in events.Scalars("train/loss")] == [0, 8, 16]


def test_heat_map_per_task_and_histograms_named_by_layer(events: EventAccumulator) -> None:
    assert [e.step for e in events.Images("cl/accuracy_matrix")] == [0, 1, 2]
    assert {"weights/net.0.weight", "weights/net.0.bias", "weights/net.2.weight"} <= set(
        events.Tags()["histograms"]
    )
    assert [e.step for e in events.Histograms("weights/net.0.weight")] == [0, 1, 2]


def test_hparams_hold_the_method_its_arguments_lr_seeds_and_the_final_metrics(
    events: EventAccumulator,
) -> None:
    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {
        "cl/avg_acc",
        "cl/bwt",
        "cl/forgetting",
        "cl/eq2",
    }
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["method"].string_value == "StickyGradient"
    assert hparams["method.a1"].number_value == pytest.approx(0.279)
    assert hparams["lr"].number_value == pytest.approx(0.01)
    assert hparams["data.batch_size"].number_value == 32 and hparams["seed"].number_value == 0
    assert hparams["data.seed"].number_value == 0 and hparams["grid"].string_value == "—"
    # one schema for every run: every method's arguments, plumbing left out
    assert {"method.fisher", "method.c", "method.gamma_online"} <= set(hparams)
    assert "method.compile" not in hparams and "data.data_dir" not in hparams
    assert math.isnan(hparams["method.gamma_online"].number_value)  # an EWC argument: not this run's


def test_hparams_yaml_holds_phi_and_the_lr(run: Path) -> None:
    saved = yaml.safe_load((run / "hparams.yaml").read_text())
    assert saved["method"] == "StickyGradient" and saved["lr"] == pytest.approx(0.01)
    assert {"method.a1", "method.mu", "method.sigma", "method.gamma", "method.zeta", "method.lam"} <= set(
        saved
    )
