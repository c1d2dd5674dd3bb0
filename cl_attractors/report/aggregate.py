"""Aggregate finished runs over seeds: mean and 95% CI per task index and of the final summaries.

Pure functions of the runs' ``metrics.json`` contents, plus writers of the CSV / JSON / markdown
tables. Only complete runs (``"complete": true``) are aggregated. A variant carries its human
``label`` (the experiment YAML's ``labels:``, else its group's, else its name) into every table
and figure.
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
    "BWT (%)",
    "forgetting (%)",
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


def aggregate(runs: list[Run], labels: dict[str, str] | None = None) -> dict:
    """``{"variants": {name: {"group", "x", "label", ...aggregate_variant}}, "missing"}``."""
    finished = load_finished(runs)
    meta = {r.variant: (r.group, r.x) for r in runs}
    variants = {}
    for name, (group, x) in meta.items():
        if name in finished:
            label = label_of(labels or {}, name, group)
            variants[name] = {"group": group, "x": x, "label": label, **aggregate_variant(finished[name])}
    return {
        "variants": variants,
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


def markdown_table(agg: dict) -> str:
    """Final summaries per variant, in percent, mean ± 95% CI half-width."""
    rows = [
        [variant_cell(agg, name), len(v["seeds"]), *(fmt(v["final"][k]) for k in FINALS)]
        for name, v in agg["variants"].items()
    ]
    return to_markdown(pd.DataFrame(rows, columns=["variant", "seeds", *FINAL_HEADS]))


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
