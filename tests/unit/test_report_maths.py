"""Pure maths of the reports: Student-t intervals, aggregation, claims, weight modes."""

from __future__ import annotations

import math

import pytest
import torch

from cl_attractors.report.aggregate import aggregate_variant
from cl_attractors.report.claims import evaluate, gap_verdict
from cl_attractors.report.stats import mean_ci
from cl_attractors.report.weights import find_modes, histogram
from tests.helpers import metrics_json


# ---- statistics -----------------------------------------------------------------------------
@pytest.mark.parametrize(("df", "table"), [(1, 12.706), (2, 4.303), (9, 2.262), (30, 2.042)])
def test_ci_half_width_uses_the_t_tables(df: int, table: float) -> None:
    """n = df + 1 values with sample sd 1: the half-width is t(0.975, df) / sqrt(n)."""
    n = df + 1
    values = [(-1) ** i for i in range(n)] if n % 2 == 0 else [*((-1) ** i for i in range(n - 1)), 0.0]
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    stat = mean_ci(values)
    assert stat["ci"] * math.sqrt(n) / sd == pytest.approx(table, abs=5e-4)


def test_mean_ci_hand_computation() -> None:
    stat = mean_ci([0.5, 0.7, 0.9, None, math.nan])
    # mean 0.7, sample sd 0.2, t(0.975, 2) = 4.302653 -> half-width 4.302653 * 0.2 / sqrt(3)
    assert stat["n"] == 3 and stat["mean"] == pytest.approx(0.7)
    assert stat["ci"] == pytest.approx(4.302653 * 0.2 / math.sqrt(3), rel=1e-6)
    assert mean_ci([0.4])["ci"] is None and mean_ci([])["mean"] is None


def test_aggregate_variant_per_task_and_final() -> None:
    agg = aggregate_variant(
        {
            0: metrics_json([0.9, 0.8], [None, 0.7], [0.9, 0.9], -0.2),
            1: metrics_json([0.9, 0.6], [None, 0.5], [0.9, 0.7], -0.4),
        }
    )
    assert agg["seeds"] == [0, 1] and agg["num_tasks"] == 2
    assert agg["curves"]["avg_acc_seen"][0] == {
        "mean": pytest.approx(0.9),
        "ci": 0.0,
        "n": 2,
        "values": [0.9, 0.9],
    }
    prev = agg["curves"]["avg_acc_previous"]
    assert prev[0]["mean"] is None and prev[1]["mean"] == pytest.approx(0.6)
    # two seeds 0.8 and 0.6: sd = 0.1414, t(0.975, 1) = 12.7062 -> 12.7062 * 0.1414 / sqrt(2) = 1.27062
    assert agg["final"]["final_avg_acc"]["ci"] == pytest.approx(12.706205 * 0.1, rel=1e-6)
    assert agg["final"]["bwt"]["mean"] == pytest.approx(-0.3)


def _agg(finals: dict[str, list[float]], xs: dict[str, tuple[str, float]] | None = None) -> dict:
    variants = {}
    for name, values in finals.items():
        per_seed = {str(s): {"final_avg_acc": v} for s, v in enumerate(values)}
        group, x = (xs or {}).get(name, (name, None))
        variants[name] = {
            "group": group,
            "x": x,
            "per_seed_final": per_seed,
            "final": {"final_avg_acc": mean_ci(values)},
        }
    return {"variants": variants, "missing": []}


def test_claims_verdicts_follow_the_numbers() -> None:
    agg = _agg({"ewc": [0.80, 0.82, 0.81], "control": [0.60, 0.63, 0.61], "sticky": [0.61, 0.62, 0.64]})
    res = evaluate(
        [
            {"text": "ewc > control", "type": "gap", "better": "ewc", "worse": "control", "paper": 0.19},
            {
                "text": "sticky > control",
                "type": "gap",
                "better": "sticky",
                "worse": "control",
                "paper": 0.19,
            },
            {"text": "ewc best", "type": "best", "variant": "ewc"},
            {"text": "not run", "type": "gap", "better": "si", "worse": "control"},
            {"text": "no such type", "type": "ranking", "variant": "ewc"},
            {
                "text": "ewc > control by 2%",
                "type": "gap",
                "better": "ewc",
                "worse": "control",
                "paper": 0.02,
            },
        ],
        agg,
    )
    assert [r["verdict"] for r in res] == [
        "holds",
        "does not hold",
        "holds",
        "not run yet",
        "not checked",
        "direction holds, size does not",
    ]
    assert "+19.67 points" in res[0]["measured"] and "inside the CI" in res[0]["measured"]


