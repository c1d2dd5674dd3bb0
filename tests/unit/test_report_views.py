"""Pure parts of the report views: pairwise claims, per-variant modes, studies, the scoreboard's
substitution and marked blocks, per-variant sweeps and the grids' configs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from cl_attractors.errors import ConfigError
from cl_attractors.grid.checks import validate
from cl_attractors.grid.spec import load_spec
from cl_attractors.plots import ci_note
from cl_attractors.report.claim_spec import check_claims
from cl_attractors.report.claims import evaluate
from cl_attractors.report.fig_weights import attractors, seeds_text
from cl_attractors.report.params import variant_param
from cl_attractors.report.scoreboard import replace_block, substitute
from cl_attractors.report.sensitivity import sweep_marks
from cl_attractors.report.stats import mean_ci
from cl_attractors.report.studies import check_trials, trials_to_reach, wall_time_s
from tests.helpers import write_spec


def _agg(finals: dict[str, list[float]]) -> dict:
    variants = {
        name: {
            "group": name,
            "x": None,
            "label": name.upper(),
            "seeds": list(range(len(values))),
            "per_seed_final": {str(s): {"final_avg_acc": v} for s, v in enumerate(values)},
            "final": {"final_avg_acc": mean_ci(values)},
        }
        for name, values in finals.items()
    }
    return {"variants": variants, "missing": []}


def test_list_claims_are_checked_pair_by_pair_with_labels() -> None:
    agg = _agg({"a": [0.9, 0.91, 0.92], "b": [0.5, 0.52, 0.5], "c": [0.7, 0.69, 0.71]})
    claim = {"text": "beats", "type": "gap", "better": ["a", "c", "x"], "worse": ["b", "c"]}
    res = evaluate([claim], agg)
    assert [r["text"] for r in res] == [
        "beats: A vs B",
        "beats: A vs C",
        "beats: C vs B",
        "beats: x vs B",
        "beats: x vs C",
    ]
    assert [r["verdict"] for r in res] == ["holds", "holds", "holds", "not run yet", "not run yet"]
    first = res[0]
    assert first["n"] == 3 and first["lo"] < first["value"] < first["hi"]
    assert first["value"] == pytest.approx(0.4033333, abs=1e-6)


def test_best_claim_reports_leader_and_paired_gap() -> None:
    agg = _agg({"a": [0.9, 0.91, 0.92], "b": [0.5, 0.52, 0.5]})
    won, lost = evaluate([{"type": "best", "variant": "a"}, {"type": "best", "variant": "b"}], agg)
    assert (won["verdict"], won["leader"], lost["verdict"], lost["leader"]) == (
        "holds",
        "A",
        "does not hold",
        "A",
    )
    assert won["value"] == pytest.approx(-lost["value"]) and won["value"] > 0


def test_beats_all_holds_only_when_every_rival_is_beaten_and_reports_the_closest() -> None:
    agg = _agg({"a": [0.9, 0.91, 0.92], "b": [0.5, 0.52, 0.5], "c": [0.88, 0.9, 0.93]})
    claim = {"text": "t", "type": "beats_all", "better": "a", "rivals": ["b", "c"]}
    (against_both,) = evaluate([claim], agg)
    assert against_both["verdict"] == "does not hold"  # a - c: +0.67 points, CI across 0
    assert against_both["value"] == pytest.approx(0.0066667, abs=1e-6)
    assert "closest: C" in against_both["measured"] and "B +40.33*" in against_both["measured"]
    (only_b,) = evaluate([{**claim, "rivals": ["b"]}], agg)
    assert only_b["verdict"] == "holds" and only_b["value"] == pytest.approx(0.4033333, abs=1e-6)
    (missing,) = evaluate([{**claim, "rivals": ["b", "d"]}], agg)
    assert missing["verdict"] == "not run yet"
    with pytest.raises(ConfigError, match=r"claims\[0\]\.rivals=\['d'\] is not allowed"):
        check_claims([{**claim, "rivals": ["d"]}], {"a", "b"}, {"a", "b"})


def test_best_claim_ranks_only_the_variants_among() -> None:
    """Fig. 3 ranks the paper's 8 combinations and, apart, the 8 with L1 decoupled from Adam."""
    agg = _agg({"a": [0.9, 0.91, 0.92], "b": [0.5, 0.52, 0.5], "c": [0.6, 0.6, 0.61]})
    (among,) = evaluate([{"type": "best", "variant": "c", "among": ["b", "c"]}], agg)
    assert (among["verdict"], among["leader"]) == ("holds", "C")
    assert among["value"] == pytest.approx(0.0966667, abs=1e-6)  # against b, its only rival
    (missing,) = evaluate([{"type": "best", "variant": "c", "among": ["c", "d"]}], agg)
    assert missing["verdict"] == "not run yet"
    for bad in (["a"], "c", [["c"]], ["c", "nope"]):
        claim = {"text": "t", "type": "best", "variant": "c", "among": bad}
        with pytest.raises(ConfigError, match=r"claims\[0\]\.among=.* is not allowed; use a list"):
            check_claims([claim], {"a", "c"}, set())


