"""The claims scoreboard: every claim of the paper, one row each, measured from saved results only
(``results/<fig>/aggregate.json`` and ``<fig>_modes.json``, ``results/tune/<study>/trials.csv``)
for the paper's algorithm as written and for the best variant, written between markers at the top
of ``results/README.md`` with an index of the results; the README's results table comes from the
same aggregates. Inputs that do not exist yet show as "not run yet".

    python cli.py report --config configs/grid/scoreboard.yaml

The YAML's ``columns`` name, per column, the variables (``$method``, ``$ewc``, ``$study``, ...)
that its ``rows`` use in their checks (a row may be limited to some ``columns``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from cl_attractors.errors import ConfigError
from cl_attractors.grid.spec import ExperimentSpec, load_spec
from cl_attractors.io import write_text
from cl_attractors.report import provenance
from cl_attractors.report.aggregate import fmt, label_of
from cl_attractors.report.claims import NOT_RUN, evaluate
from cl_attractors.report.fig_weights import attractors, seeds_text
from cl_attractors.report.studies import check_trials, load_trials, trials_to_reach, wall_time_s
from cl_attractors.report.tables import to_markdown


def substitute(value: Any, variables: dict[str, str]) -> Any:
    """``$name`` strings (also inside lists and mappings) replaced by ``variables[name]``; an
    undefined variable raises KeyError (the row does not apply to that column)."""
    if isinstance(value, str) and value.startswith("$"):
        return variables[value[1:]]
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def load_figure(grids_dir: Path, name: str) -> dict:
    """A figure's spec, saved aggregate (None if not rendered yet), modes and attractors; every
    variant gets the label the figure's YAML gives it."""
    if not (grids_dir / f"{name}.yaml").is_file():  # a figure planned before its grid is written
        return {
            "spec": None,
            "agg": None,
            "modes": {},
            "attractors": {},
            "source": grids_dir / f"{name}.yaml",
        }
    spec = load_spec(grids_dir / f"{name}.yaml")
    path = spec.results_dir / "aggregate.json"
    agg = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    labels = spec.report.labels
    for vname, v in (agg or {}).get("variants", {}).items():
        v.setdefault("label", label_of(labels, vname, v.get("group", vname)))
    modes_path = spec.results_dir / f"{spec.name}_modes.json"
    modes = json.loads(modes_path.read_text(encoding="utf-8"))["modes"] if modes_path.is_file() else {}
    return {"spec": spec, "agg": agg, "modes": modes, "attractors": attractors(spec)}


def link(name: str, fig: dict, home: Path) -> str:
    """A markdown link from ``home`` to the figure's results.md (its name alone if there is none)."""
    if fig["spec"] is None:
        return name
    target = fig["spec"].results_dir / "results.md"
    return f"[{name}]({os.path.relpath(target, home)})" if target.is_file() else name


def _not_run(why: str) -> dict:
    return {"measured": why, "verdict": NOT_RUN, "value": None, "lo": None, "hi": None, "n": None}


def check_cell(row: dict, variables: dict[str, str], figures: dict[str, dict], studies: Path) -> dict:
    """One claim in one column (KeyError: the row uses a variable the column does not define)."""
    check = substitute(row["check"], variables)
    if "study" in row:
        name = substitute(row["study"], variables)
        return {**check_trials(check, load_trials(studies / name / "trials.csv")), "study": name}
    fig = figures[row["figure"]]
    if fig["spec"] is None:
        return _not_run(f"{fig['source']} is not written yet")
    if fig["agg"] is None:
        return _not_run(f"{fig['spec'].results_dir}/aggregate.json does not exist")
    return evaluate([check], fig["agg"], fig["modes"], fig["attractors"])[0]


