"""Report kinds rendered from saved results only: a missing tuned method file, the sensitivity
figure, the main job's terminal table and the claims scoreboard; the invocations' records."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

import cli
from cl_attractors import plots
from cl_attractors.commands import experiment
from cl_attractors.grid import runner
from cl_attractors.grid.checks import validate
from cl_attractors.grid.spec import load_spec, select_variants
from cl_attractors.report.provenance import (
    COMMIT_ENV,
    code_version,
    finish_invocation,
    gpus,
    load_invocations,
    machine,
    start_invocation,
)
from tests.helpers import ROOT, metrics_json, write_spec


def _finished(root: Path, variant: str, accs: list[float], current: float = 0.9) -> None:
    for seed, acc in enumerate(accs):
        run = root / variant / f"seed_{seed}"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(
            json.dumps(metrics_json([0.9, acc], [None, acc - 0.05], [0.9, current], -0.1))
        )


def test_missing_tuned_method_names_its_search_and_the_runnable_variants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(runner.GridRunner, "run", lambda *a, **k: pytest.fail("a run started"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs/search").mkdir(parents=True)
    (tmp_path / "configs/search/mine.yaml").write_text("out_dir: runs/tune/mine\n")
    path = write_spec(
        tmp_path,
        base=str(ROOT / "configs/experiment/vanilla.yaml"),
        variants={
            "control": [],
            "tuned": ["--model.method", "results/tune/mine/best_method.yaml"],
            "ewc": ["--model.method", str(ROOT / "configs/method/ewc.yaml")],
        },
    )
    assert cli.main(["experiment", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: variants.tuned: config ")
    assert "results/tune/mine/best_method.yaml does not exist: the mine search has not finished" in err
    assert "`python cli.py tune --config configs/search/mine.yaml` writes runs/tune/mine/" in err
    assert err.endswith("run the others with --variants control ewc")
    (tmp_path / "configs/search/mine.yaml").write_text(
        "out_dir: runs/tune/mine\nresults_dir: results/tune/mine\n"
    )
    assert cli.main(["experiment", "--config", str(path)]) == 2
    assert "configs/search/mine.yaml` writes it there once finished); run" in capsys.readouterr().err
    spec = load_spec(path)
    select_variants(spec, ["control", "ewc"])
    validate(spec)  # the others pass


def test_sensitivity_shows_settings_above_the_control(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        name="sens",
        kind="sensitivity",
        seeds=[0, 1, 2],
        variants={"control": [], "sticky": [], "ewc": ["--model.method", "configs/method/ewc.yaml"]},
        sweeps={"ewc": {"flag": "--model.method.init_args.lam", "values": [1.0, 1000.0, 1.0e6]}},
        marks={"ewc": {1000.0: "paper"}},
        labels={"ewc": "EWC", "control": "the control"},
        claims=[],
    )
    runs = tmp_path / "runs"
    _finished(runs, "control", [0.70, 0.71, 0.69])
    _finished(runs, "sticky", [0.85, 0.86, 0.84])
    _finished(runs, "ewc_lam1.0", [0.70, 0.72, 0.68])
    _finished(runs, "ewc_lam1000.0", [0.75, 0.765, 0.74])
    _finished(runs, "ewc_lam1000000.0", [0.40, 0.42, 0.41])
    experiment.report_main(["--config", str(path)])
    results = tmp_path / "results"
    text = (results / "results.md").read_text()
    assert "above the baseline (starred in the figure): **EWC (`ewc_lam1000.0`)**." in text
    gaps = (results / "sens_gaps.csv").read_text().splitlines()
    assert sum(line.endswith("**yes**") for line in gaps) == 1 and len(gaps) == 6
    assert (results / "sens.png").stat().st_size > 0
    agg = json.loads((results / "aggregate.json").read_text())
    assert agg["variants"]["ewc_lam1.0"]["label"] == "EWC"
    marks = {"ewc": {1000.0: "paper", 1000.0001: "tuned"}}
    fig = plots.sensitivity_plot(agg, {"ewc": "λ"}, marks=marks, beats={"ewc_lam1.0", "ewc_lam1000.0"})
    (legend,) = fig.legends  # one legend for the panels, each entry once, the marks named in it
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels.count("above the control (paired 95% CI > 0)") == 1 and {"paper", "tuned"} <= set(labels)


def test_main_job_table_and_scoreboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    fig = write_spec(
        tmp_path,
        name="figa",
        seeds=[0, 1, 2],
        variants={"control": [], "sticky": [], "best": ["--model.method", "configs/method/sticky.yaml"]},
        labels={"control": "the control"},
        summary=True,
        claims=[],
    )
    runs = tmp_path / "runs"
    _finished(runs, "control", [0.70, 0.72, 0.71], current=0.95)
    _finished(runs, "sticky", [0.20, 0.22, 0.21])
    _finished(runs, "best", [0.88, 0.89, 0.90])
    spec = load_spec(fig)
    record = start_invocation(spec, ["--config", str(fig)], time.time() - 125)
    finish_invocation(spec, record, 0)
    experiment.report_main(["--config", str(fig)])
    out = capsys.readouterr().out
    assert (
        "final average accuracy (%)" in out
        and "forgetting (points)" in out
        and "current-task accuracy (%)" in out
    )
    assert "the control" in out and "best (configs/method/sticky.yaml)" in out
    assert (
        "wall time 2 min 05 s (`cli.py experiment` of " in out
        and f"figure: {tmp_path / 'results' / 'figa.png'}" in out
    )
    assert f"`python cli.py experiment --config {fig}`" in (tmp_path / "results/results.md").read_text()

    studies = tmp_path / "tune"
    (studies / "paper").mkdir(parents=True)
    states = ["COMPLETE"] * 30
    (studies / "paper/trials.csv").write_text(
        "number,state,eq2\n" + "".join(f"{i},{s},{0.1 + 0.001 * i}\n" for i, s in enumerate(states))
    )
    board = tmp_path / "board"
    board.mkdir()
    (board / "README.md").write_text(
        "# R\n<!-- scoreboard:begin x -->\n<!-- scoreboard:end -->\n"
        "<!-- index:begin -->\nold\n<!-- index:end -->\nhand-written\n"
    )
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results-table:begin -->\n| typed |\n<!-- results-table:end -->\nend\n")
    row = {
        "paper": "+19",
        "figure": "figa",
        "check": {"type": "gap", "better": "$method", "worse": "control"},
    }
    sb = {
        "name": "sb",
        "kind": "scoreboard",
        "results_dir": str(board),
        "readme": str(readme),
        "grids_dir": str(tmp_path),
        "studies_dir": str(studies),
        "columns": {
            "as_written": {"label": "As written", "vars": {"method": "sticky", "study": "paper"}},
            "best": {"label": "Best", "vars": {"method": "best", "study": "other"}},
        },
        "rows": [
            {**row, "claim": "sticky beats the control"},
            {**row, "claim": "not rendered yet", "figure": "figb"},
            {
                "claim": "30 trials",
                "study": "$study",
                "check": {"type": "trials", "budget": 30, "fraction": 0.95, "within": 20},
            },
        ],
        "index": ["figa", "figb"],
        "studies": ["paper", "other"],
        "readme_table": {
            "figure": "figa",
            "metric": "final_avg_acc",
            "variants": {"control": "—", "best": "+19", "si": "—"},
        },
    }
    write_spec(tmp_path, name="figb", results_dir=str(tmp_path / "nothing"))
    path = tmp_path / "sb.yaml"
    path.write_text(yaml.safe_dump(sb, allow_unicode=True))
    monkeypatch.setattr("cl_attractors.train.cli.make_cli", lambda *a, **k: pytest.fail("scoreboard trained"))
    assert cli.main(["report", "--config", str(path)]) == 0
    text = (board / "README.md").read_text()
    lines = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    sticky = lines["| sticky beats the control ([figa](../results/results.md))"]
    assert "-50.00 points" in sticky and "**does not hold**" in sticky and "+18.00 points" in sticky
    assert "**holds**" in sticky and " 3 " in sticky
    assert lines["| not rendered yet (figb)"].count("**not run yet**") == 2
    trials = lines["| 30 trials (studies)"]  # best 0.129; 95% of it, 0.12255, first at trial 24 (0.123)
    assert (
        "trial 24 of 30 (paper)" in trials and "**does not hold**" in trials and "study not run yet" in trials
    )
    assert (
        "2 min 05 s" in lines["| [figa](../results/results.md)"]
        and "\nold\n" not in text
        and text.endswith("hand-written\n")
    )
    table = readme.read_text()
    assert "| the control | 71.00 ± 2.48 (3 seeds) | — |" in table and "| si | not run yet | — |" in table
    assert "typed" not in table and table.startswith("intro\n") and table.endswith("end\n")


def test_a_killed_invocation_keeps_its_record_and_a_lower_bound_of_its_wall_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session that ends mid-grid kills ``cli.py experiment``: its record, written before the
    first run, stays without an end; the report bounds its wall time by its last finished run."""
    spec_path = write_spec(tmp_path, seeds=[0], results_dir=str(tmp_path / "results"), claims=[])
    spec = load_spec(spec_path)
    started = time.time() - 3600

    def one_run_then_killed(self: runner.GridRunner, runs: list, desc: str = "") -> list:
        (runs[0].run_dir / "metrics.json").write_text(json.dumps(metrics_json([0.9], [None], [0.9], 0.0)))
        os.utime(runs[0].run_dir / "metrics.json", (started + 600, started + 600))
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.GridRunner, "run", one_run_then_killed)
    with pytest.raises(KeyboardInterrupt):
        experiment.run_experiment(spec, [], workers=1, invocation=(["--config", str(spec_path)], started))
    (record,) = load_invocations(spec)
    assert record["ended"] is None and record["wall_s"] is None
    experiment.report_main(["--config", str(spec_path)])
    text = (tmp_path / "results" / "results.md").read_text()
    bound = "≥ 10 min 00 s (no end recorded: interrupted or still running; to its last finished run)"
    assert f"| 1 | {bound} |" in text
    assert "Total wall time: ≥ 10 min 00 s over 1 invocation(s)." in text

    monkeypatch.setattr(runner.GridRunner, "run", lambda self, runs, desc="": [])  # resumed: ends
    experiment.run_experiment(spec, [], workers=1, invocation=(["--config", str(spec_path)], time.time()))
    first, second = load_invocations(spec)
    assert first["ended"] is None and second["ended"] is not None and second["failed_runs"] == 0


