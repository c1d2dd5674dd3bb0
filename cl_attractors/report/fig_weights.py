"""Fig. 5: histograms of the finished runs' final weights (pooled over seeds), their modes, and
each variant's retention beside its weight shape."""

from __future__ import annotations

import pandas as pd
import torch

from cl_attractors import plots
from cl_attractors.grid.spec import ExperimentSpec, Run
from cl_attractors.io import write_json, write_text
from cl_attractors.report.aggregate import fmt, variant_cell
from cl_attractors.report.params import variant_param
from cl_attractors.report.tables import to_csv, to_markdown
from cl_attractors.report.weights import final_weights, find_modes, histogram


def attractors(spec: ExperimentSpec) -> dict[str, float]:
    """Each variant's attractor a1 (variants whose method has none are left out)."""
    out = {}
    for name, (_, _, args) in spec.variant_args().items():
        a1 = variant_param([*spec.overrides, *args], "a1")
        if a1 is not None:
            out[name] = a1
    return out


def seeds_text(seeds: list[int]) -> str:
    """``seeds 0–9`` for a contiguous range, else the list."""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return f"seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))}"


def _done(runs: list[Run], variant: str) -> list[Run]:
    return [
        r
        for r in runs
        if r.variant == variant and r.complete and (r.run_dir / "checkpoints" / "last.ckpt").is_file()
    ]


def render_weights(spec: ExperimentSpec, runs: list[Run], agg: dict) -> tuple[dict[str, list[float]], str]:
    """Histograms, modes, mass per range: figure, ``_hist.csv`` and ``_modes.json``; returns the
    modes per variant and the results.md section."""
    o = spec.report
    lo, hi = o.x_range or (-0.5, 0.5)
    min_abs = o.min_abs
    hists, modes, mass, seeds = {}, {}, {}, {}
    ranges = o.mass_ranges
    for variant in dict.fromkeys(r.variant for r in runs):
        done = _done(runs, variant)
        if not done:
            continue
        values = torch.cat([final_weights(r.run_dir, min_abs) for r in done])
        edges, counts = histogram(values, o.bin_width, lo, hi)
        hists[variant] = (edges, counts)
        mass[variant] = [float(((values >= a) & (values < b)).double().mean()) for a, b in ranges]
        m = o.modes
        modes[variant] = find_modes(edges, counts, m.smooth_bins, m.min_prominence, m.min_height, m.min_count)
        seeds[variant] = sorted(r.seed for r in done)
    if not hists:
        return modes, "No finished run has a final checkpoint yet.\n"
    a1 = {k: v for k, v in attractors(spec).items() if k in hists}
    titles = {k: f"{agg['variants'][k]['label']} ({seeds_text(s)})" for k, s in seeds.items()}
    all_seeds = sorted({s for v in seeds.values() for s in v})
    title = f"Final weights, |w| < {min_abs:g} removed, pooled over {seeds_text(all_seeds)} per panel"
    fig = plots.weight_histograms(hists, modes, titles, a1, title, o.yscale)
    plots.save_figure(fig, spec.results_dir / f"{spec.name}.png")
    edges = next(iter(hists.values()))[0]
    table = pd.DataFrame({"bin_left": edges[:-1].numpy(), "bin_right": edges[1:].numpy()})
    for k, (_, counts) in hists.items():
        table[k] = counts.numpy().astype(int)
    write_text(spec.results_dir / f"{spec.name}_hist.csv", to_csv(table))
    write_json(
        spec.results_dir / f"{spec.name}_modes.json",
        {"modes": modes, "seeds": seeds, "attractors": a1, "mass_ranges": ranges, "mass": mass},
    )
    return modes, _section(spec, agg, modes, seeds, a1) + mass_table(agg, ranges, mass)


def _section(
    spec: ExperimentSpec,
    agg: dict,
    modes: dict[str, list[float]],
    seeds: dict[str, list[int]],
    a1: dict[str, float],
) -> str:
    rows = [
        [
            variant_cell(agg, k),
            seeds_text(seeds[k]),
            fmt(agg["variants"][k]["final"]["final_avg_acc"]),
            fmt(agg["variants"][k]["final"]["forgetting"]),
            f"{a1[k]:.4g}" if k in a1 else "—",
            ", ".join(f"{m:.3f}" for m in modes[k]) or "none",
        ]
        for k in modes
    ]
    cols = ["variant", "checkpoints", "final acc. (%)", "forgetting (points)", "attractor a1", "modes found"]
    return (
        f"Histograms pool both weight matrices of each variant's final checkpoints (the seeds in the "
        f"table), weights with |w| < {spec.report.min_abs:g} removed "
        f"(`{spec.name}_hist.csv`); modes (`{spec.name}_modes.json`) are the red dotted lines, "
        "labelled with their location; the grey dashed line is the variant's attractor a1.\n\n"
        "Weight shape beside retention (mean ± 95% CI over seeds):\n\n"
        + to_markdown(pd.DataFrame(rows, columns=cols))
        + "\n"
    )


def mass_table(agg: dict, ranges: list[tuple[float, float]], mass: dict[str, list[float]]) -> str:
    """Markdown: the fraction of each variant's kept weights in each ``[a, b)`` range."""
    if not ranges or not mass:
        return ""
    cols = ["variant", *(f"[{a:g}, {b:g})" for a, b in ranges)]
    rows = [[variant_cell(agg, k), *(f"{100 * f:.3f}%" for f in v)] for k, v in mass.items()]
    return "Fraction of the kept weights in each range:\n\n" + to_markdown(pd.DataFrame(rows, columns=cols))
