"""The stability-gap figure (``kind: stability``): accuracy on task 1 and the mean over the old tasks
through the whole sequence (runs made with ``--eval_every_n_steps``), mean and 95% CI over seeds,
the task switches marked; the minimum after each switch and the steps to recover as tables."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from cl_attractors import plots
from cl_attractors.errors import ConfigError
from cl_attractors.grid.spec import ExperimentSpec, Run
from cl_attractors.io import write_text
from cl_attractors.report.stats import mean_ci
from cl_attractors.report.tables import to_csv, to_markdown
from cl_attractors.stability import CURVE_FILE, old_tasks_mean, read_curve, stability_gaps, switches

PANELS = {"first": "(a) accuracy on task 1", "old_mean": "(b) mean accuracy over the tasks already trained"}


def load_curves(runs: list[Run]) -> dict[str, dict[int, pd.DataFrame]]:
    """variant -> seed -> curve of every complete run (a complete run without one is refused)."""
    out: dict[str, dict[int, pd.DataFrame]] = {}
    for run in runs:
        if run.complete:
            if not (run.run_dir / CURVE_FILE).exists():
                raise ConfigError(
                    f"{run.run_dir} has no {CURVE_FILE}: a stability grid's runs need "
                    "--eval_every_n_steps (delete the run and re-run it)"
                )
            out.setdefault(run.variant, {})[run.seed] = read_curve(run.run_dir)
    return out


def through_training(curves: dict[str, dict[int, pd.DataFrame]]) -> pd.DataFrame:
    """Mean and CI over seeds of task 1's accuracy and the old tasks' mean at every evaluation."""
    rows = []
    for variant, by_seed in curves.items():
        frames = [old_tasks_mean(c).assign(seed=s) for s, c in by_seed.items()]
        for (step, name), values in (
            pd.concat(frames).melt(["step", "trained", "seed"]).groupby(["step", "variable"])["value"]
        ):
            stat = mean_ci(values.tolist())
            rows.append({"variant": variant, "curve": name, "step": step, **_stat(stat)})
    # one seed gives no CI (None): NaN, so the column stays numeric (the figure draws no band)
    return pd.DataFrame(rows, columns=["variant", "curve", "step", "mean", "ci", "n"]).astype({"ci": float})


def gap_table(curves: dict[str, dict[int, pd.DataFrame]], tol: float) -> pd.DataFrame:
    """Per variant, curve and switch: the minimum, the drop and the steps to recover (mean and CI
    over seeds; ``recovered`` counts the seeds that recovered before the next switch)."""
    per_run = pd.concat(
        [stability_gaps(c, tol).assign(variant=v, seed=s) for v, by in curves.items() for s, c in by.items()]
    )
    rows = []
    for (variant, name, switch), group in per_run.groupby(["variant", "curve", "switch"], sort=False):
        row = {"variant": variant, "curve": name, "switch": int(switch), "seeds": len(group)}
        for col in ("before", "min", "drop", "recover_steps"):
            stat = _stat(mean_ci(group[col].tolist()))
            row[col], row[f"{col}_ci"] = stat["mean"], stat["ci"]
        row["recovered"] = int(group["recover_steps"].notna().sum())
        rows.append(row)
    return pd.DataFrame(rows)


def _stat(stat: dict) -> dict:
    return {"mean": stat["mean"], "ci": stat["ci"], "n": stat["n"]}


def figure(table: pd.DataFrame, labels: dict[str, str], starts: list[int], title: str) -> Figure:
    """Two panels against optimizer steps, one line (± CI band) per variant, switches dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.6), sharey=True)
    for ax, (name, panel) in zip(axes, PANELS.items()):
        ax.set_prop_cycle(plots.MANY_LINES)
        for variant, rows in table[table["curve"] == name].groupby("variant", sort=False):
            mean, half = 100 * rows["mean"], 100 * rows["ci"].fillna(0.0)
            (line,) = ax.plot(rows["step"], mean, lw=1.2, label=labels.get(str(variant), str(variant)))
            ax.fill_between(rows["step"], mean - half, mean + half, color=line.get_color(), alpha=0.2, lw=0)
        for start in starts:
            ax.axvline(start, color="grey", ls=":", lw=0.8)
        ax.set(title=panel, xlabel="optimizer steps (dotted: a new task starts)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy on a fixed subsample (%)")
    seeds = table.groupby("variant")["n"].max().tolist()
    fig.suptitle(" — ".join(t for t in (title, plots.ci_note(seeds)) if t))
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


def _cell(row: pd.Series) -> str:
    if row["min"] is None or (isinstance(row["min"], float) and math.isnan(row["min"])):
        return "—"
    ci = f" ± {100 * row['min_ci']:.1f}" if isinstance(row["min_ci"], float) else ""
    steps = "not in the task" if row["recovered"] == 0 else f"{row['recover_steps']:.0f}"
    return f"{100 * row['min']:.1f}{ci} / {steps} ({row['recovered']}/{row['seeds']})"


def gap_markdown(gaps: pd.DataFrame, labels: dict[str, str], tol: float) -> str:
    """One table per curve: rows = variants, columns = switches, cells = min (%) ± CI / steps."""
    out = [
        f"Each cell: the lowest accuracy (%, mean ± 95% CI over seeds) after the switch to that task, "
        f"then the steps after the switch until the accuracy is back within {100 * tol:g} points of its "
        "value at the switch (mean over the seeds that recovered before the next switch; their count "
        "in brackets). Each switch's accuracy before it, minimum, drop and steps, with CIs: "
        "`stability_gaps.csv`.",
        "",
    ]
    for name, panel in PANELS.items():
        part = gaps[gaps["curve"] == name]
        if part.empty:
            continue
        wide = {
            labels.get(str(v), str(v)): {f"task {int(r['switch']) + 1}": _cell(r) for _, r in g.iterrows()}
            for v, g in part.groupby("variant", sort=False)
        }
        frame = pd.DataFrame.from_dict(wide, orient="index")
        out += [f"### {panel[4:].capitalize()}", "", to_markdown(frame.reset_index(names="variant")), ""]
    return "\n".join(out)


def render_stability(spec: ExperimentSpec, runs: list[Run], labels: dict[str, str], out: Path) -> str:
    """Write the figure and the CSVs of a stability grid; returns its results.md section."""
    curves = load_curves(runs)
    if not curves:
        return "No finished run yet.\n"
    tol = spec.report.tolerance
    table, gaps = through_training(curves), gap_table(curves, tol)
    first = next(iter(next(iter(curves.values())).values()))
    plots.save_figure(
        figure(table, labels, switches(first), spec.report.title or spec.name), out / f"{spec.name}.png"
    )
    write_text(out / "stability_curves.csv", to_csv(table))
    write_text(out / "stability_gaps.csv", to_csv(gaps))
    return "## Stability gap\n\n" + gap_markdown(gaps, labels, tol)
