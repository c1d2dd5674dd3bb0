"""``references:`` of a grid YAML: each variant's own reference in the tables' paired Δ column (a
deeper network against the control of its own depth), a report-only key that changes no run.
Runs here are saved metrics (no training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cl_attractors.commands import experiment
from cl_attractors.grid import spec as grid_spec
from cl_attractors.grid.spec import load_spec
from tests.helpers import ROOT, metrics_json, write_spec

FLAG = "--model.net.init_args.hidden_sizes"
FAST = ["--model.optimizer.init_args.lr", "0.01"]
GRID: dict[str, Any] = {
    "kind": "shared",
    "variants": {"control": [], "sticky": FAST, "control_deep": [], "sticky_deep": FAST},
    "sweep": {"flag": FLAG, "values": [[16], [32]], "x": [16, 32]},
    "sweeps": {
        v: {"flag": FLAG, "values": [[16, 16], [16, 16, 16]], "x": [32, 48]}
        for v in ("control_deep", "sticky_deep")
    },
    "claims": [],
}
FINAL = {"control": 0.5, "sticky": 0.6, "control_deep": 0.7, "sticky_deep": 0.75}


def _finished(tmp_path: Path, **changes: Any) -> Path:
    path = write_spec(tmp_path, **{**GRID, **changes})
    for run in load_spec(path).runs():
        run.run_dir.mkdir(parents=True)
        a = FINAL[run.group] + 0.01 * run.seed
        (run.run_dir / "metrics.json").write_text(
            json.dumps(metrics_json([0.9, a], [None, a], [0.9, 0.9], -0.1))
        )
    return path


def _rows(results_md: str) -> dict[str, list[str]]:
    """The final table's rows by variant (its first cell), and its heading under ``"variant"``."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in results_md.splitlines()]
    return {row[0]: row for row in rows if row[0] == "variant" or row[0].startswith(tuple(FINAL))}


def test_each_variant_is_paired_with_its_own_reference(tmp_path: Path) -> None:
    path = _finished(tmp_path, references={"control_deep": "control_deep", "sticky_deep": "control_deep"})
    experiment.report_main(["--config", str(path)])
    text = (tmp_path / "results" / "results.md").read_text()
    rows = _rows(text)
    assert rows["variant"][-2:] == ["reference", "Δ acc. vs reference (points, paired 95% CI)"]
    assert rows["sticky_deep_hidden_sizes32"][-2:] == [
        "control_deep",
        "+5.00 [+5.00, +5.00]",
    ]  # not vs control
    assert rows["sticky_deep_hidden_sizes48"][-2:] == ["control_deep", "+5.00 [+5.00, +5.00]"]  # not n/a
    assert rows["control_deep_hidden_sizes48"][-2:] == ["control_deep", "reference"]
    assert rows["sticky_hidden_sizes32"][-2:] == ["control", "+10.00 [+10.00, +10.00]"]  # the default


def test_without_references_the_grid_reference_is_every_rows(tmp_path: Path) -> None:
    experiment.report_main(["--config", str(_finished(tmp_path))])
    text = (tmp_path / "results" / "results.md").read_text()
    rows = _rows(text)
    assert rows["variant"][-2:] == ["forgetting (points)", "Δ acc. vs control (points, paired 95% CI)"]
    assert rows["sticky_deep_hidden_sizes32"][-1] == "+25.00 [+25.00, +25.00]"
    assert rows["sticky_deep_hidden_sizes48"][-1] == "n/a"  # control has no x = 48


def _identity(path: Path) -> list[tuple]:
    return [
        (r.variant, r.group, r.x, r.seed, r.run_dir, r.args, tuple(r.command()))
        for r in load_spec(path).runs()
    ]


def _without_references(monkeypatch: pytest.MonkeyPatch) -> None:
    read = grid_spec.read_yaml_mapping
    monkeypatch.setattr(
        grid_spec, "read_yaml_mapping", lambda *a: {k: v for k, v in read(*a).items() if k != "references"}
    )


def test_references_change_no_runs_identity_command_or_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report-only key: width_depth's runs (being computed from an older commit) stay theirs."""
    width_depth = ROOT / "configs" / "grid" / "width_depth.yaml"
    own = load_spec(width_depth).report.references
    assert {v for k, v in own.items() if k.endswith("_deep")} == {"control_deep"}
    assert {v for k, v in own.items() if not k.endswith("_deep")} == {"control"} and len(own) == 8
    tiny = _finished(tmp_path, references={"sticky_deep": "control_deep"})
    with_key = _identity(width_depth), _identity(tiny)
    _without_references(monkeypatch)
    assert not load_spec(width_depth).report.references
    assert (_identity(width_depth), _identity(tiny)) == with_key
    assert len(with_key[0]) == 120 and with_key[0][0][4] == Path(
        "runs/width_depth/control_hidden_sizes500/seed_0"
    )
