"""Results of a meta-learning study: tables, the best φ as a method config, Optuna's plots.

Everything is derived from the study storage, so re-running ``cli.py tune`` on a finished study
rewrites these files without training anything.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from cl_attractors.io import write_json, write_text
from cl_attractors.tune.objective import MethodInfo

COLUMNS = ["number", "state", "eq2", "eq2_weighted_mean", "final_avg_acc", "tasks_done", "duration_s"]


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One flat row per trial: state, scores, duration, φ and the fail/prune reason."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name,
            "eq2": t.value if t.state == TrialState.COMPLETE else t.user_attrs.get("eq2"),
            "eq2_weighted_mean": t.user_attrs.get("eq2_weighted_mean"),
            "final_avg_acc": t.user_attrs.get("final_avg_acc"),
            "tasks_done": t.user_attrs.get("tasks_done"),
            "duration_s": round(t.duration.total_seconds(), 1) if t.duration else None,
        }
        row.update(t.user_attrs.get("phi", t.params))
        row["reason"] = t.user_attrs.get("fail_reason") or t.user_attrs.get("prune_reason") or ""
        rows.append(row)
    return rows


def _csv(rows: list[dict[str, Any]]) -> str:
    names = list(dict.fromkeys(k for row in rows for k in row)) or COLUMNS
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def top_table(rows: list[dict[str, Any]], top: int = 10) -> str:
    """Markdown table of the ``top`` COMPLETE trials by Eq. 2, with the study's state counts."""
    states = [r["state"] for r in rows]
    head = (
        f"{states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned, "
        f"{states.count('FAIL')} failed, {states.count('RUNNING')} running\n\n"
    )
    best = sorted(
        (r for r in rows if r["state"] == "COMPLETE" and r["eq2"] is not None), key=lambda r: -r["eq2"]
    )[:top]
    if not best:
        return head + "no complete trial yet\n"
    names = list(dict.fromkeys(k for r in best for k in r if k not in ("state", "reason")))
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_fmt(r.get(n)) for n in names) + " |" for r in best]
    return head + "\n".join(lines) + "\n"


def best_method_yaml(best: FrozenTrial, method: MethodInfo, study_name: str) -> str:
    """A ``class_path``/``init_args`` method config holding the best φ (usable as
    ``fit --model.method best_method.yaml``)."""
    init_args = {**method.init_args, **best.user_attrs.get("phi", best.params)}
    header = (
        f"# Best phi of study {study_name!r}: trial {best.number}, Eq. 2 = {best.value:.6g} "
        f"(weighted mean {best.user_attrs.get('eq2_weighted_mean')}),\n"
        "# on the study's tuning tasks and split; written by `cli.py tune`.\n"
    )
    body = yaml.safe_dump({"class_path": method.class_path, "init_args": init_args}, sort_keys=False)
    return header + body


def trial_records(study: optuna.Study) -> list[dict[str, Any]]:
    """Every trial in full (φ, A, reported partial Eq. 2 per step, reasons): ``trials.json``."""
    return [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": t.params,
            "intermediate_values": t.intermediate_values,
            "user_attrs": t.user_attrs,
            "duration_s": t.duration.total_seconds() if t.duration else None,
        }
        for t in study.get_trials(deepcopy=False)
    ]


def write_tables(study: optuna.Study, out_dir: Path, method: MethodInfo) -> None:
    """(Re)write ``trials.csv``, ``trials.json``, ``top_trials.md`` and, once a trial completed,
    ``best_method.yaml``."""
    rows = trial_rows(study)
    write_text(out_dir / "trials.csv", _csv(rows))
    write_json(out_dir / "trials.json", trial_records(study))
    write_text(
        out_dir / "top_trials.md", f"# Study {study.study_name}: top trials by Eq. 2\n\n" + top_table(rows)
    )
    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]
    if complete:
        best = max(complete, key=lambda t: t.value)
        write_text(out_dir / "best_method.yaml", best_method_yaml(best, method, study.study_name))


def write_plots(study: optuna.Study, out_dir: Path) -> list[str]:
    """Optimisation history, parameter importances and slice plots as PNG; returns notes on
    the plots that could not be drawn (e.g. importances need two complete trials)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    sampled = {name for t in complete for name in t.distributions}
    plots = {
        "optimization_history": (ovm.plot_optimization_history, 1),
        "param_importances": (ovm.plot_param_importances, 2),
        "slice": (ovm.plot_slice, 1),
    }
    notes = []
    for name, (plot, need) in plots.items():
        if len(complete) < need or not sampled:
            notes.append(
                f"{name}.png skipped: needs {need} complete trial(s) with sampled "
                f"parameters, the study has {len(complete)}"
            )
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ax = plot(study)
            except (ValueError, RuntimeError) as err:
                notes.append(f"{name}.png skipped: {err}")
                continue
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        fig.savefig(out_dir / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
    return notes