def test_modes_at_each_variants_own_attractor() -> None:
    agg = _agg({"s1": [0.9], "s2": [0.9], "c": [0.7]})
    modes = {"s1": [-0.3, 0.0, 0.279], "s2": [-0.1, 0.0, 0.5], "c": [0.0]}
    claim = {"text": "tri", "type": "modes", "variant": ["s1", "s2", "c"], "paper": ["negative", 0.0, "a1"]}
    res = evaluate([{**claim, "exact": True}], agg, modes, {"s1": 0.279, "s2": 0.3})
    assert [r["verdict"] for r in res] == ["holds", "does not hold", "not checked"]
    assert "a1 = 0.279" in res[0]["measured"] and res[0]["n"] == 1
    assert "needs the variant's method config" in res[2]["measured"]


def test_variant_param_and_attractors(tmp_path: Path) -> None:
    args = ["--model.method", "configs/method/sticky.yaml"]
    assert variant_param(args, "a1") == pytest.approx(0.279)
    assert variant_param([*args, "--model.method.init_args.a1", "0.5"], "a1") == 0.5
    assert variant_param(["--model.method", "configs/method/ewc.yaml"], "a1") is None
    assert variant_param(["--model.method", str(tmp_path / "not_yet.yaml")], "a1") is None
    spec = load_spec(write_spec(tmp_path, variants={"s": args, "c": []}))
    assert attractors(spec) == {"s": pytest.approx(0.279)}


def test_per_variant_sweeps_and_references(tmp_path: Path) -> None:
    spec = load_spec(
        write_spec(
            tmp_path,
            variants={"control": [], "ewc": ["--model.method", "configs/method/ewc.yaml"]},
            sweeps={"ewc": {"flag": "--model.method.init_args.lam", "values": [1.0, 1000.0]}},
        )
    )
    va = spec.variant_args()
    assert list(va) == ["control", "ewc_lam1.0", "ewc_lam1000.0"]
    assert va["control"] == ("control", None, [])
    assert va["ewc_lam1000.0"] == (
        "ewc",
        1000.0,
        ["--model.method", "configs/method/ewc.yaml", "--model.method.init_args.lam", "1000.0"],
    )
    with pytest.raises(ConfigError, match="sweeps.si: 'si' is not a variant"):
        load_spec(write_spec(tmp_path, sweeps={"si": {"flag": "--x", "values": [1.0]}}))


