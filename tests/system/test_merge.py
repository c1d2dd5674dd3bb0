"""``cli.py merge``: a grid's finished runs brought home from another machine's out_dir."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

import cli
from cl_attractors.grid.spec import ExperimentSpec, Run, load_spec
from cl_attractors.report.provenance import load_invocations
from tests.helpers import metrics_json, write_spec

FINISHED_AT = 1_790_000_000.0  # the other machine's finish time, kept by the copy


def _there(spec: ExperimentSpec, root: Path) -> list[Run]:
    """The grid's runs as the other machine made them, under its own out_dir ``root``."""
    return dataclasses.replace(spec, out_dir=root).runs([])


def _finish(run: Run, acc: float) -> None:
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / "experiment_args.json").write_text(json.dumps(list(run.args)))
    (run.run_dir / "metrics.json").write_text(
        json.dumps(metrics_json([0.9, acc], [None, acc], [0.9, 0.9], -0.1))
    )
    (run.run_dir / ".lock").write_text("")
    os.utime(run.run_dir / "metrics.json", (FINISHED_AT, FINISHED_AT))


def _acc(run_dir: Path) -> float:
    return json.loads((run_dir / "metrics.json").read_text())["avg_acc_seen"][-1]


def test_merge_copies_the_finished_runs_missing_here_with_their_times_and_records(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = write_spec(tmp_path, claims=[])
    spec = load_spec(config)
    there = tmp_path / "elsewhere" / "runs"
    for run in _there(spec, there):
        _finish(run, 0.7)
    record = {"id": "gpu-1", "command": "python cli.py experiment ...", "started_s": FINISHED_AT - 60}
    (there / "tiny.invocations.json").write_text(json.dumps([record]))
    here = {(r.variant, r.seed): r for r in spec.runs([])}
    _finish(here["fast", 0], 0.8)  # finished here already: kept as it is
    unfinished = here["slow", 1].run_dir
    (unfinished / "checkpoints").mkdir(parents=True)
    (unfinished / "metrics.json").write_text(json.dumps({"complete": False}))

    assert cli.main(["merge", "--config", str(config), "--from", str(there)]) == 0
    assert "tiny: 3 finished runs merged from" in capsys.readouterr().out
    assert _acc(here["fast", 0].run_dir) == 0.8 and _acc(unfinished) == 0.7
    assert not (unfinished / "checkpoints").exists() and not (unfinished / ".lock").exists()
    merged = here["fast", 1].run_dir
    assert (merged / "metrics.json").stat().st_mtime == FINISHED_AT  # counted in gpu-1's window
    assert json.loads((merged / "experiment_args.json").read_text()) == list(here["fast", 1].args)
    assert [r["id"] for r in load_invocations(spec)] == ["gpu-1"]

    assert cli.main(["merge", "--config", str(config), "--from", str(there)]) == 0  # again: nothing new
    out = capsys.readouterr().out
    assert "0 finished runs merged" in out and "(4 already finished here" in out and "; 0 invocation" in out
    assert len(load_invocations(spec)) == 1


def test_merge_refuses_runs_of_other_fit_arguments_and_a_missing_source(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = write_spec(tmp_path, claims=[])
    spec = load_spec(config)
    there = tmp_path / "elsewhere"
    assert cli.main(["merge", "--config", str(config), "--from", str(there)]) == 2
    assert capsys.readouterr().err.strip().endswith("is not a directory; give the other machine's out_dir")
    spec.out_dir.mkdir(parents=True)
    assert cli.main(["merge", "--config", str(config), "--from", str(spec.out_dir)]) == 2
    assert "is this grid's own out_dir" in capsys.readouterr().err
    runs = _there(spec, there)
    for run in runs:
        _finish(run, 0.7)
    other = [*runs[-1].args, "--data.seed", "5"]
    (runs[-1].run_dir / "experiment_args.json").write_text(json.dumps(other))
    assert cli.main(["merge", "--config", str(config), "--from", str(there)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "was made with other fit arguments" in err
    assert not list(spec.out_dir.rglob("metrics.json"))  # checked before anything was copied
