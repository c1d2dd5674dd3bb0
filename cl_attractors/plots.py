"""Matplotlib figures, pure functions of numbers (nothing here trains or reads a run): the reports'
figures, fed by ``report/`` from saved results, and the accuracy heat-map that the TensorBoard
dashboard draws after each task of a run.

Legends show each variant's human ``label`` (from the aggregate); a title mentions confidence
intervals only where some variant has two seeds or more; panels that compare share their y-range.
"""

from __future__ import annotations

import io
import itertools
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from cycler import cycler
from matplotlib.colors import TABLEAU_COLORS
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cl_attractors.io import write_bytes

METRICS = {
    "final_avg_acc": "final average accuracy over the tasks seen (%)",
    "final_prev_acc": "final accuracy over the previous tasks (%)",
    "final_current_acc": "final accuracy on the current task (%)",
    "forgetting": "forgetting (%)",
}
HIST_COLUMNS = 3
CURVE_TITLES = {
    "avg_acc_seen": "(a) accuracy over all tasks seen",
    "avg_acc_previous": "(b) accuracy over previous tasks",
    "current_acc": "(c) accuracy on the current task",
}


def save_figure(fig: Figure, path: Path) -> None:
    """Save ``fig`` as PNG atomically (rendered in memory, then :func:`io.write_bytes`: a temporary
    file of its own, renamed) and close it. Two reports drawing the same figure at once (two
    ``experiment`` commands on one grid) no longer rename each other's temporary file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    write_bytes(path, buffer.getvalue())


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


LEGEND_ROW_IN = 0.17  # height of one legend row at fontsize 8, inches


def _legend_below(fig: Figure, axes: list[plt.Axes], ncol: int) -> None:
    """One legend for the whole figure under its panels (none covers a curve), labels deduplicated;
    the panels shrink to make room for its rows."""
    handles = {label: h for ax in axes for h, label in zip(*ax.get_legend_handles_labels())}
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    rows = math.ceil(len(handles) / ncol)
    fig.tight_layout(rect=(0, (0.1 + LEGEND_ROW_IN * rows) / fig.get_figheight() if rows else 0, 1, 1))


def _legend(ax: plt.Axes, **kwargs: object) -> None:
    """A legend, when something on ``ax`` has a label."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def ci_note(seed_counts: list[int], what: str = "shaded") -> str:
    """What the error bands mean, without claiming an interval that one seed cannot give."""
    if not seed_counts or max(seed_counts) < 2:
        return "one seed: no confidence interval"
    note = f"{what}: 95% CI over seeds (Student t)"
    return note + ("; variants with one seed have none" if min(seed_counts) < 2 else "")


def _seeds(agg: dict) -> list[int]:
    return [len(v["seeds"]) for v in agg["variants"].values()]


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


# matplotlib's ten colours, solid, then dashed: a grid of more than ten variants (Fig. 3 has 12)
MANY_LINES = cycler(linestyle=["-", "--"]) * cycler(color=list(TABLEAU_COLORS.values()))


def curve_panels(agg: dict, title: str = "") -> Figure:
    """Three panels (tasks seen, previous tasks, current task) vs tasks trained, one y-range."""
    rows = math.ceil(len(agg["variants"]) / 3)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.0 + LEGEND_ROW_IN * rows), sharex=True, sharey=True)
    for ax, (curve, panel) in zip(axes, CURVE_TITLES.items()):
        ax.set_prop_cycle(MANY_LINES)
        for v in agg["variants"].values():
            stats = v["curves"][curve]
            _band(ax, list(range(1, len(stats) + 1)), stats, f"{v['label']} (n={len(v['seeds'])})")
        ax.set(title=panel, xlabel="tasks trained")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    fig.suptitle(" — ".join(t for t in (title, ci_note(_seeds(agg))) if t))
    _legend_below(fig, [axes[0]], ncol=3)
    return fig


def sweep_plot(
    agg: dict,
    metric: str | list[str] = "final_avg_acc",
    xlabel: str = "shared fraction",
    title: str = "",
) -> Figure:
    """Each ``metric`` (mean ± 95% CI; a list: one panel each) against the sweep value, one line per
    variant group."""
    metrics = [metric] if isinstance(metric, str) else metric
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 4.4), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        groups: dict[str, list[tuple[float, dict]]] = {}
        labels: dict[str, str] = {}
        for v in agg["variants"].values():
            if v["x"] is not None:
                groups.setdefault(v["group"], []).append((v["x"], v["final"][name]))
                labels[v["group"]] = v["label"]
        for group, points in groups.items():
            points.sort(key=lambda p: p[0])
            _band(ax, [p[0] for p in points], [p[1] for p in points], labels[group])
        ax.set(xlabel=xlabel, ylabel=METRICS.get(name, name))
        ax.grid(alpha=0.3)
        _legend(ax)
    fig.suptitle("\n".join(t for t in (title, ci_note(_seeds(agg))) if t))
    fig.tight_layout()
    return fig


def _reference_bands(ax: plt.Axes, refs: list[dict], metric: str) -> list[float]:
    """Horizontal mean line ± CI band per reference variant; returns the y-values drawn."""
    ys = []
    for i, v in enumerate(refs):
        s = v["final"][metric]
        mean, half = 100 * s["mean"], 100 * (s["ci"] or 0.0)
        color = f"C{i + 1}"
        ax.axhspan(mean - half, mean + half, color=color, alpha=0.18, lw=0)
        ax.axhline(mean, color=color, lw=1.2, label=f"{v['label']} (n={len(v['seeds'])})")
        ys += [mean - half, mean + half]
    return ys