def test_a_sweep_adds_its_studys_tuned_value_and_marks_it(tmp_path: Path) -> None:
    tuned = tmp_path / "tune" / "ewc" / "best_method.yaml"
    sweep = {
        "flag": "--model.method.init_args.lam",
        "values": [1.0, 1000.0],
        "tuned": "tune/ewc/best_method.yaml",
    }
    variants = {"control": [], "ewc": ["--model.method", "configs/method/ewc.yaml"]}
    marks = {"ewc": {1000.0: "paper"}}
    path = write_spec(tmp_path, kind="sensitivity", variants=variants, sweeps={"ewc": sweep}, marks=marks)
    spec = load_spec(path)
    assert spec.sweeps["ewc"]["tuned"] == str(tuned)  # relative to the grid's YAML
    with pytest.raises(ConfigError, match=r"sweeps.ewc.tuned: config .*best_method.yaml does not exist"):
        validate(spec)
    tuned.parent.mkdir(parents=True)
    tuned.write_text(
        yaml.safe_dump({"class_path": "x.EWC", "init_args": {"lam": 52.51234, "fisher": "true"}})
    )
    assert list(spec.variant_args()) == ["control", "ewc_lam1.0", "ewc_lam1000.0", "ewc_lam52.51234"]
    assert sweep_marks(spec) == {"ewc": {1000.0: "paper", 52.51234: "tuned: 52.51"}}  # φ to 4 digits
    tuned.write_text(yaml.safe_dump({"init_args": {"fisher": "true"}}))
    with pytest.raises(ConfigError, match=r"has no number init_args.lam"):
        spec.variant_args()


def _trials(states: list[str], eq2: list[float | None]) -> pd.DataFrame:
    return pd.DataFrame({"number": range(len(states)), "state": states, "eq2": eq2})


def test_trials_to_reach_a_fraction_of_the_best() -> None:
    t = _trials(["COMPLETE", "PRUNED", "COMPLETE", "FAIL", "COMPLETE"], [0.10, 0.20, 0.15, None, 0.152])
    # the pruned trial's partial Eq. 2 does not count; best 0.152, 95% of it (0.1444) first at trial 3
    assert trials_to_reach(t, 0.95) == {"finished": 4, "reached_at": 3, "best": pytest.approx(0.152)}
    claim = {"budget": 4, "fraction": 0.95, "within": 3}
    assert check_trials(claim, t)["verdict"] == "holds"
    assert check_trials({**claim, "within": 2}, t)["verdict"] == "does not hold"
    assert check_trials({**claim, "budget": 30}, t)["measured"] == "4 of 30 trials finished"
    assert check_trials(claim, None)["verdict"] == "not run yet"


def test_failed_trials_do_not_count_towards_the_trial_that_reached_the_fraction() -> None:
    t = _trials(["COMPLETE", "FAIL", "FAIL", "PRUNED", "COMPLETE"], [0.10, None, None, 0.30, 0.20])
    assert trials_to_reach(t, 0.95) == {"finished": 3, "reached_at": 3, "best": pytest.approx(0.20)}


def test_substitute_and_marked_blocks() -> None:
    check = {"better": "$method", "worse": ["control", "$ewc"], "paper": 0.19}
    assert substitute(check, {"method": "s", "ewc": "e"}) == {
        "better": "s",
        "worse": ["control", "e"],
        "paper": 0.19,
    }
    with pytest.raises(KeyError):
        substitute(check, {"method": "s"})
    text = "# R\n<!-- b:begin (generated) -->\nold\nlines\n<!-- b:end -->\nkept\n"
    assert (
        replace_block(text, "b", "new\n", Path("R.md"))
        == "# R\n<!-- b:begin (generated) -->\nnew\n<!-- b:end -->\nkept\n"
    )
    with pytest.raises(ConfigError, match="R.md has no '<!-- c:begin -->'"):
        replace_block(text, "c", "new\n", Path("R.md"))


def test_ci_note_and_seeds_text() -> None:
    assert ci_note([1, 1]) == "one seed: no confidence interval"
    assert ci_note([3, 1]).endswith("variants with one seed have none")
    assert ci_note([10, 10]) == "shaded: 95% CI over seeds (Student t)"
    assert (seeds_text(list(range(10))), seeds_text([0]), seeds_text([0, 3])) == (
        "seeds 0–9",
        "seed 0",
        "seeds 0, 3",
    )


