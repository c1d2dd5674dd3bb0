"""Issue 26's report pieces: sweeps of lists (named by x), the crossing claim, the scoreboard's
"Beyond the paper" table for grids not run (or not written) yet, and the two-panel sweep figure."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cl_attractors.errors import ConfigError
from cl_attractors.grid.checks import validate
from cl_attractors.grid.spec import load_spec
from cl_attractors.plots import sweep_plot
from cl_attractors.report.aggregate import aggregate_variant
from cl_attractors.report.claim_spec import check_claims
from cl_attractors.report.claims import evaluate
from cl_attractors.report.scoreboard import load_figure, scoreboard_table
from tests.helpers import metrics_json, write_spec

WIDTHS = {"flag": "--model.net.init_args.hidden_sizes", "values": [[500], [1000, 1000]], "x": [500, 2000]}


def test_a_sweep_of_lists_is_named_and_placed_by_x(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, variants={"control": []}, sweep=WIDTHS))
    va = spec.variant_args()
    assert list(va) == ["control_hidden_sizes500", "control_hidden_sizes2000"]
    assert va["control_hidden_sizes2000"] == (
        "control",
        2000.0,
        ["--model.net.init_args.hidden_sizes", "[1000, 1000]"],
    )
    assert [r.run_dir.name for r in spec.runs()] == ["seed_0", "seed_1"] * 2


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({**WIDTHS, "x": None}, "sweep.x=None is not allowed"),
        ({k: v for k, v in WIDTHS.items() if k != "x"}, "or lists of numbers with x"),
        ({**WIDTHS, "x": [500]}, r"sweep.x=\[500\] is not allowed; use 2 distinct finite numbers"),
        ({**WIDTHS, "x": [500, 500]}, "sweep.x=.* use 2 distinct"),
        ({**WIDTHS, "x": [500, "wide"]}, "sweep.x=.* use 2 distinct"),
        ({**WIDTHS, "values": [[500], []]}, "sweep={.*} is not allowed"),
    ],
)
def test_a_bad_sweep_of_lists_is_one_line(tmp_path: Path, sweep: dict, message: str) -> None:
    spec = load_spec(write_spec(tmp_path, variants={"control": []}, sweep=sweep))
    with pytest.raises(ConfigError, match=message):
        validate(spec)


def _curves(seen: dict[str, list[list[float]]]) -> dict:
    variants = {}
    for name, runs in seen.items():
        by_seed = {s: metrics_json(c, [None] * len(c), c, 0.0) for s, c in enumerate(runs)}
        variants[name] = {"label": name, "x": None, "group": name, **aggregate_variant(by_seed)}
    return {"variants": variants, "missing": []}


def test_crossing_names_the_tasks_where_the_order_changes() -> None:
    agg = _curves(
        {
            "control": [[0.9, 0.8, 0.7, 0.6], [0.9, 0.8, 0.7, 0.6]],
            "above": [[0.95, 0.9, 0.8, 0.7], [0.95, 0.9, 0.8, 0.7]],
            "falls": [[0.95, 0.9, 0.6, 0.7], [0.95, 0.9, 0.7, 0.5]],  # means 0.65 at task 3, 0.6 at 4
        }
    )
    claim = {"text": "stays above", "type": "crossing", "worse": "control"}
    held, fell = evaluate([{**claim, "better": "above"}, {**claim, "better": "falls"}], agg)
    assert held["verdict"] == "holds" and held["value"] is None and held["n"] == 2
    assert fell["verdict"] == "does not hold" and fell["value"] == 3
    assert "order changes after task 3 (falls to or below)" in fell["measured"]
    with pytest.raises(ConfigError, match=r"claims\[0\].curve='nope' is not allowed"):
        check_claims([{**claim, "better": "above", "curve": "nope"}], set(agg["variants"]), set())


def test_beyond_rows_say_not_run_yet_for_a_grid_not_written_or_not_run(tmp_path: Path) -> None:
    grids = tmp_path / "grids"
    grids.mkdir()
    write_spec(grids, name="ran_not", results_dir=str(tmp_path / "results" / "ran_not"))
    beyond = {
        "columns": {"d": {"label": "decoupled", "vars": {"method": "fast"}}},
        "rows": [
            {"claim": "a", "figure": "missing", "check": {"type": "gap", "better": "$method", "worse": "x"}},
            {
                "claim": "b",
                "figure": "ran_not",
                "check": {"type": "gap", "better": "$method", "worse": "slow"},
            },
        ],
    }
    spec = load_spec(
        write_spec(tmp_path, name="board", kind="scoreboard", beyond=beyond, columns={}, rows=[])
    )
    figures = {n: load_figure(grids, n) for n in ("missing", "ran_not")}
    table = scoreboard_table(spec, figures, spec.report.beyond)
    assert "missing.yaml is not written yet" in table and "aggregate.json does not exist" in table
    assert table.count("**not run yet**") == 2 and "| claim | paper |" in table.replace("  ", " ")


def test_a_sweep_figure_draws_one_panel_per_metric() -> None:
    stat = {"mean": 0.5, "ci": 0.01, "n": 2}
    final = {"final_avg_acc": stat, "forgetting": stat}
    agg = {
        "variants": {
            f"c{x}": {"group": "c", "x": x, "label": "c", "seeds": [0, 1], "final": final} for x in (1, 2)
        }
    }
    fig = sweep_plot(agg, ["final_avg_acc", "forgetting"], "hidden units")
    assert [ax.get_ylabel() for ax in fig.axes] == [
        "final average accuracy over the tasks seen (%)",
        "forgetting (%)",
    ]


def test_the_issue_26_grids_load_and_pass_their_checks() -> None:
    for name in ("width_depth", "long_sequence"):
        spec = load_spec(f"configs/grid/{name}.yaml")
        validate(spec)
        assert spec.seeds == [0, 1, 2, 3, 4]
    assert len(load_spec("configs/grid/width_depth.yaml").runs()) == 4 * 6 * 5
    raw = yaml.safe_load(Path("configs/grid/long_sequence.yaml").read_text())
    assert raw["overrides"] == ["--data.num_tasks", 50]
    weights = load_spec("configs/grid/long_sequence_weights.yaml")  # reads the same runs
    validate(weights)
    assert [r.args for r in weights.runs()] == [
        r.args for r in load_spec("configs/grid/long_sequence.yaml").runs()
    ]


def test_the_scoreboards_every_tuned_baseline_rows_need_a_gap_to_each_baseline() -> None:
    """Issue 26 item 6: "beats every tuned regularisation baseline" is ``beats_all`` (the paired gap
    to each rival has its CI above 0), not ``best`` (a highest mean only)."""
    rows = [
        r
        for r in load_spec("configs/grid/scoreboard.yaml").report.beyond["rows"]
        if "every tuned" in r["claim"]
    ]
    assert len(rows) == 5 and all(r["check"]["type"] == "beats_all" for r in rows)
    check = rows[0]["check"]
    assert [r.split("_tuned_")[0] for r in check["rivals"]] == ["ewc", "si", "mas", "lwf"]
    finals = {check["better"]: [0.80, 0.82, 0.81]} | {r: [0.70, 0.71, 0.72] for r in check["rivals"]}
    agg = _curves({name: [[a] for a in acc] for name, acc in finals.items()})
    assert evaluate([{**check, "text": "t"}], agg)[0]["verdict"] == "holds"
    close = {**finals, check["rivals"][2]: [0.80, 0.81, 0.79]}  # below in mean (a `best` row would hold)
    agg = _curves({name: [[a] for a in acc] for name, acc in close.items()})
    assert evaluate([{**check, "text": "t"}], agg)[0]["verdict"] == "does not hold"  # its CI holds 0