def sensitivity_plot(
    agg: dict,
    panels: dict[str, str],
    metric: str = "final_avg_acc",
    marks: dict[str, dict[float, str]] | None = None,
    beats: set[str] | None = None,
    title: str = "",
) -> Figure:
    """One log-x panel per swept group (``panels``: group -> x label): ``metric`` mean ± 95% CI
    per value; the unswept variants as horizontal bands; ``beats`` (variant names) starred."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.6), sharey=True, squeeze=False)
    refs = [v for v in agg["variants"].values() if v["x"] is None and v["final"][metric]["mean"] is not None]
    ys: list[float] = []
    for ax, (group, xlabel) in zip(axes[0], panels.items()):
        ys += _reference_bands(ax, refs, metric)
        pts = sorted(
            (v["x"], v["final"][metric], name, v)
            for name, v in agg["variants"].items()
            if v["group"] == group and v["x"] is not None and v["final"][metric]["mean"] is not None
        )
        if pts:
            means = [100 * p[1]["mean"] for p in pts]
            halves = [100 * (p[1]["ci"] or 0.0) for p in pts]
            n = max(len(p[3]["seeds"]) for p in pts)
            ax.errorbar(
                [p[0] for p in pts],
                means,
                yerr=halves,
                marker="o",
                color="k",
                capsize=3,
                label=f"{pts[0][3]['label']} (n={n})",
            )
            ys += [m - h for m, h in zip(means, halves)] + [m + h for m, h in zip(means, halves)]
            starred = [(p[0], m) for p, m in zip(pts, means) if p[2] in (beats or set())]
            for i, (x, m) in enumerate(starred):
                ax.plot(
                    x,
                    m,
                    marker="*",
                    ms=15,
                    color="gold",
                    mec="k",
                    zorder=5,
                    ls="none",
                    label="above the control (paired 95% CI > 0)" if i == 0 else None,
                )
        _marks(ax, (marks or {}).get(group, {}))
        ax.set_xscale("log")
        ax.set(xlabel=xlabel)
        ax.grid(alpha=0.3, which="both")
    if ys:
        pad = 0.05 * (max(ys) - min(ys) or 1.0)
        axes[0][0].set_ylim(max(min(ys) - pad, 0.0), min(max(ys) + pad, 100.0))
    axes[0][0].set_ylabel(METRICS.get(metric, metric))
    fig.suptitle(" — ".join(t for t in (title, ci_note(_seeds(agg), "bars and bands")) if t))
    _legend_below(fig, list(axes[0]), ncol=4)
    return fig


def _marks(ax: plt.Axes, marks: dict[float, str]) -> None:
    """A grey vertical line per marked value, each in its own dash style and named in the legend
    (text along the lines would hide the points of close values)."""
    for (x, text), style in zip(sorted(marks.items()), itertools.cycle([":", "--", "-."])):
        ax.axvline(float(x), color="dimgray", ls=style, lw=1.2, label=text)


def plasticity_plot(x: torch.Tensor, f: torch.Tensor, params: dict[str, float]) -> Figure:
    """The plasticity function f(w) (the learning-rate multiplier of gradients leaving a1)."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.plot(x.numpy(), f.numpy())
    if "a1" in params:
        ax.axvline(params["a1"], color="gray", ls="--", lw=1, label=f"a1 = {params['a1']:.4g}")
        ax.legend()
    ax.set(
        xlabel="weight w",
        ylabel="f(w)",
        title="plasticity: " + ", ".join(f"{k}={v:.4g}" for k, v in params.items()),
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _mode_lines(ax: plt.Axes, modes: list[float], a1: float | None) -> None:
    for i, m in enumerate(modes):
        ax.axvline(m, color="red", lw=0.9, ls=":", label="modes found" if i == 0 else None)
        ax.annotate(
            f"{m:.3f}",
            (m, 0.98),
            xycoords=("data", "axes fraction"),
            rotation=90,
            fontsize=7,
            color="red",
            ha="right",
            va="top",
        )
    if a1 is not None:
        ax.axvline(a1, color="gray", lw=0.9, ls="--", label=f"attractor a1 = {a1:.4g}")


def weight_histograms(
    hists: dict[str, tuple[torch.Tensor, torch.Tensor]],
    modes: dict[str, list[float]],
    titles: dict[str, str],
    attractors: dict[str, float] | None = None,
    title: str = "",
    yscale: str = "linear",
) -> Figure:
    """One panel per variant: the final-weight histogram (density) on one shared y-axis, its
    modes as labelled red dotted lines and, for attractor methods, a1 as a dashed line."""
    cols = min(len(hists), HIST_COLUMNS)  # readable at page width: at most 3 panels a row
    rows = math.ceil(len(hists) / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), sharey=True, squeeze=False)
    axes = grid.flatten()
    for ax in axes[len(hists) :]:
        ax.set_visible(False)
    lowest = float("inf")
    for ax, (name, (edges, counts)) in zip(axes, hists.items()):
        width = float(edges[1] - edges[0])
        density = counts / max(float(counts.sum()) * width, 1e-12)
        ax.bar(edges[:-1].numpy(), density.numpy(), width=width, align="edge")
        positive = density[density > 0]
        lowest = min(lowest, float(positive.min())) if positive.numel() else lowest
        _mode_lines(ax, modes.get(name, []), (attractors or {}).get(name))
        ax.set_title(titles.get(name, name), fontsize=9)
        ax.set_xlabel("weight")
        _legend(ax, fontsize=7, loc="upper left")
    for row in grid:
        row[0].set_ylabel("density" + (" (log scale)" if yscale == "log" else ""))
    if yscale == "log" and lowest < float("inf"):
        axes[0].set_yscale("log")
        axes[0].set_ylim(bottom=lowest / 2)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
