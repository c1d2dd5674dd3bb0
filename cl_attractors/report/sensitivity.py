"""Baseline sensitivity: a metric against each swept method argument (log axis), with the unswept
variants as reference bands and every setting's seed-paired gap to the baseline variant."""

from __future__ import annotations

import pandas as pd

from cl_attractors import plots
from cl_attractors.grid.spec import ExperimentSpec, tuned_value
from cl_attractors.io import write_text
from cl_attractors.report.aggregate import fmt, paired_gap, variant_cell
from cl_attractors.report.claims import significant
from cl_attractors.report.tables import to_csv, to_markdown


def gaps(agg: dict, baseline: str, metric: str) -> dict[str, dict]:
    """Seed-paired ``variant - baseline`` of every swept variant (empty without the baseline)."""
    if baseline not in agg["variants"]:
        return {}
    return {
        name: paired_gap(agg, name, baseline, metric)
        for name, v in agg["variants"].items()
        if v["x"] is not None
    }


def _ci(stat: dict) -> str:
    if stat["mean"] is None:
        return "n/a"
    if stat["ci"] is None:
        return f"{100 * stat['mean']:+.2f} (1 seed, no CI)"
    lo, hi = stat["mean"] - stat["ci"], stat["mean"] + stat["ci"]
    return f"{100 * stat['mean']:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}]"


def _table(agg: dict, gap: dict[str, dict], metric: str) -> pd.DataFrame:
    rows = []
    for name, v in sorted(agg["variants"].items(), key=lambda kv: (kv[1]["x"] is not None, kv[1]["group"])):
        g = gap.get(name)
        rows.append(
            [
                variant_cell(agg, name),
                "—" if v["x"] is None else f"{v['x']:.4g}",
                len(v["seeds"]),
                fmt(v["final"][metric]),
                "reference" if v["x"] is None else ("n/a" if g is None else _ci(g)),
                "" if g is None else ("**yes**" if significant(g) else "no"),
            ]
        )
    cols = ["variant", "value", "seeds", f"{metric} (%)", "− baseline, paired (points, 95% CI)", "above?"]
    return pd.DataFrame(rows, columns=cols)


def sweep_marks(spec: ExperimentSpec) -> dict[str, dict[float, str]]:
    """The YAML's labelled vertical lines per panel, plus each sweep's tuned value."""
    marks = {g: dict(m) for g, m in spec.report.marks.items()}
    for group, sweep in spec.sweeps.items():
        tuned = tuned_value(sweep)
        if tuned is not None:
            marks.setdefault(group, {})[tuned] = str(sweep.get("tuned_label", f"tuned: {tuned:.4g}"))
    return marks


def render_sensitivity(spec: ExperimentSpec, agg: dict) -> str:
    """The figure and its data; returns the results.md section."""
    o = spec.report
    metric, baseline, xlabels = o.metric, o.baseline, o.xlabels
    panels = {g: str(xlabels.get(g, s["flag"])) for g, s in spec.sweeps.items() if g in spec.variants}
    gap = gaps(agg, baseline, metric)
    beats = {name for name, s in gap.items() if significant(s)}
    if panels:
        title = o.title or spec.name
        fig = plots.sensitivity_plot(agg, panels, metric, sweep_marks(spec), beats, title)
        plots.save_figure(fig, spec.results_dir / f"{spec.name}.png")
    table = _table(agg, gap, metric)
    write_text(spec.results_dir / f"{spec.name}_gaps.csv", to_csv(table))
    shown = ", ".join(variant_cell(agg, b) for b in sorted(beats)) or "none"
    missing = "" if baseline in agg["variants"] else f" (the baseline `{baseline}` has no finished run yet)"
    return (
        f"Each swept setting against the baseline `{baseline}`, seed-paired, in points of {metric}"
        f"{missing}. Settings whose 95% CI lies above the baseline (starred in the figure): "
        f"**{shown}**.\n\n" + to_markdown(table) + "\n"
    )