def short(kind: str, r: dict) -> str:
    """The measured value in a few characters (the full text is in the figure's results.md)."""
    if r["verdict"] in (NOT_RUN, "not checked"):
        return r["measured"]
    v = r["value"]
    if kind == "gap":
        return f"{100 * v:+.2f} points"
    if kind == "beats_all":
        return f"closest rival: {100 * v:+.2f} points"
    if kind == "best":
        rival = "the runner-up" if r["verdict"] == "holds" else "the best"
        return f"best: {r['leader']}" + ("" if v is None else f"; claimed − {rival}: {100 * v:+.2f} points")
    if kind == "crossing":
        return "above after every task" if v is None else f"not above after task {v}"
    if kind == "benefit_until":
        return "benefit never lost" if v is None else f"benefit lost at {v:.4g}"
    if kind == "modes":
        return "modes at " + (", ".join(f"{m:.3f}" for m in v) or "none")
    return f"trial {v} of {r['n']} ({r['study']})"


def _ci(r: dict) -> str:
    return "—" if r["lo"] is None else f"[{100 * r['lo']:+.2f}, {100 * r['hi']:+.2f}]"


def scoreboard_table(spec: ExperimentSpec, figures: dict[str, dict], section: dict | None = None) -> str:
    """The markdown scoreboard: claim, paper's value, then measured / 95% CI / n / verdict per column
    (``section``: a table of its own ``columns`` and ``rows``, e.g. ``beyond``; default: the paper's)."""
    columns = section["columns"] if section else spec.report.columns
    studies = Path(spec.report.studies_dir)
    cols = ["claim" if section else "paper's claim", "paper"]
    for c in columns.values():
        cols += [f"{c['label']}: measured", "95% CI", "n", "verdict"]
    rows = []
    for row in section["rows"] if section else spec.report.rows:
        where = (
            link(row["figure"], figures[row["figure"]], spec.results_dir) if "figure" in row else "studies"
        )
        cells = [f"{row['claim']} ({where})", row.get("paper", "—" if section else "")]
        for key, c in columns.items():
            try:
                if key not in row.get("columns", list(columns)):
                    raise KeyError(key)
                r = check_cell(row, c.get("vars", {}), figures, studies)
            except KeyError:
                cells += ["— (not in this figure)", "", "", ""]
                continue
            n = "" if r["n"] is None else r["n"]
            cells += [short(row["check"]["type"], r), _ci(r), n, f"**{r['verdict']}**"]
        rows.append(cells)
    return to_markdown(pd.DataFrame(rows, columns=cols))


def _shown(value: Any) -> str:
    return " / ".join(f"`{v}`" for v in value) if isinstance(value, list) else f"`{value}`"


def _legend(spec: ExperimentSpec) -> str:
    parts = [
        f"**{c['label']}**: " + ", ".join(f"`${k}` = {_shown(v)}" for k, v in c.get("vars", {}).items())
        for c in spec.report.columns.values()
    ]
    return _legend_text(parts)


def _beyond(spec: ExperimentSpec, figures: dict[str, dict]) -> str:
    """The project's own claims (``beyond``: title, columns, rows, optional note), as a second table."""
    o = spec.report.beyond
    if not o:
        return ""
    note = f"{o['note'].strip()}\n" if o.get("note") else ""
    return f"\n### {o.get('title', 'Beyond the paper')}\n\n{scoreboard_table(spec, figures, o)}\n{note}"


def _legend_text(parts: list[str]) -> str:
    return (
        "Columns (the variables the rows' checks use): "
        + "; ".join(parts)
        + ". Gaps are seed-paired differences in points of accuracy with their 95% CI (Student t); "
        "n is the number of seeds (trials for a study). Verdict rules: `cl_attractors/report/claims.py`."
    )


