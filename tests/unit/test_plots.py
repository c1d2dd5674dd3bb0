"""Figures readable at page width (issue 22: Fig. 5 was 3744 × 528 px in one row)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from cl_attractors import plots


def test_six_weight_histograms_wrap_to_rows_of_three(tmp_path: Path) -> None:
    edges = torch.linspace(-0.5, 0.5, 11)
    hists = {f"v{i}": (edges, torch.arange(10.0)) for i in range(6)}
    fig = plots.weight_histograms(hists, {}, {k: f"variant {k}" for k in hists}, yscale="log")
    path = tmp_path / "fig5.png"
    plots.save_figure(fig, path)
    width, height = Image.open(path).size
    assert width <= 1700 and 1.0 <= width / height <= 2.0  # three panels a row, two rows