def test_the_runs_of_a_shared_out_dir_name_every_grid_that_made_them(tmp_path: Path) -> None:
    """Fig. 5 reuses Fig. 2's runs: its results.md lists the Fig. 2 invocation in which they
    finished beside its own, and runs made outside every recorded invocation make the total a
    lower bound."""
    runs = tmp_path / "runs"
    _finished(runs, "control", [0.70, 0.72, 0.71])
    now = time.time()
    for seed, age in enumerate([7200, 1800, 1700]):  # seed 0 finished before any record
        os.utime(runs / f"control/seed_{seed}/metrics.json", (now - age, now - age))
    maker = load_spec(write_spec(tmp_path, name="maker", seeds=[0, 1, 2], variants={"control": []}))
    record = start_invocation(maker, ["--config", "maker.yaml"], now - 2000)
    finish_invocation(maker, record, 0, ended=now - 1600)
    other = start_invocation(maker, ["--config", "maker.yaml", "--seeds", "9"], now - 100)
    finish_invocation(maker, other, 0, ended=now - 90)  # made none of these runs: not listed
    reader = write_spec(tmp_path, name="reader", seeds=[0, 1, 2], variants={"control": []})
    spec = load_spec(reader)
    own = start_invocation(spec, ["--config", str(reader)], now - 60)
    finish_invocation(spec, own, 0, ended=now - 57)
    experiment.report_main(["--config", str(reader)])
    text = (tmp_path / "results" / "results.md").read_text()
    code = code_version() or "—"  # the commit of this checkout, recorded by each invocation
    assert f"`python cli.py experiment --config maker.yaml` | {code} | 2 | 6 min 40 s |" in text
    assert (
        "--seeds 9" not in text
        and f"`python cli.py experiment --config {reader}` | {code} | 0 | 3 s |" in text
    )
    assert "Total wall time: ≥ 6 min 43 s over 2 invocation(s)." in text
    assert "1 of the 3 finished runs finished outside every recorded invocation" in text