def index_table(spec: ExperimentSpec, figures: dict[str, dict]) -> str:
    """Each figure's folder, seeds, recorded command and wall time; each study's trials and best."""
    rows = []
    for name in spec.report.index:
        fig = figures[name]
        agg = fig["agg"]
        made = (agg or {}).get("provenance") or {}
        seeds = sorted({s for v in (agg or {}).get("variants", {}).values() for s in v["seeds"]})
        last = provenance.last_command(made, fig["spec"].name) if "invocations" in made else None
        command, wall = (f"`{last}`", provenance.total_wall(made)) if last else ("not recorded",) * 2
        if not fig["spec"].needs_runs:
            command, wall = f"`python cli.py experiment --config {fig['spec'].source}`", "—"
        shown = seeds_text(seeds) if seeds else ("not run yet" if fig["spec"].needs_runs else "—")
        rows.append([link(name, fig, spec.results_dir), shown, command, wall])
    studies = Path(spec.report.studies_dir)
    for name in spec.report.studies:
        trials = load_trials(studies / name / "trials.csv")
        if trials is None:
            rows.append([f"tune/{name}", "not run yet", "", ""])
            continue
        found = trials_to_reach(trials, 1.0)
        best = "no complete trial" if found["best"] is None else f"best Eq. 2 {found['best']:.4g}"
        seconds = wall_time_s(trials)
        spent = "not recorded" if seconds is None else f"{provenance.duration(seconds)} (trials' union)"
        command = f"`python cli.py tune --config configs/search/{name}.yaml`"
        rows.append([f"[tune/{name}](tune/{name}/)", f"{found['finished']} trials, {best}", command, spent])
    return to_markdown(pd.DataFrame(rows, columns=["results", "seeds", "command (last)", "wall time"]))


def readme_table(spec: ExperimentSpec, figures: dict[str, dict]) -> str:
    """The README's results table: one metric of the named variants of one figure, with the paper's."""
    o = spec.report.readme_table or {}
    agg = figures[o["figure"]]["agg"]
    rows = []
    for name, paper in o["variants"].items():
        v = (agg or {}).get("variants", {}).get(name)
        shown = "not run yet" if v is None else f"{fmt(v['final'][o['metric']])} ({len(v['seeds'])} seeds)"
        label = v["label"] if v else label_of(figures[o["figure"]]["spec"].report.labels, name, name)
        rows.append([label, shown, paper])
    cols = [o.get("heading", o["metric"]), "measured (mean ± 95% CI)", "paper"]
    return to_markdown(pd.DataFrame(rows, columns=cols))


def replace_block(text: str, name: str, content: str, where: Path) -> str:
    """``text`` with the lines between ``<!-- name:begin ... -->`` and ``<!-- name:end -->`` replaced."""
    begin, end = f"<!-- {name}:begin", f"<!-- {name}:end -->"
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise ConfigError(f"{where} has no '{begin} -->' ... '{end}' markers; add them where {name} goes")
    return text[: text.index("\n", i) + 1] + content + text[j:]


def render_scoreboard(spec: ExperimentSpec) -> Path:
    """Rewrite the generated blocks of results/README.md (and README.md); returns results/README.md."""
    o = spec.report
    grids = Path(o.grids_dir)
    rows = [*o.rows, *(o.beyond or {}).get("rows", [])]
    names = {r["figure"] for r in rows if "figure" in r} | set(o.index)
    if o.readme_table is not None:
        names.add(o.readme_table["figure"])
    figures = {n: load_figure(grids, n) for n in sorted(names)}
    target = spec.results_dir / "README.md"
    text = target.read_text(encoding="utf-8")
    board = (
        f"## {o.title or 'Claims scoreboard'}\n\n{scoreboard_table(spec, figures)}\n{_legend(spec)}\n"
        + _beyond(spec, figures)
    )
    text = replace_block(text, "scoreboard", board, target)
    text = replace_block(text, "index", index_table(spec, figures), target)
    write_text(target, text)
    if o.readme is not None:
        readme = Path(o.readme)
        write_text(
            readme,
            replace_block(
                readme.read_text(encoding="utf-8"), "results-table", readme_table(spec, figures), readme
            ),
        )
    return target
