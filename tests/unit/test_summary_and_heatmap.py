"""Pure formatting: the end-of-fit summary, the per-task line and the A(i, j) heat map."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import torch

from callbacks.dashboard import heatmap_title
from callbacks.summary import clock, format_summary, task_line
from cl_attractors import metrics
from cl_attractors.plots import accuracy_heatmap

NAN = math.nan
A = torch.tensor([[0.9, 0.8, 0.7], [0.1, 0.95, 0.9], [0.1, 0.2, 0.85]], dtype=torch.float64)


def test_heat_map_has_its_title_and_a_label_in_every_filled_cell() -> None:
    partial = A.clone()
    partial[:, 2] = NAN
    fig = accuracy_heatmap(partial, title="StickyGradient, seed 3")
    ax = fig.axes[0]
    assert ax.get_title() == "StickyGradient, seed 3: accuracy (%)"
    assert sorted(t.get_text() for t in ax.texts) == sorted(["90", "80", "10", "95", "10", "20"])


class StickyGradient:  # the method's class name is what a title shows
    pass


def test_heat_map_title_names_the_grid_variant_else_the_method(tmp_path: Path) -> None:
    module = SimpleNamespace(method=StickyGradient())
    trainer = SimpleNamespace(
        lightning_module=module, log_dir=str(tmp_path), datamodule=SimpleNamespace(seed=3)
    )
    assert heatmap_title(trainer) == "StickyGradient, seed 3"  # a plain fit
    (tmp_path / "grid.json").write_text(json.dumps({"grid": "fig2", "variant": "sticky_meta_decoupled"}))
    title = heatmap_title(trainer)
    assert title == "sticky_meta_decoupled (StickyGradient), seed 3"
    assert accuracy_heatmap(A, title=title).axes[0].get_title() == f"{title}: accuracy (%)"


def test_summary_reports_the_metrics_the_matrix_and_where_the_outputs_are() -> None:
    summary = {"complete": True, "tasks_done": 3, **metrics.summarize(A, torch.zeros(3))}
    text = format_summary(summary, A, 89.4, Path("runs/x"))
    assert " finished: 3/3 tasks in 1:29 (wall time)" in text
    assert "final average accuracy   81.67%" in text
    assert (
        "backward transfer (BWT)  -12.50 points" in text and "forgetting               +12.50 points" in text
    )
    assert "forward transfer (FWT)   +15.00 points" in text
    assert "      1    10.0   95.0   90.0" in text
    assert "tensorboard --logdir runs/x" in text


def test_a_stopped_run_says_so_and_leaves_unfilled_cells_blank() -> None:
    partial = A.clone()
    partial[:, 2] = NAN
    summary = {"complete": False, "tasks_done": 2, **metrics.summarize(partial[:2, :2])}
    text = format_summary(summary, partial, 4000.0, Path("r"))
    assert " stopped early: 2/3 tasks in 1:06:40 (wall time)" in text
    assert "      2    10.0   20.0\n" in text


def test_task_line_and_clock() -> None:
    summary = {"current_acc": [0.9, 0.95], "final_avg_acc": 0.875}
    assert task_line(1, 10, summary) == "task 2/10  current 95.0%  average 87.5%"
    assert (clock(59.6), clock(61), clock(3725)) == ("1:00", "1:01", "1:02:05")
