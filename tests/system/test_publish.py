"""Published results change only on purpose (issue 22): a grid's results_dir is written only by an
invocation that keeps the config's protocol, or with --publish; an A/B test needs no YAML
(``--set VARIANT:key=value``) and ends with a table. Runs here are saved metrics (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cl_attractors.commands import experiment
from cl_attractors.commands.grid_args import grid_parser, grid_spec
from cl_attractors.errors import ConfigError
from tests.helpers import metrics_json, write_spec


def _finished_grid(tmp_path: Path) -> Path:
    """The tiny grid with every run finished (saved metrics: nothing trains)."""
    path = write_spec(tmp_path)
    for variant, acc in (("fast", 0.8), ("slow", 0.7)):
        for seed in (0, 1):
            run = tmp_path / "runs" / variant / f"seed_{seed}"
            run.mkdir(parents=True)
            a = acc + 0.01 * seed
            (run / "metrics.json").write_text(json.dumps(metrics_json([0.9, a], [None, a], [0.9, 0.9], -0.1)))
    return path


@pytest.mark.parametrize(
    "changed",
    [
        ["--data.num_tasks", "3"],
        ["--seeds", "0"],
        ["--variants", "fast"],
        ["--set", "fast:model.optimizer.init_args.lr=0.1"],
    ],
)
def test_a_changed_protocol_never_writes_the_configs_results_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture, changed: list[str]
) -> None:
    path, results = _finished_grid(tmp_path), tmp_path / "results"
    experiment.main(["--config", str(path), *changed])
    assert not results.exists()
    mine = tmp_path / "runs" / "results" / "results.md"
    assert "Not the config's protocol" in mine.read_text()
    err = capsys.readouterr().err
    assert f"tables and figures go to {mine.parent}" in err and "0 to run" in err
    experiment.report_main(["--config", str(path)])  # re-rendered as the last experiment ran
    assert not results.exists()
    experiment.report_main(["--config", str(path), "--publish"])
    assert "Not the config's protocol" in (results / "results.md").read_text()


def test_the_configs_own_protocol_publishes_and_prints_the_table_with_a_paired_delta(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path, results = _finished_grid(tmp_path), tmp_path / "results"
    experiment.main(["--config", str(path), "--seeds", "0", "1"])  # the YAML's own seeds
    text = (results / "results.md").read_text()
    assert "Not the config's protocol" not in text
    head = "Δ acc. vs fast (points, paired 95% CI)"  # two seeds: with its CI
    assert head in text and "| reference |" in text and "| -10.00 [-10.00, -10.00] |" in text
    out = capsys.readouterr().out  # the table, printed by default
    assert "final average accuracy (%)" in out and head in out and "forgetting (points)" in out


def test_set_gives_one_variant_an_argument(tmp_path: Path) -> None:
    path = write_spec(tmp_path)
    parser = grid_parser("cli.py experiment", running=True)
    args, extra = parser.parse_known_args(["--config", str(path), "--set", "slow:model.method=EWC"])
    runs = {r.variant: r.args for r in grid_spec(args, extra).runs(extra)}
    assert "EWC" in runs["slow"] and "EWC" not in runs["fast"]
    assert runs["slow"][runs["slow"].index("EWC") - 1] == "--model.method"
    for bad, message in (
        ("nope:model.method=EWC", "'nope' is not a variant; use one of fast, slow"),
        ("slow-model.method", "is not allowed; use VARIANT:key=value"),
    ):
        args, extra = parser.parse_known_args(["--config", str(path), "--set", bad])
        with pytest.raises(ConfigError, match=message):
            grid_spec(args, extra)


def test_experiment_help_says_what_extra_arguments_do() -> None:
    text = grid_parser("cli.py experiment", running=True).format_help()
    assert "fit overrides passed to EVERY run" in text and "--set VARIANT:key=value" in text
    assert "--publish" in text and "<out_dir>/results/" in text
