"""Results of a meta-learning study: tables, the best φ as a method config, Optuna's plots.

Everything is derived from the study storage, so re-running ``cli.py tune`` on a finished study
rewrites these files without training anything.
"""

from __future__ import annotations

import shutil
import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from cl_attractors.io import write_json, write_text
from cl_attractors.tune.objective import ROW, MethodInfo, matrix_from_attrs
from cl_attractors.tune.protocol import protocol_lines

ATTRS = ("eq2", "eq2_weighted_mean", "final_avg_acc", "tasks_done", "worker")
COLUMNS = ["number", "state", *ATTRS, "duration_s", "datetime_start", "datetime_complete"]
PUBLISHED = ("best_method.yaml", "trials.csv", "trials.json", "top_trials.md", "*.png", "study.db")
STATE_WORDS = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running"}


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial from ``study.trials_dataframe()``: state, (partial) Eq. 2 and the other
    scores, worker, duration, start and end, the sampled φ and the fail/prune reason."""
    wanted = ("number", "state", "duration", "datetime_start", "datetime_complete", "params", "user_attrs")
    df = study.trials_dataframe(attrs=wanted)
    if df.empty:
        return pd.DataFrame(columns=[*COLUMNS, "reason"])
    attrs = df.reindex(columns=[f"user_attrs_{k}" for k in (*ATTRS, "fail_reason", "prune_reason")])
    table = df[["number", "state"]].copy()
    for key in ATTRS:
        table[key] = attrs[f"user_attrs_{key}"]
    table["duration_s"] = pd.to_timedelta(df["duration"]).dt.total_seconds().round(1)
    for when in ("datetime_start", "datetime_complete"):  # ISO, to the second
        table[when] = pd.to_datetime(df[when]).dt.strftime("%Y-%m-%dT%H:%M:%S")
    params = df.filter(regex="^params_").rename(columns=lambda c: c.removeprefix("params_"))
    table = pd.concat([table, params], axis=1)
    table["reason"] = attrs["user_attrs_fail_reason"].fillna(attrs["user_attrs_prune_reason"]).fillna("")
    return table


def top_table(table: pd.DataFrame, top: int = 10) -> str:
    """Markdown table of the ``top`` COMPLETE trials by Eq. 2, with the study's state counts."""
    counts = table["state"].value_counts()
    head = ", ".join(f"{counts.get(s, 0)} {word}" for s, word in STATE_WORDS.items()) + "\n\n"
    complete = table[table["state"] == "COMPLETE"].dropna(subset=["eq2"])
    if complete.empty:
        return head + "no complete trial yet\n"
    hidden = ["state", "worker", "reason", "datetime_start", "datetime_complete"]
    best = complete.astype({"eq2": float}).nlargest(top, "eq2").drop(columns=hidden, errors="ignore")
    return head + best.to_markdown(index=False, floatfmt=".4g") + "\n"


def best_method_yaml(best: FrozenTrial, method: MethodInfo, study_name: str, protocol: list[str]) -> str:
    """A ``class_path``/``init_args`` method config holding the best φ (usable as
    ``fit --model.method best_method.yaml``), its header naming the study's protocol."""
    init_args = {**method.init_args, **best.user_attrs.get("phi", best.params)}
    header = (
        f"# Best phi of study {study_name!r}: trial {best.number}, Eq. 2 = {best.value:.6g} "
        f"(weighted mean {best.user_attrs.get('eq2_weighted_mean')}),\n"
        "# on the study's tuning tasks and split; written by `cli.py tune`.\n"
        + "".join(f"{line}\n" for line in protocol)
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
            "A": matrix_from_attrs(t.user_attrs),
            "intermediate_values": t.intermediate_values,
            "user_attrs": {k: v for k, v in t.user_attrs.items() if not k.startswith(ROW)},
            "duration_s": t.duration.total_seconds() if t.duration else None,
        }
        for t in study.get_trials(deepcopy=False)
    ]


def write_tables(study: optuna.Study, out_dir: Path, method: MethodInfo) -> None:
    """(Re)write ``trials.csv``, ``trials.json``, ``top_trials.md`` and, once a trial completed,
    ``best_method.yaml``."""
    table = trials_table(study)
    write_text(out_dir / "trials.csv", table.to_csv(index=False))
    write_json(out_dir / "trials.json", trial_records(study))
    write_text(
        out_dir / "top_trials.md", f"# Study {study.study_name}: top trials by Eq. 2\n\n" + top_table(table)
    )
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):  # values are finite (objective)
        best = study.best_trial
        text = best_method_yaml(best, method, study.study_name, protocol_lines(study))
        write_text(out_dir / "best_method.yaml", text)


def write_plots(study: optuna.Study, out_dir: Path) -> list[str]:
    """Optimisation history, parameter importances and slice plots as PNG; returns notes on
    the plots that could not be drawn (e.g. importances need two complete trials)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    sampled = {name for t in complete for name in t.distributions}
    plots: dict[str, tuple[Callable[[optuna.Study], Any], int]] = {
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


def publish(out_dir: Path, results_dir: Path) -> list[str]:
    """Copy a finished study's outputs from ``out_dir`` to ``results_dir`` (where the grids read
    ``best_method.yaml``): tables, best method, plots, and the SQLite study when it lives in
    ``out_dir`` (through SQLite's backup API: a consistent copy). Other files there, such as a
    hand-written ``summary.md``, are kept. Returns the names copied."""
    results_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for pattern in PUBLISHED:
        for src in sorted(out_dir.glob(pattern)):
            if src.suffix == ".db":
                with sqlite3.connect(src) as source, sqlite3.connect(results_dir / src.name) as target:
                    source.backup(target)
            else:
                shutil.copyfile(src, results_dir / src.name)
            copied.append(src.name)
    return copied
