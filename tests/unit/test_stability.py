"""The pure parts of evaluation during training: the subsample, the curve file and the
stability-gap numbers, on a hand-made curve."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cl_attractors.stability import (
    CURVE_FILE,
    curve_csv,
    gap_after_switch,
    old_tasks_mean,
    read_curve,
    stability_gaps,
    subsample,
    switches,
)


def test_subsample_is_fixed_per_seed_and_task_without_repeats() -> None:
    a = subsample(100, 10, seed=0, task=1)
    assert len(set(a.tolist())) == 10 and list(a) == sorted(a) and a.max() < 100
    assert np.array_equal(a, subsample(100, 10, seed=0, task=1))
    assert not np.array_equal(a, subsample(100, 10, seed=0, task=2))
    assert not np.array_equal(a, subsample(100, 10, seed=1, task=1))
    assert len(subsample(10, 10, seed=0, task=0)) == 10


# three tasks of 4 steps, evaluated every 2 steps and at every switch (steps 4 and 8);
# task 0 dips to 0.5 after the switch to task 1 and is back at 0.88 by step 8
ROWS = [
    (0, 0, 0, 0.1),
    (2, 0, 0, 0.6),
    (4, 0, 1, 0.9),
    (4, 1, 1, 0.1),
    (6, 0, 1, 0.5),
    (6, 1, 1, 0.7),
    (8, 0, 2, 0.88),
    (8, 1, 2, 0.9),
    (8, 2, 2, 0.1),
    (10, 0, 2, 0.7),
    (10, 1, 2, 0.9),
    (10, 2, 2, 0.8),
    (12, 0, 2, 0.8),
    (12, 1, 2, 0.6),
    (12, 2, 2, 0.9),
]


def curve() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=["step", "task", "trained", "accuracy"])


def test_curve_file_round_trip(tmp_path: Path) -> None:
    (tmp_path / CURVE_FILE).write_text(curve_csv(ROWS))
    back = read_curve(tmp_path)
    assert back.columns.tolist() == ["step", "task", "trained", "accuracy"]
    assert back.to_numpy().tolist() == [list(r) for r in ROWS]


def test_switches_and_old_tasks_mean() -> None:
    assert switches(curve()) == [4, 8]
    old = old_tasks_mean(curve())
    assert old["step"].tolist() == [4, 6, 8, 10, 12]
    assert old["first"].tolist() == [0.9, 0.5, 0.88, 0.7, 0.8]
    assert old["old_mean"].tolist() == pytest.approx([0.9, 0.5, 0.89, 0.8, 0.7])


def test_gap_after_switch_hand_values() -> None:
    steps, acc = np.array([4, 6, 8, 10]), np.array([0.9, 0.5, 0.88, 0.7])
    gap = gap_after_switch(steps, acc, start=4, end=8, before=0.9, tol=0.05)
    assert gap == pytest.approx({"min": 0.5, "drop": 0.4, "min_step": 2.0, "recover_steps": 4.0})
    never = gap_after_switch(steps, acc, start=4, end=8, before=0.9, tol=0.01)
    assert math.isnan(never["recover_steps"])
    flat = gap_after_switch(steps, np.array([0.9, 0.89, 0.9, 0.9]), 4, 8, before=0.9, tol=0.02)
    assert flat["recover_steps"] == 0.0 and flat["drop"] == pytest.approx(0.01)


def test_stability_gaps_of_a_run() -> None:
    gaps = stability_gaps(curve(), tol=0.05).set_index(["switch", "curve"])
    first_1 = gaps.loc[(1, "first")]
    assert first_1["before"] == 0.9 and first_1["min"] == 0.5 and first_1["recover_steps"] == 4.0
    first_2 = gaps.loc[(2, "first")]  # before 0.88, min 0.7 at step 10, 0.8 < 0.83 at step 12
    assert first_2["min"] == 0.7 and first_2["min_step"] == 2.0 and math.isnan(first_2["recover_steps"])
    mean_2 = gaps.loc[(2, "old_mean")]  # tasks 0-1: 0.89 at the switch, then 0.8, 0.7
    assert mean_2["before"] == pytest.approx(0.89) and mean_2["min"] == pytest.approx(0.7)
    assert len(gaps) == 4


def test_the_report_averages_seeds_and_tabulates_each_switch(tmp_path: Path) -> None:
    from cl_attractors.plots import save_figure
    from cl_attractors.report.stability_gap import figure, gap_markdown, gap_table, through_training

    other = curve().assign(accuracy=lambda c: c["accuracy"] - 0.1)
    curves = {"v": {0: curve(), 1: other}}
    table = through_training(curves)
    first = table[(table["curve"] == "first") & (table["step"] == 6)].iloc[0]
    assert first["mean"] == pytest.approx(0.45) and first["n"] == 2 and first["ci"] > 0
    gaps = gap_table(curves, tol=0.05).set_index(["curve", "switch"])
    assert gaps.loc[("first", 1), "min"] == pytest.approx(0.45)
    assert gaps.loc[("first", 1), "recover_steps"] == 4.0 and gaps.loc[("first", 1), "recovered"] == 2
    assert gaps.loc[("first", 2), "recovered"] == 0
    text = gap_markdown(gaps.reset_index(), {"v": "variant V"}, 0.05)
    assert "| variant V | 45.0 ± " in text and "not in the task (0/2)" in text
    save_figure(figure(table, {"v": "variant V"}, [4, 8], "t"), tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0


def test_the_report_of_one_seed_has_no_band_and_draws(tmp_path: Path) -> None:
    """A quick try with one seed: no CI anywhere, a figure without bands, no error."""
    from cl_attractors.plots import save_figure
    from cl_attractors.report.stability_gap import figure, gap_markdown, gap_table, through_training

    table = through_training({"v": {0: curve()}})
    assert table["ci"].isna().all() and (table["n"] == 1).all()
    save_figure(figure(table, {"v": "variant V"}, [4, 8], "t"), tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0
    text = gap_markdown(gap_table({"v": {0: curve()}}, tol=0.05), {"v": "variant V"}, 0.05)
    assert "| variant V | 50.0 / 4 (1/1) | 70.0 / not in the task (0/1) |" in text  # no "±"
