"""Render an experiment from saved results only: tables, the figure with its data, results.md."""

from __future__ import annotations

import datetime
from pathlib import Path

import torch

from cl_attractors import plots
from cl_attractors.errors import ConfigError
from cl_attractors.grid.spec import ExperimentSpec, Run
from cl_attractors.io import read_yaml, write_json, write_text
from cl_attractors.report.aggregate import aggregate, markdown_table, write_tables
from cl_attractors.report.claims import claims_markdown, evaluate
from cl_attractors.report.weights import final_weights, find_modes, histogram


def _save(fig: plots.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plots.plt.close(fig)
    tmp.replace(path)


def method_params(path: str) -> dict[str, float]:
    """The numeric ``init_args`` of a method YAML (``class_path``/``init_args``)."""
    raw = read_yaml(Path(path), "method_config") or {}
    init = raw.get("init_args", raw) if isinstance(raw, dict) else {}
    return {k: float(v) for k, v in init.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def render_plasticity(spec: ExperimentSpec) -> str:
    """Fig. 1b: f on a grid of weights for the configured phi; no training."""
    from cl_attractors.methods.maths import plasticity

    path = spec.options.get("method_config")
    if path is None:
        raise ConfigError(f"{spec.name}: kind=plasticity needs method_config: <method yaml>")
    params = method_params(path)
    names = spec.options.get("params", ["a1", "lam", "gamma"])
    missing = [k for k in names if k not in params]
    if missing:
        raise ConfigError(f"method_config={path} has no init_args {', '.join(missing)}")
    shown = {k: params[k] for k in names}
    lo, hi = spec.options.get("x_range", [-1.0, 1.0])
    x = torch.linspace(float(lo), float(hi), int(spec.options.get("points", 2001)), dtype=torch.float64)
    f = plasticity(x, **shown)
    _save(plots.plasticity_plot(x, f, shown), spec.results_dir / f"{spec.name}.png")
    write_text(
        spec.results_dir / f"{spec.name}.csv",
        "w,f\n" + "".join(f"{a:.6f},{b:.6f}\n" for a, b in zip(x.tolist(), f.tolist())),
    )
    measured = {"f_min": float(f.min()), "argmin_w": float(x[f.argmin()]), "f_far": float(f[0])}
    write_json(spec.results_dir / f"{spec.name}.json", {"params": shown, **measured})
    text = (
        f"Plasticity f for φ from `{path}`: {', '.join(f'{k}={v:g}' for k, v in shown.items())}.\n\n"
        f"Measured on [{lo}, {hi}]: minimum f = {measured['f_min']:.4g} at w = {measured['argmin_w']:.4g}; "
        f"f = {measured['f_far']:.4g} far from the dip (w = {lo}).\n"
    )
    expect = spec.options.get("expect")
    if expect:
        holds = (
            abs(measured["f_far"] - expect["plateau"]) <= expect["plateau_tol"]
            and measured["f_min"] <= expect["dip_max"]
            and abs(measured["argmin_w"] - expect["dip_at"]) <= expect["dip_tol"]
        )
        text += (
            f'\nPaper: "{expect["text"]}" — plateau {expect["plateau"]} ± {expect["plateau_tol"]}, '
            f"dip to ≤ {expect['dip_max']} at {expect['dip_at']} ± {expect['dip_tol']}: "
            f"**{'holds' if holds else 'does not hold'}**.\n"
        )
    return text


def render_weights(spec: ExperimentSpec, runs: list[Run]) -> tuple[dict[str, list[float]], str]:
    """Fig. 5: histograms of the finished runs' final weights (pooled over seeds), modes, data.

    Returns the modes per variant and a markdown table of the weight mass in ``mass_ranges``.
    """
    o = spec.options
    lo, hi = o.get("x_range", [-0.5, 0.5])
    hists, modes, mass = {}, {}, {}
    ranges = [tuple(map(float, r)) for r in o.get("mass_ranges", [])]
    for variant in dict.fromkeys(r.variant for r in runs):
        done = [
            r
            for r in runs
            if r.variant == variant and r.complete and (r.run_dir / "checkpoints" / "last.ckpt").is_file()
        ]
        if not done:
            continue
        values = torch.cat([final_weights(r.run_dir, float(o.get("min_abs", 1e-5))) for r in done])
        edges, counts = histogram(values, float(o.get("bin_width", 0.005)), float(lo), float(hi))
        hists[variant] = (edges, counts)
        mass[variant] = [float(((values >= a) & (values < b)).double().mean()) for a, b in ranges]
        modes[variant] = find_modes(edges, counts, **o.get("modes", {}))
    ymax = {k: float(v) for k, v in o.get("ymax", {}).items() if k in hists}
    if hists:
        _save(plots.weight_histograms(hists, ymax, modes), spec.results_dir / f"{spec.name}.png")
        edges = next(iter(hists.values()))[0]
        header = "bin_left,bin_right," + ",".join(hists)
        rows = [
            f"{edges[i]:.4f},{edges[i + 1]:.4f}," + ",".join(str(int(c[1][i])) for c in hists.values())
            for i in range(len(edges) - 1)
        ]
        write_text(spec.results_dir / f"{spec.name}_hist.csv", header + "\n" + "\n".join(rows) + "\n")
        write_json(
            spec.results_dir / f"{spec.name}_modes.json",
            {"modes": modes, "mass_ranges": ranges, "mass": mass},
        )
    return modes, mass_table(ranges, mass)


def mass_table(ranges: list[tuple[float, float]], mass: dict[str, list[float]]) -> str:
    """Markdown: the fraction of each variant's kept weights in each ``[a, b)`` range."""
    if not ranges or not mass:
        return ""
    head = "| variant | " + " | ".join(f"[{a:g}, {b:g})" for a, b in ranges) + " |\n"
    head += "|---" * (len(ranges) + 1) + "|\n"
    return head + "".join(
        f"| {k} | " + " | ".join(f"{100 * f:.3f}%" for f in v) + " |\n" for k, v in mass.items()
    )


def _missing(missing: list[str], shown: int = 8) -> str:
    if not missing:
        return ""
    more = f" and {len(missing) - shown} more" if len(missing) > shown else ""
    return f"; not finished ({len(missing)}): {', '.join(missing[:shown])}{more}"


def render(spec: ExperimentSpec, runs: list[Run]) -> Path:
    """Write every table, figure and ``results.md`` of ``spec`` into its results_dir; returns results.md."""
    out = spec.results_dir
    title = spec.options.get("title", spec.name)
    lines = [
        f"# {title}",
        "",
        f"Generated by `python cli.py report --config {spec.source}"
        + (f" --seeds {' '.join(map(str, spec.seeds))}" if spec.needs_runs else "")
        + "` on "
        f"{datetime.date.today().isoformat()} from saved results only.",
        "",
    ]
    if spec.kind == "plasticity":
        lines += [render_plasticity(spec), f"![{spec.name}]({spec.name}.png)", ""]
        path = out / "results.md"
        write_text(path, "\n".join(lines))
        return path
    agg = aggregate(runs)
    for directory in (out, spec.out_dir):
        write_tables(agg, directory)
    modes = None
    if spec.kind == "curves":
        _save(plots.curve_panels(agg, title), out / f"{spec.name}.png")
    elif spec.kind == "shared":
        _save(
            plots.sweep_plot(
                agg,
                spec.options.get("metric", "final_avg_acc"),
                spec.options.get("xlabel", "shared fraction"),
            ),
            out / f"{spec.name}.png",
        )
    else:
        modes, masses = render_weights(spec, runs)
    seeds = sorted({s for v in agg["variants"].values() for s in v["seeds"]})
    lines += [
        f"Runs: `{spec.out_dir}` — {sum(len(v['seeds']) for v in agg['variants'].values())} finished "
        f"runs over seeds {seeds}; base config `{spec.base}`" + _missing(agg["missing"]) + ".",
        "",
        "## Final numbers (after the last task; mean ± 95% CI half-width over seeds, Student t)",
        "",
        markdown_table(agg),
        "Per-task curves: `curves.csv`; final summaries: `final.csv`; everything: `aggregate.json`.",
        "",
        "## Figure",
        "",
        f"![{spec.name}]({spec.name}.png)",
        "",
    ]
    if modes is not None:
        lines += [
            f"Histograms pool both weight matrices of every finished seed's final checkpoint, weights with "
            f"|w| < {spec.options.get('min_abs', 1e-5)} removed (`{spec.name}_hist.csv`); modes found "
            f"(`{spec.name}_modes.json`, red dotted lines): "
            + "; ".join(f"{k}: {', '.join(f'{m:.3f}' for m in v)}" for k, v in modes.items())
            + ".",
            "",
        ]
        if masses:
            lines += ["Fraction of the kept weights in each range:", "", masses]
    if spec.claims:
        lines += [
            "## The paper's claims against the measurements",
            "",
            claims_markdown(evaluate(spec.claims, agg, modes)),
            "A gap claim **holds** when the 95% CI of the seed-paired difference lies on the claimed side "
            "of 0 and contains the paper's magnitude; **direction holds, size does not** when only the "
            "side agrees. See `cl_attractors/report/claims.py` for every rule.",
            "",
        ]
    if spec.options.get("notes"):
        lines += ["## Notes", "", str(spec.options["notes"]).strip(), ""]
    path = out / "results.md"
    write_text(path, "\n".join(lines))
    return path
