"""Aggregate finished runs over seeds: mean and 95% CI per task index and of the final summaries.

Pure functions of the runs' ``metrics.json`` contents, plus writers of the CSV / JSON / markdown
tables. Only complete runs (``"complete": true``) are aggregated. A variant carries its human
``label`` (the experiment YAML's ``labels:``, else its group's, else its name) into every table
and figure. Accuracies are in percent; differences of accuracies (BWT, forgetting, gaps between
variants) in points. Every table has a seed-paired Δ column against the grid's reference variant
(or, where the YAML's ``references`` names one, the variant's own reference).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from cl_attractors.errors import ConfigError
from cl_attractors.grid.spec import Run
from cl_attractors.io import write_json, write_text
from cl_attractors.report.stats import mean_ci
from cl_attractors.report.tables import to_csv, to_markdown

CURVES = ("avg_acc_seen", "avg_acc_previous", "current_acc")
FINALS = ("final_avg_acc", "final_prev_acc", "final_current_acc", "bwt", "forgetting")
FINAL_HEADS = (
    "acc. tasks seen (%)",
    "acc. previous tasks (%)",
    "acc. current task (%)",
    "BWT (points)",
    "forgetting (points)",
)


def load_finished(runs: list[Run]) -> dict[str, dict[int, dict]]:
    """variant -> seed -> metrics.json of every complete run."""
    out: dict[str, dict[int, dict]] = {}
    for run in runs:
        if run.complete:
            path = run.run_dir / "metrics.json"
            metrics = json.loads(path.read_text(encoding="utf-8"))
            missing = [k for k in (*CURVES, "bwt", "forgetting") if k not in metrics]
            if missing:
                raise ConfigError(
                    f"{path} says complete but lacks {', '.join(missing)}; delete the run and re-run it"
                )
            out.setdefault(run.variant, {})[run.seed] = metrics
    return out


def finals(metrics: dict) -> dict[str, float | None]:
    """The final-task summaries of one run (accuracy over seen/previous/current task, BWT, forgetting)."""
    return {
        "final_avg_acc": metrics["avg_acc_seen"][-1],
        "final_prev_acc": metrics["avg_acc_previous"][-1],
        "final_current_acc": metrics["current_acc"][-1],
        "bwt": metrics["bwt"],
        "forgetting": metrics["forgetting"],
    }


def aggregate_variant(by_seed: dict[int, dict]) -> dict:
    """Mean/CI over seeds of each curve (per task index) and of each final summary."""
    seeds = sorted(by_seed)
    runs = [by_seed[s] for s in seeds]
    n_tasks = min(len(m["avg_acc_seen"]) for m in runs)
    curves = {c: [mean_ci([m[c][j] for m in runs]) for j in range(n_tasks)] for c in CURVES}
    per_run = [finals(m) for m in runs]
    return {
        "seeds": seeds,
        "num_tasks": n_tasks,
        "curves": curves,
        "final": {k: mean_ci([f[k] for f in per_run]) for k in FINALS},
        "per_seed_final": {str(s): f for s, f in zip(seeds, per_run)},
    }


def label_of(labels: dict[str, str], name: str, group: str) -> str:
    """The human name of a variant: its own label, else its group's (sweeps), else its name."""
    return str(labels.get(name) or labels.get(group) or name)


def aggregate(
    runs: list[Run],
    labels: dict[str, str] | None = None,
    reference: str | None = None,
    references: dict[str, str] | None = None,
) -> dict:
    """``{"variants": {name: {"group", "x", "label", ...aggregate_variant}}, "missing",
    "reference", "references"}``; ``reference`` (a variant or a sweep's group) is what the Δ column
    compares with, ``references`` (variant or group -> variant or group) where a variant has its own."""
    finished = load_finished(runs)
    meta = {r.variant: (r.group, r.x) for r in runs}
    variants = {}
    for name, (group, x) in meta.items():
        if name in finished:
            label = label_of(labels or {}, name, group)
            variants[name] = {"group": group, "x": x, "label": label, **aggregate_variant(finished[name])}
    return {
        "variants": variants,
        "reference": reference,
        "references": dict(references or {}),
        "missing": sorted(
            r.variant + f"/seed_{r.seed}" for r in runs if r.seed not in finished.get(r.variant, {})
        ),
    }


def label(agg: dict, name: str) -> str:
    """The human name of a variant of ``agg`` (aggregates saved before labels existed: its name)."""
    return str(agg["variants"].get(name, {}).get("label", name))


def paired_gap(agg: dict, better: str, worse: str, key: str) -> dict:
    """Mean/CI over common seeds of ``better - worse`` for a final summary ``key``."""
    a = agg["variants"][better]["per_seed_final"]
    b = agg["variants"][worse]["per_seed_final"]
    common = sorted(set(a) & set(b), key=int)
    diffs = [a[s][key] - b[s][key] for s in common if a[s][key] is not None and b[s][key] is not None]
    return {**mean_ci(diffs), "seeds": [int(s) for s in common]}


