"""Aggregate finished runs over seeds: mean and 95% CI per task index and of the final summaries.

Pure functions of the runs' ``metrics.json`` contents, plus writers of the CSV / JSON / markdown
tables. Only complete runs (``"complete": true``) are aggregated.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from cl_attractors.errors import ConfigError
from cl_attractors.grid.spec import Run
from cl_attractors.io import write_json, write_text
from cl_attractors.report.stats import mean_ci

CURVES = ("avg_acc_seen", "avg_acc_previous", "current_acc")
FINALS = ("final_avg_acc", "final_prev_acc", "final_current_acc", "bwt", "forgetting")


def load_finished(runs: list[Run]) -> dict[str, dict[int, dict]]:
    """variant -> seed -> metrics.json of every complete run."""
    out: dict[str, dict[int, dict]] = {}
    for run in runs:
        if run.complete:
            path = run.run_dir / "metrics.json"
            metrics = json.loads(path.read_text())
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


def aggregate(runs: list[Run]) -> dict:
    """``{"variants": {name: {"group", "x", ...aggregate_variant}}}`` over the finished runs."""
    finished = load_finished(runs)
    meta = {r.variant: (r.group, r.x) for r in runs}
    variants = {}
    for name, (group, x) in meta.items():
        if name in finished:
            variants[name] = {"group": group, "x": x, **aggregate_variant(finished[name])}
    return {
        "variants": variants,
        "missing": sorted(
            r.variant + f"/seed_{r.seed}" for r in runs if r.seed not in finished.get(r.variant, {})
        ),
    }


def paired_gap(agg: dict, better: str, worse: str, key: str) -> dict:
    """Mean/CI over common seeds of ``better - worse`` for a final summary ``key``."""
    a = agg["variants"][better]["per_seed_final"]
    b = agg["variants"][worse]["per_seed_final"]
    common = sorted(set(a) & set(b), key=int)
    diffs = [a[s][key] - b[s][key] for s in common if a[s][key] is not None and b[s][key] is not None]
    return {**mean_ci(diffs), "seeds": [int(s) for s in common]}


def _fmt(stat: dict, scale: float = 100.0) -> str:
    if stat["mean"] is None:
        return "n/a"
    ci = "" if stat["ci"] is None else f" ± {stat['ci'] * scale:.2f}"
    return f"{stat['mean'] * scale:.2f}{ci}"


def markdown_table(agg: dict) -> str:
    """Final summaries per variant, in percent, mean ± 95% CI half-width."""
    head = (
        "| variant | seeds | acc. tasks seen (%) | acc. previous tasks (%) | acc. current task (%) "
        "| BWT (%) | forgetting (%) |\n|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for name, v in agg["variants"].items():
        f = v["final"]
        rows.append(f"| {name} | {len(v['seeds'])} | " + " | ".join(_fmt(f[k]) for k in FINALS) + " |")
    return head + "\n".join(rows) + "\n"


def curves_csv(agg: dict) -> str:
    """Long-format CSV: variant, group, x, curve, task, mean, ci95, n."""
    lines = ["variant,group,x,curve,task,mean,ci95,n"]
    for name, v in agg["variants"].items():
        x = "" if v["x"] is None else v["x"]
        for curve in CURVES:
            for j, s in enumerate(v["curves"][curve]):
                lines.append(
                    f"{name},{v['group']},{x},{curve},{j},{_num(s['mean'])},{_num(s['ci'])},{s['n']}"
                )
    return "\n".join(lines) + "\n"


def finals_csv(agg: dict) -> str:
    """CSV of the final summaries: variant, group, x, metric, mean, ci95, n."""
    lines = ["variant,group,x,metric,mean,ci95,n"]
    for name, v in agg["variants"].items():
        x = "" if v["x"] is None else v["x"]
        for key in FINALS:
            s = v["final"][key]
            lines.append(f"{name},{v['group']},{x},{key},{_num(s['mean'])},{_num(s['ci'])},{s['n']}")
    return "\n".join(lines) + "\n"


def _num(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.6f}"


def write_tables(agg: dict, directory: Path) -> None:
    """aggregate.json, curves.csv, final.csv and table.md into ``directory``."""
    write_json(directory / "aggregate.json", agg)
    write_text(directory / "curves.csv", curves_csv(agg))
    write_text(directory / "final.csv", finals_csv(agg))
    write_text(directory / "table.md", markdown_table(agg))
