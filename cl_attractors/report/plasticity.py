"""Fig. 1b: the plasticity function f on a grid of weights for the configured φ (no training)."""

from __future__ import annotations

import torch

from cl_attractors import plots
from cl_attractors.errors import ConfigError
from cl_attractors.grid.spec import ExperimentSpec
from cl_attractors.io import write_json, write_text
from cl_attractors.report.params import method_params


def _holds(measured: dict[str, float], expect: dict) -> bool:
    return (
        abs(measured["f_far"] - expect["plateau"]) <= expect["plateau_tol"]
        and measured["f_min"] <= expect["dip_max"]
        and abs(measured["argmin_w"] - expect["dip_at"]) <= expect["dip_tol"]
    )


def render_plasticity(spec: ExperimentSpec) -> str:
    """The figure, its CSV and JSON; returns the results.md text (with the caption's check)."""
    from cl_attractors.methods.formulas import plasticity

    path = spec.report.method_config
    if path is None:
        raise ConfigError(f"{spec.name}: kind=plasticity needs method_config: <method yaml>")
    params = method_params(path)
    names = spec.report.params
    missing = [k for k in names if k not in params]
    if missing:
        raise ConfigError(f"method_config={path} has no init_args {', '.join(missing)}")
    shown = {k: params[k] for k in names}
    lo, hi = spec.report.x_range or (-1.0, 1.0)
    x = torch.linspace(lo, hi, spec.report.points, dtype=torch.float64)
    f = plasticity(x, **shown)
    plots.save_figure(plots.plasticity_plot(x, f, shown), spec.results_dir / f"{spec.name}.png")
    write_text(
        spec.results_dir / f"{spec.name}.csv",
        "w,f\n" + "".join(f"{a:.6f},{b:.6f}\n" for a, b in zip(x.tolist(), f.tolist())),
    )
    measured = {"f_min": float(f.min()), "argmin_w": float(x[f.argmin()]), "f_far": float(f[0])}
    write_json(spec.results_dir / f"{spec.name}.json", {"params": shown, **measured})
    text = (
        f"Plasticity f for φ from `{path}`: {', '.join(f'{k}={v:.4g}' for k, v in shown.items())}.\n\n"
        f"Measured on [{lo}, {hi}]: minimum f = {measured['f_min']:.4g} at w = {measured['argmin_w']:.4g}; "
        f"f = {measured['f_far']:.4g} far from the dip (w = {lo}).\n"
    )
    expect = spec.report.expect
    if expect:
        text += (
            f'\nPaper: "{expect["text"]}" — plateau {expect["plateau"]} ± {expect["plateau_tol"]}, '
            f"dip to ≤ {expect['dip_max']} at {expect['dip_at']} ± {expect['dip_tol']}: "
            f"**{'holds' if _holds(measured, expect) else 'does not hold'}**.\n"
        )
    return text