def test_an_invocation_records_the_commit_of_the_code_that_made_its_runs(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    assert code_version(tmp_path) is None  # not a git checkout
    with pytest.MonkeyPatch.context() as env:  # a copy on another machine, its commit stated
        env.setenv(COMMIT_ENV, "abc1234")
        assert code_version(tmp_path) == "abc1234 (stated: copied, no git)"
    git("init", "-q")
    (tmp_path / "cli.py").write_text("print(1)\n")
    (tmp_path / "notes.txt").write_text("a\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.strip()
    assert code_version(tmp_path) == commit
    (tmp_path / "notes.txt").write_text("b\n")  # not code: the runs' numbers do not depend on it
    assert code_version(tmp_path) == commit
    (tmp_path / "cli.py").write_text("print(2)\n")
    assert code_version(tmp_path) == f"{commit} + uncommitted changes"

    spec = load_spec(write_spec(tmp_path, claims=[]))
    start_invocation(spec, ["--config", "tiny.yaml"], time.time())
    record = load_invocations(spec)[0]
    assert record["code"] == code_version()  # this checkout's (in results.md: above)
    assert record["gpus"] == gpus()  # the names of the GPUs it saw ([] on a CPU machine)
    assert machine({"cpus": 2, "gpus": []}) == machine({"cpus": 2}) == "2 CPUs"  # older records: no key
    h200 = {"cpus": 16, "gpus": ["NVIDIA H200"]}
    assert machine(h200) == "16 CPUs, 1 GPU (NVIDIA H200)"
    assert machine({**h200, "gpus": ["A", "B"]}) == "16 CPUs, 2 GPUs (A, B)"


def test_a_curves_grid_puts_ours_beside_a_published_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``published:`` (Hsu et al.'s grids): a row per published variant with a verdict; a bad
    table is refused before any run, in one line naming the key."""
    published = {"source": "T2", "sd": "population", "values": {"fast": [90.0, 1.0], "lwf": [50.0, 2.0]}}
    path = write_spec(tmp_path, claims=[], variants={"fast": []}, published=published)
    _finished(tmp_path / "runs", "fast", [0.91, 0.93])
    experiment.report_main(["--config", str(path)])
    text = (tmp_path / "results" / "results.md").read_text()
    assert "## Beside the published numbers: T2" in text
    assert "| fast | 2 | 92.00 ± 1.00 | 90.00 ± 1.00 | +2.00 | +2.0 | **agrees** |" in text
    assert "| lwf | 0 | — | 50.00 ± 2.00 | — | — | **not run yet** |" in text
    monkeypatch.setattr(runner.GridRunner, "run", lambda *a, **k: pytest.fail("a run started"))
    bad = write_spec(tmp_path, name="bad", claims=[], published={**published, "sd": "iqr"})
    assert cli.main(["experiment", "--config", str(bad)]) == 2
    assert capsys.readouterr().err.strip().startswith("error: published.sd='iqr' is not allowed")