def fmt(stat: dict, scale: float = 100.0) -> str:
    """``mean ± CI half-width`` (in percent by default); ``n/a`` without values."""
    if stat["mean"] is None:
        return "n/a"
    ci = "" if stat["ci"] is None else f" ± {stat['ci'] * scale:.2f}"
    return f"{stat['mean'] * scale:.2f}{ci}"


def variant_cell(agg: dict, name: str) -> str:
    """A table's variant cell: the human name, with the config key when they differ."""
    shown = label(agg, name)
    return shown if shown == name else f"{shown} (`{name}`)"


def named_reference(agg: dict, name: str) -> str | None:
    """The reference the YAML gives variant ``name``: its own (``references``: by its name, else
    its group's), else the grid's."""
    own, group = agg.get("references") or {}, agg["variants"][name]["group"]
    return own.get(name, own.get(group, agg.get("reference")))


def reference_of(agg: dict, name: str) -> str | None:
    """The variant ``name`` is compared with: its named reference, or, when that names a sweep's
    group, that group's variant at the same sweep value (None: none finished)."""
    ref, v = named_reference(agg, name), agg["variants"][name]
    if ref is None or ref in agg["variants"]:
        return ref
    same = [k for k, w in agg["variants"].items() if w["group"] == ref and w["x"] == v["x"]]
    return same[0] if same else None


def delta_cell(agg: dict, name: str, key: str = "final_avg_acc") -> str:
    """``name − reference`` of ``key`` over common seeds, in points with its 95% CI."""
    ref = reference_of(agg, name)
    if ref is None or ref not in agg["variants"]:
        return "n/a"
    if ref == name:
        return "reference"
    stat = paired_gap(agg, name, ref, key)
    if stat["mean"] is None:
        return "n/a (no common seed)"
    if stat["ci"] is None:
        return f"{100 * stat['mean']:+.2f} (1 seed)"
    lo, hi = stat["mean"] - stat["ci"], stat["mean"] + stat["ci"]
    return f"{100 * stat['mean']:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}]"


def delta_columns(agg: dict, ci: bool = True) -> dict[str, list[str]]:
    """The Δ column, its heading naming the reference (its config key: labels can be long); where
    the YAML's ``references`` give variants references of their own, a ``reference`` column first."""
    names = list(agg["variants"])
    unit = f"points{', paired 95% CI' if ci else ''}"
    cells = [delta_cell(agg, name) for name in names]
    if not agg.get("references"):
        return {f"Δ acc. vs {agg.get('reference')} ({unit})": cells}
    refs = [str(named_reference(agg, name)) for name in names]
    return {"reference": refs, f"Δ acc. vs reference ({unit})": cells}


def markdown_table(agg: dict) -> str:
    """Final summaries per variant (accuracies in percent, differences in points), mean ± 95% CI
    half-width, and the seed-paired Δ of the final accuracy against the reference."""
    rows = [
        [variant_cell(agg, name), len(v["seeds"]), *(fmt(v["final"][k]) for k in FINALS)]
        for name, v in agg["variants"].items()
    ]
    df = pd.DataFrame(rows, columns=["variant", "seeds", *FINAL_HEADS])
    if agg.get("reference") is not None:
        df = df.assign(**delta_columns(agg))
    return to_markdown(df)


def _x(v: dict) -> str:
    return "" if v["x"] is None else str(v["x"])


def curves_csv(agg: dict) -> str:
    """Long-format CSV: variant, group, x, curve, task, mean, ci95, n."""
    rows = [
        [name, v["group"], _x(v), curve, j, s["mean"], s["ci"], s["n"]]
        for name, v in agg["variants"].items()
        for curve in CURVES
        for j, s in enumerate(v["curves"][curve])
    ]
    cols = ["variant", "group", "x", "curve", "task", "mean", "ci95", "n"]
    return to_csv(pd.DataFrame(rows, columns=cols))


def finals_csv(agg: dict) -> str:
    """CSV of the final summaries: variant, group, x, metric, mean, ci95, n."""
    rows = [
        [name, v["group"], _x(v), key, v["final"][key]["mean"], v["final"][key]["ci"], v["final"][key]["n"]]
        for name, v in agg["variants"].items()
        for key in FINALS
    ]
    return to_csv(pd.DataFrame(rows, columns=["variant", "group", "x", "metric", "mean", "ci95", "n"]))


def write_tables(agg: dict, directory: Path) -> None:
    """aggregate.json, curves.csv, final.csv and table.md into ``directory``."""
    write_json(directory / "aggregate.json", agg)
    write_text(directory / "curves.csv", curves_csv(agg))
    write_text(directory / "final.csv", finals_csv(agg))
    write_text(directory / "table.md", markdown_table(agg))