def test_grid_configs_meet_the_issue() -> None:
    """Every grid loads; the paper's figures use seeds 0-9; the sensitivity sweeps have >= 6 values
    each, include the paper's λ = 1000, and use >= 3 seeds; the main job runs one seed; Fig. 2
    has today's 8 variants and the comparison set's 8 (issue 24); the stability grid >= 5 seeds."""
    specs = {p.stem: load_spec(p) for p in sorted(Path("configs/grid").glob("*.yaml"))}
    for name in ("fig2", "fig3", "fig4", "fig5"):
        assert specs[name].seeds == list(range(10)), name
    sens = specs["sensitivity"]
    assert len(sens.seeds) >= 3 and set(sens.sweeps) == {"ewc", "si"}
    assert all(len(s["values"]) >= 6 for s in sens.sweeps.values())
    assert 1000.0 in sens.sweeps["ewc"]["values"]
    assert specs["main"].seeds == [0] and len(specs["main"].variants) == 3
    assert len(specs["fig2"].variants) == 16 and set(specs["fig2"].report.labels) == set(
        specs["fig2"].variants
    )
    stability = specs["stability_gap"]
    assert len(stability.seeds) >= 5 and "--eval_every_n_steps" in stability.overrides
    assert {"control", "ewc_tuned", "si_tuned", "replay_1100", "sticky_decoupled_l1"} == set(
        stability.variants
    )


def test_a_studys_wall_time_is_the_union_of_its_trials_without_stale_ones() -> None:
    t = pd.DataFrame(
        {
            "state": ["COMPLETE", "PRUNED", "FAIL", "COMPLETE", "FAIL"],
            "reason": [None, "pruned at epoch 2", None, None, "training diverged"],
            "datetime_start": [
                "2026-01-01T10:00:00",
                "2026-01-01T10:01:00",
                "2026-01-01T10:05:00",
                "2026-01-01T11:00:00",
                "2026-01-01T11:02:00",
            ],
            "datetime_complete": [
                "2026-01-01T10:03:00",
                "2026-01-01T10:04:00",
                "2026-01-01T10:59:00",
                "2026-01-01T11:01:00",
                "2026-01-01T11:03:00",
            ],
        }
    )  # two overlapping workers (4 min), a stale FAIL found an hour later (left out), 1 + 1 min
    assert wall_time_s(t) == 6 * 60
    assert wall_time_s(t.drop(columns=["datetime_start"])) is None


def test_the_readmes_make_run_table_has_the_format_make_run_prints() -> None:
    """README.md quotes a real `make run`'s table (issue 22: not typed); when the table's format
    changes, this fails until the quote is regenerated from a run."""
    from cl_attractors.report.render import labels, reference, terminal_summary

    spec = load_spec("configs/grid/main.yaml")
    names = labels(spec)
    one = {"mean": 0.5, "ci": None, "n": 1, "values": [0.5]}
    variants = {
        name: {
            "group": name,
            "x": None,
            "label": names.get(name, name),
            "seeds": [0],
            "final": {k: one for k in ("final_avg_acc", "forgetting", "bwt", "final_current_acc")},
            "per_seed_final": {"0": {"final_avg_acc": 0.5}},
        }
        for name in spec.variants
    }
    agg = {"variants": variants, "reference": reference(spec), "missing": []}
    printed = terminal_summary(spec, agg, {"invocations": []}).splitlines()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    quoted = readme.split("<!-- make-run-table:begin")[1].split("```\n")[1].splitlines()
    assert quoted[0] == printed[2]  # the header row
    assert [line.split("  ")[0] for line in quoted[1:]] == [line.split("  ")[0] for line in printed[3:6]]
