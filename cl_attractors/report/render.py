"""Render an experiment from saved results only: tables, the figure with its data, results.md."""

from __future__ import annotations

import datetime
import itertools
from pathlib import Path

import pandas as pd

from cl_attractors import plots
from cl_attractors.grid.spec import ExperimentSpec, Run
from cl_attractors.io import write_text
from cl_attractors.report import provenance
from cl_attractors.report.aggregate import (
    aggregate,
    delta_columns,
    fmt,
    markdown_table,
    write_tables,
)
from cl_attractors.report.claims import claims_markdown, evaluate
from cl_attractors.report.fig_weights import attractors, render_weights, seeds_text
from cl_attractors.report.plasticity import render_plasticity
from cl_attractors.report.published import published_markdown
from cl_attractors.report.scoreboard import render_scoreboard
from cl_attractors.report.sensitivity import render_sensitivity
from cl_attractors.report.stability_gap import render_stability

CLAIM_RULES = (
    "On the 95% CI of the seed-paired difference (points): a gap claim **holds** when the CI lies "
    "on the claimed side of 0 and contains the paper's value; **direction holds, size does not** "
    "when only the side agrees; **inconclusive** when the CI contains both 0 and the paper's value "
    "(the seeds cannot tell them apart); **does not hold** when it excludes the paper's value "
    "without showing the claimed side, or lies on the other side; **not run yet** when a variant "
    "it names has no finished run. See `cl_attractors/report/claims.py` for every rule."
)


def _header(spec: ExperimentSpec, title: str) -> list[str]:
    seeds = f" --seeds {' '.join(map(str, spec.seeds))}" if spec.needs_runs else ""
    lines = [
        f"# {title}",
        "",
        f"Rendered by `python cli.py report --config {spec.source}{seeds}` on "
        f"{datetime.date.today().isoformat()} from saved results only.",
        "",
    ]
    if spec.changes:
        lines += [
            "**Not the config's protocol**: the command line changed it "
            f"({'; '.join(f'`{c}`' for c in spec.changes)}); the title and the paper's claims "
            "refer to the config's own protocol.",
            "",
        ]
    return lines


def _missing(missing: list[str], shown: int = 8) -> str:
    if not missing:
        return ""
    more = f" and {len(missing) - shown} more" if len(missing) > shown else ""
    return f"; not finished ({len(missing)}): {', '.join(missing[:shown])}{more}"


def _figure(spec: ExperimentSpec, runs: list[Run], agg: dict, title: str) -> tuple[dict | None, str]:
    """Draw the kind's figure; returns the weight modes (Fig. 5 kinds) and an extra section."""
    path = spec.results_dir / f"{spec.name}.png"
    if spec.kind == "curves":
        plots.save_figure(plots.curve_panels(agg, title), path)
    elif spec.kind == "shared":
        metric = spec.report.metrics or spec.report.metric
        plots.save_figure(plots.sweep_plot(agg, metric, spec.report.xlabel, title), path)
    elif spec.kind == "sensitivity":
        return None, render_sensitivity(spec, agg)
    elif spec.kind == "stability":
        plots.save_figure(plots.curve_panels(agg, title), spec.results_dir / f"{spec.name}_tasks.png")
        return None, render_stability(spec, runs, labels(spec), spec.results_dir)
    else:
        return render_weights(spec, runs, agg)
    return None, ""


def labels(spec: ExperimentSpec) -> dict[str, str]:
    """The YAML's ``labels``; a variant without one that names a method file is labelled with it."""
    out = {}
    for name, args in spec.variants.items():
        methods = [b for a, b in itertools.pairwise(args) if a == "--model.method"]
        if methods:
            out[name] = f"{name} ({methods[-1]})"
    return {**out, **spec.report.labels}


def reference(spec: ExperimentSpec) -> str | None:
    """The variant (or sweep group) the tables' Δ column compares with: the YAML's ``reference``,
    a sensitivity grid's ``baseline``, else the first variant (also when ``--variants`` left the
    named one out)."""
    named = spec.report.reference or (spec.report.baseline if spec.kind == "sensitivity" else None)
    known = set(spec.variants) | set(spec.variant_args())
    if named in known:
        return named
    return next(iter(spec.variants), None)


