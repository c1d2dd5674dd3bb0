"""Figures readable at page width (issue 22: Fig. 5 was 3744 × 528 px in one row); φ shown to 4
significant digits in figures and tables (issue 22 item 9)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from cl_attractors import plots
from cl_attractors.grid.spec import load_spec
from cl_attractors.report.claims import evaluate
from cl_attractors.report.fig_weights import _section
from cl_attractors.report.stats import mean_ci
from tests.helpers import write_spec


def test_six_weight_histograms_wrap_to_rows_of_three(tmp_path: Path) -> None:
    edges = torch.linspace(-0.5, 0.5, 11)
    hists = {f"v{i}": (edges, torch.arange(10.0)) for i in range(6)}
    fig = plots.weight_histograms(hists, {}, {k: f"variant {k}" for k in hists}, yscale="log")
    path = tmp_path / "fig5.png"
    plots.save_figure(fig, path)
    width, height = Image.open(path).size
    assert width <= 1700 and 1.0 <= width / height <= 2.0  # three panels a row, two rows


SEARCHED_A1 = 4.104567  # a searched φ (fig5's sticky_meta_paper): shown as 4.105, never 4.10457


def test_phi_is_drawn_to_4_significant_digits() -> None:
    x = torch.linspace(-1, 1, 5)
    fig = plots.plasticity_plot(x, x.abs(), {"a1": SEARCHED_A1, "lam": 8.363112})
    ax = fig.axes[0]
    assert ax.get_title() == "plasticity: a1=4.105, lam=8.363"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a1 = 4.105"]
    edges = torch.linspace(-0.5, 0.5, 11)
    fig = plots.weight_histograms({"s": (edges, torch.ones(10))}, {"s": [0.1]}, {}, {"s": SEARCHED_A1})
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["modes found", "attractor a1 = 4.105"]


def test_phi_is_tabled_to_4_significant_digits(tmp_path: Path) -> None:
    final = {k: mean_ci([0.5, 0.6]) for k in ("final_avg_acc", "forgetting")}
    agg = {"variants": {"s": {"label": "s", "final": final}}}
    spec = load_spec(write_spec(tmp_path, kind="weights"))
    table = _section(spec, agg, {"s": [0.1]}, {"s": [0, 1]}, {"s": SEARCHED_A1})
    assert "| 4.105 | 0.100 |" in table and "4.10457" not in table
    claim = {"text": "t", "type": "modes", "variant": "s", "paper": ["a1"], "tol": 0.02}
    (result,) = evaluate([claim], agg, {"s": [0.1]}, {"s": SEARCHED_A1})
    assert "stated a1 = 4.105 (tolerance 0.02)" in result["measured"]


def test_two_writers_of_one_figure_path_never_take_each_others_file(tmp_path: Path) -> None:
    """Two reports drawing the same figure at once (two ``experiment`` commands on one grid): a
    second writer finishes while the first is still drawing. Each renames a temporary file of its
    own (with one shared temporary name the first one's rename found nothing: FileNotFoundError)."""
    from matplotlib.figure import Figure

    path = tmp_path / "same.png"

    class Interrupted(Figure):
        def savefig(self, *args: object, **kwargs: object) -> None:
            super().savefig(*args, **kwargs)  # type: ignore[arg-type]
            other = Figure(figsize=(2, 2))
            other.add_subplot().plot([0, 1])
            plots.save_figure(other, path)  # the other writer, done in the meantime

    first = Interrupted(figsize=(2, 2))
    first.add_subplot().plot([1, 0])
    plots.save_figure(first, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["same.png"]  # no temporary file left
