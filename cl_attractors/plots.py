"""Matplotlib figures, drawn from saved results only (nothing here trains)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def accuracy_heatmap(A: torch.Tensor, title: str = "") -> Figure:
    """Heat map of A(i, j) (rows = evaluated task i, columns = after training task j), each filled
    cell labelled with its accuracy in %."""
    n = A.shape[0]
    fig, ax = plt.subplots(figsize=(1.6 + 0.55 * n, 1.3 + 0.5 * n))
    percent = 100 * A.double().numpy()
    im = ax.imshow(percent, vmin=0, vmax=100, cmap="viridis")
    for (i, j), value in np.ndenumerate(percent):
        if not np.isnan(value):
            color = "black" if value > 60 else "white"  # viridis is light at the top
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8, color=color)
    ax.set(xlabel="after training task j", ylabel="evaluated task i", xticks=range(n), yticks=range(n))
    ax.set_title(f"{title}: accuracy (%)" if title else "accuracy (%)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


CURVE_TITLES = {
    "avg_acc_seen": "(a) accuracy over all tasks seen",
    "avg_acc_previous": "(b) accuracy over previous tasks",
    "current_acc": "(c) accuracy on the current task",
}


def _band(ax: plt.Axes, xs: list[float], stats: list[dict], label: str) -> None:
    """Mean line of accuracies (in %) with its CI band, clipped to [0, 100]."""
    keep = [(x, s) for x, s in zip(xs, stats) if s["mean"] is not None]
    if not keep:
        return
    x = [k[0] for k in keep]
    mean = [100 * k[1]["mean"] for k in keep]
    half = [100 * (k[1]["ci"] or 0.0) for k in keep]
    (line,) = ax.plot(x, mean, marker="o", ms=3, label=label)
    ax.fill_between(
        x,
        [max(m - h, 0.0) for m, h in zip(mean, half)],
        [min(m + h, 100.0) for m, h in zip(mean, half)],
        color=line.get_color(),
        alpha=0.2,
        lw=0,
    )


def curve_panels(agg: dict, title: str = "") -> Figure:
    """Three panels (tasks seen, previous tasks, current task) vs tasks trained, mean ± 95% CI."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharex=True)
    for ax, (curve, panel) in zip(axes, CURVE_TITLES.items()):
        for name, v in agg["variants"].items():
            stats = v["curves"][curve]
            _band(ax, list(range(1, len(stats) + 1)), stats, f"{name} (n={len(v['seeds'])})")
        ax.set(title=panel, xlabel="tasks trained", ylabel="test accuracy (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{title} — shaded: 95% CI over seeds (Student t)" if title else "")
    fig.tight_layout()
    return fig


def sweep_plot(agg: dict, metric: str = "final_avg_acc", xlabel: str = "shared fraction") -> Figure:
    """``metric`` (mean ± 95% CI) against the sweep value, one line per variant group."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    groups: dict[str, list[tuple[float, dict]]] = {}
    for v in agg["variants"].values():
        if v["x"] is not None:
            groups.setdefault(v["group"], []).append((v["x"], v["final"][metric]))
    for group, points in groups.items():
        points.sort(key=lambda p: p[0])
        _band(ax, [p[0] for p in points], [p[1] for p in points], group)
    ax.set(xlabel=xlabel, ylabel=f"{metric} (%)", title=f"{metric} after the last task, 95% CI")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plasticity_plot(x: torch.Tensor, f: torch.Tensor, params: dict[str, float]) -> Figure:
    """The plasticity function f(w) (the learning-rate multiplier of gradients leaving a1)."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.plot(x.numpy(), f.numpy())
    if "a1" in params:
        ax.axvline(params["a1"], color="gray", ls="--", lw=1, label=f"a1 = {params['a1']:g}")
        ax.legend()
    ax.set(
        xlabel="weight w",
        ylabel="f(w)",
        title="plasticity: " + ", ".join(f"{k}={v:g}" for k, v in params.items()),
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def weight_histograms(
    hists: dict[str, tuple[torch.Tensor, torch.Tensor]], ymax: dict[str, float], modes: dict[str, list[float]]
) -> Figure:
    """One panel per variant: the final-weight histogram (density), y-axis truncated at ``ymax``."""
    fig, axes = plt.subplots(1, len(hists), figsize=(5.2 * len(hists), 4.0), squeeze=False)
    for ax, (name, (edges, counts)) in zip(axes[0], hists.items()):
        width = float(edges[1] - edges[0])
        density = counts / max(float(counts.sum()) * width, 1e-12)
        ax.bar(edges[:-1].numpy(), density.numpy(), width=width, align="edge")
        for m in modes.get(name, []):
            ax.axvline(m, color="red", lw=0.8, ls=":")
        title = name + (f" (y truncated at {ymax[name]:g})" if name in ymax else "")
        if name in ymax:
            ax.set_ylim(0, ymax[name])
        ax.set(title=title, xlabel="weight (|w| ≥ 1e-5)", ylabel="density")
    fig.tight_layout()
    return fig