def test_a_ci_holding_zero_and_the_papers_value_is_inconclusive() -> None:
    """Issue 22: "+0.13 [−1.41, +1.67], n = 3" against a stated +1 is neither shown nor refuted."""
    agg = _agg({"a": [0.60, 0.62, 0.61], "b": [0.605, 0.60, 0.621], "one": [0.7], "low": [0.5, 0.49, 0.51]})
    gap = {"text": "a > b", "type": "gap", "better": "a", "worse": "b"}
    verdicts = [
        evaluate([claim], agg)[0]["verdict"]
        for claim in (
            {**gap, "paper": 0.01},  # CI holds 0 and +1 point
            {**gap, "paper": 0.19},  # CI holds 0, not +19 points: refuted
            gap,  # no stated value, CI holds 0
            {**gap, "better": "low", "worse": "b"},  # CI below 0
            {**gap, "better": "one", "worse": "a"},  # one seed: no CI
        )
    ]
    assert verdicts == ["inconclusive", "does not hold", "inconclusive", "does not hold", "inconclusive"]
    assert gap_verdict(-0.014, 0.017, True) == "inconclusive"
    assert gap_verdict(0.01, 0.03, False) == "direction holds, size does not"


def test_benefit_until_and_modes_claims() -> None:
    finals, xs = {}, {}
    for x, gap in ((0.0, 0.2), (0.3, 0.1), (0.6, 0.0), (0.9, -0.1)):
        finals[f"c{x}"], finals[f"s{x}"] = [0.5, 0.52, 0.51], [0.5 + gap, 0.53 + gap, 0.51 + gap]
        xs[f"c{x}"], xs[f"s{x}"] = ("control", x), ("sticky", x)
    claim = {"text": "until 0.6", "type": "benefit_until", "better": "sticky", "worse": "control"}
    assert evaluate([{**claim, "paper": 0.6}], _agg(finals, xs))[0]["verdict"] == "holds"
    assert evaluate([{**claim, "paper": 0.3}], _agg(finals, xs))[0]["verdict"] == "does not hold"
    modes = {"sticky": [-0.06, 0.0, 0.28], "control": [0.0]}
    res = evaluate(
        [
            {"text": "tri", "type": "modes", "variant": "sticky", "paper": [-0.06, 0, 0.279], "tol": 0.01},
            {"text": "uni", "type": "modes", "variant": "control", "paper": [0.0], "exact": True},
            {"text": "uni", "type": "modes", "variant": "sticky", "paper": [0.0], "exact": True},
        ],
        _agg({}),
        modes,
    )
    assert [r["verdict"] for r in res] == ["holds", "holds", "does not hold"]


def test_find_modes_trimodal_vs_unimodal() -> None:
    g = torch.Generator().manual_seed(0)
    tri = torch.cat(
        [
            torch.randn(100_000, generator=g) * 0.01,
            torch.randn(3000, generator=g) * 0.01 + 0.279,
            torch.randn(2000, generator=g) * 0.01 - 0.06,
        ]
    )
    modes = find_modes(*histogram(tri, 0.005, -0.5, 0.5))
    assert len(modes) == 3 and [round(m, 1) for m in modes] == [-0.1, 0.0, 0.3]
    uni = (torch.rand(500_000, generator=g) * 2 - 1) * 0.035 + torch.randn(500_000, generator=g) * 0.005
    assert len(find_modes(*histogram(uni, 0.005, -0.5, 0.5))) == 1