def _final_heading(agg: dict) -> str:
    counts = [len(v["seeds"]) for v in agg["variants"].values()]
    if counts and max(counts) >= 2:
        return "## Final numbers (after the last task; mean ± 95% CI half-width over seeds, Student t)"
    return "## Final numbers (after the last task; one seed: no confidence interval)"


def render(spec: ExperimentSpec, runs: list[Run]) -> Path:
    """Write every table, figure and ``results.md`` of ``spec`` into its results_dir; returns results.md
    (for ``kind: scoreboard``, the results README it rewrote)."""
    if spec.kind == "scoreboard":
        return render_scoreboard(spec)
    out, title = spec.results_dir, spec.report.title or spec.name
    lines = _header(spec, title)
    if spec.kind == "plasticity":
        lines += [render_plasticity(spec), f"![{spec.name}]({spec.name}.png)", ""]
        write_text(out / "results.md", "\n".join(lines))
        return out / "results.md"
    agg = aggregate(runs, labels(spec), reference(spec), spec.report.references)
    finished = [r.run_dir / "metrics.json" for r in runs if r.complete]
    made = provenance.made_by(spec, finished)
    agg["provenance"] = made
    for directory in (out, spec.out_dir):
        write_tables(agg, directory)
    modes, section = _figure(spec, runs, agg, title)
    seeds = sorted({s for v in agg["variants"].values() for s in v["seeds"]})
    lines += [
        f"Runs: `{spec.out_dir}` — {sum(len(v['seeds']) for v in agg['variants'].values())} finished "
        f"runs over seeds {seeds}; base config `{spec.base}`" + _missing(agg["missing"]) + ".",
        "",
        _final_heading(agg),
        "",
        markdown_table(agg),
        "Per-task curves: `curves.csv`; final summaries: `final.csv`; everything: `aggregate.json`.",
        "",
        "## Figure",
        "",
        f"![{spec.name}]({spec.name}.png)",
        "",
    ]
    if section:
        lines += [section]
    if spec.report.published:
        lines += [published_markdown(agg, spec.report.published)]
    if spec.claims:
        results = evaluate(spec.claims, agg, modes, attractors(spec))
        lines += [
            "## The paper's claims against the measurements",
            "",
            claims_markdown(results),
            CLAIM_RULES,
            "",
        ]
    lines += ["## How these results were made", "", provenance.markdown(made)]
    if spec.report.notes:
        lines += ["## Notes", "", spec.report.notes.strip(), ""]
    write_text(out / "results.md", "\n".join(lines))
    if spec.report.summary:
        print(terminal_summary(spec, agg, made))
    return out / "results.md"


SUMMARY = {
    "final average accuracy (%)": "final_avg_acc",
    "forgetting (points)": "forgetting",
    "BWT (points)": "bwt",
    "current-task accuracy (%)": "final_current_acc",
}


def terminal_summary(spec: ExperimentSpec, agg: dict, made: dict) -> str:
    """The table printed at the end of a grid (unless ``summary: false``): one row per variant."""
    names = [v["label"] for v in agg["variants"].values()]
    width = max(map(len, ["variant", *names]))
    rows = [
        [name.ljust(width), *(fmt(v["final"][k]) for k in SUMMARY.values())]
        for name, v in zip(names, agg["variants"].values())
    ]
    df = pd.DataFrame(rows, columns=["variant".ljust(width), *SUMMARY])
    seeds = sorted({s for v in agg["variants"].values() for s in v["seeds"]})
    if agg.get("reference") is not None and len(agg["variants"]) > 1:
        df = df.assign(**delta_columns(agg, ci=len(seeds) > 1))
    table = df.to_string(index=False)
    own = [r for r in made["invocations"] if r["grid"] == spec.name]
    last = own[-1] if own else None
    wall = (
        f"wall time {provenance.wall_text(last)} (`cli.py experiment` of {last['started']}; "
        f"load average {last.get('load_avg_1min_at_end', '—')} on {provenance.machine(last)} at its end)"
        if last
        else "wall time not recorded"
    )
    return (
        f"\n{spec.report.title or spec.name} — {seeds_text(seeds)}"
        f"{'' if len(seeds) < 2 else ', mean ± 95% CI'}\n{table}\n{wall}\n"
        f"figure: {spec.results_dir / f'{spec.name}.png'}"
    )
