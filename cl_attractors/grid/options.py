"""What a grid YAML asks of its report, typed (issues 20 and 22, 21 class 6): :class:`ReportOptions`,
parsed once from the keys beyond the grid's own fields. Each kind of report accepts only the keys it
reads (:data:`KIND_OPTIONS`); each value is first checked against what that report can draw
(:data:`~cl_attractors.grid.option_checks.CHECKS`), then parsed into its type (:data:`PARSERS`).
Each refusal is one :class:`ConfigError` line naming the field, the value and what is allowed.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cl_attractors.errors import ConfigError, bounded
from cl_attractors.grid.option_checks import CHECKS

COMMON_OPTIONS = ("title", "notes", "summary", "labels", "reference", "references")
KIND_OPTIONS: dict[str, tuple[str, ...]] = {
    "curves": ("published",),  # a published table beside ours (report/published.py checks it)
    "shared": ("metric", "metrics", "xlabel"),  # metrics: a list, one panel each
    "weights": ("x_range", "min_abs", "mass_ranges", "bin_width", "modes", "yscale"),
    "sensitivity": ("metric", "baseline", "marks", "xlabels"),
    "stability": ("tolerance",),
    "plasticity": ("method_config", "params", "x_range", "points", "expect"),
    "scoreboard": (
        "columns",
        "rows",
        "index",
        "studies",
        "studies_dir",
        "grids_dir",
        "readme",
        "readme_table",
        "beyond",  # the project's own claims: a second table (title, columns, rows, note)
    ),
}


@dataclass(frozen=True)
class ModeSettings:
    """How a weight histogram's modes are found (``report.weights.find_modes``)."""

    smooth_bins: int = 1
    min_prominence: float = 0.2
    min_height: float = 1e-3
    min_count: float = 20.0


@dataclass(frozen=True)
class ReportOptions:
    """The report's settings of a grid YAML, with their defaults (grouped by the kinds that read them)."""

    # every kind
    title: str | None = None  # default: the grid's name
    notes: str | None = None  # appended to results.md
    summary: bool = True  # print the final table to the terminal
    labels: dict[str, str] = field(default_factory=dict)  # variant or group -> human name
    reference: str | None = None  # the variant every other is compared with (default: the first)
    references: dict[str, str] = field(default_factory=dict)  # variant or group -> its own reference
    # curves
    published: dict[str, Any] | None = None  # source, metric, sd, values: variant -> [mean, SD] (%)
    # shared, sensitivity
    metric: str = "final_avg_acc"
    metrics: list[str] | None = None  # shared: one panel per metric
    xlabel: str = "shared fraction"
    # weights (and plasticity's x_range)
    x_range: tuple[float, float] | None = None  # default (-0.5, 0.5) weights, (-1, 1) plasticity
    min_abs: float = 1e-5
    mass_ranges: list[tuple[float, float]] = field(default_factory=list)
    bin_width: float = 0.005
    modes: ModeSettings = field(default_factory=ModeSettings)
    yscale: str = "linear"
    # sensitivity
    baseline: str = "control"
    marks: dict[str, dict[float, str]] = field(default_factory=dict)  # panel -> x -> label
    xlabels: dict[str, str] = field(default_factory=dict)  # panel -> axis label
    # stability
    tolerance: float = 0.01  # accuracy (0.01 = 1 point): how close an old task must come back
    # plasticity
    method_config: str | None = None
    params: list[str] = field(default_factory=lambda: ["a1", "lam", "gamma"])
    points: int = 2001
    expect: dict[str, Any] | None = None
    # scoreboard
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    index: list[str] = field(default_factory=list)
    studies: list[str] = field(default_factory=list)
    studies_dir: str = "results/tune"
    grids_dir: str = "configs/grid"
    readme: str | None = None
    readme_table: dict[str, Any] | None = None
    beyond: dict[str, Any] | None = None  # the project's own claims: title, columns, rows, note


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError
    return float(v)


def _integer(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError
    return v


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError
    return v


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError
    return v


def _pair(v: Any) -> tuple[float, float]:
    if not isinstance(v, list | tuple) or len(v) != 2:
        raise TypeError
    return _number(v[0]), _number(v[1])


def _mapping(key: Callable[[Any], Any], value: Callable[[Any], Any]) -> Callable[[Any], dict]:
    def parse(v: Any) -> dict:
        if not isinstance(v, dict):
            raise TypeError
        return {key(k): value(x) for k, x in v.items()}

    return parse


def _listing(item: Callable[[Any], Any]) -> Callable[[Any], list]:
    def parse(v: Any) -> list:
        if not isinstance(v, list):
            raise TypeError
        return [item(x) for x in v]

    return parse


def _raw_mapping(v: Any) -> dict:
    return _mapping(_text, lambda x: x)(v)


def _modes(v: Any) -> ModeSettings:
    if not isinstance(v, dict) or not v.keys() <= set(ModeSettings.__dataclass_fields__):
        raise TypeError
    numbers: dict[str, Any] = {k: _integer(x) if k == "smooth_bins" else _number(x) for k, x in v.items()}
    return ModeSettings(**numbers)


def _yscale(v: Any) -> str:
    if v not in ("linear", "log"):
        raise ValueError
    return str(v)


# key -> (parser, what is allowed)
PARSERS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "title": (_text, "a string"),
    "notes": (_text, "a string"),
    "summary": (_flag, "true or false"),
    "labels": (_mapping(_text, str), "a mapping of variant names to strings"),
    "reference": (_text, "a variant name"),
    "references": (_mapping(_text, _text), "a mapping of variant names to variant names"),
    "metric": (_text, "a final summary name such as final_avg_acc"),
    "xlabel": (_text, "a string"),
    "x_range": (_pair, "[low, high] numbers"),
    "min_abs": (_number, "a number"),
    "mass_ranges": (_listing(_pair), "a list of [low, high] number pairs"),
    "bin_width": (_number, "a number"),
    "modes": (_modes, "{smooth_bins: int, min_prominence, min_height, min_count: numbers}"),
    "yscale": (_yscale, "linear or log"),
    "baseline": (_text, "a variant name"),
    "marks": (_mapping(_text, _mapping(_number, str)), "panel: {x: label} mappings"),
    "xlabels": (_mapping(_text, str), "a mapping of panels to axis labels"),
    "method_config": (_text, "a method YAML path"),
    "params": (_listing(_text), "a list of method argument names"),
    "points": (_integer, "an integer"),
    "expect": (_raw_mapping, "a mapping"),
    "columns": (_mapping(_text, _raw_mapping), "a mapping of column names to mappings"),
    "rows": (_listing(_raw_mapping), "a list of mappings"),
    "index": (_listing(_text), "a list of grid names"),
    "studies": (_listing(_text), "a list of study names"),
    "studies_dir": (_text, "a folder path"),
    "grids_dir": (_text, "a folder path"),
    "readme": (_text, "a file path"),
    "readme_table": (_raw_mapping, "a mapping"),
    "metrics": (_listing(_text), "a list of final summaries"),
    "tolerance": (_number, "a finite number in [0, 1]"),
    "beyond": (_raw_mapping, "a mapping of title, columns, rows, note"),
    "published": (_raw_mapping, "a mapping of source, metric, sd, values"),
}


def parse_options(raw: dict[str, Any], kind: str, fields: tuple[str, ...]) -> ReportOptions:
    """The keys of ``raw`` beyond ``fields`` as :class:`ReportOptions`; a key its kind's report does
    not read, or a value of the wrong shape, is refused."""
    allowed = (*fields, *COMMON_OPTIONS, *KIND_OPTIONS[kind])
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in allowed:
            shown, use = reprlib.repr(value), ", ".join(allowed)
            raise ConfigError(f"{key}={shown} is not a key of a {kind!r} grid; use one of {use}")
        if key in fields:
            continue
        check, takes = CHECKS.get(key, (lambda v: True, ""))
        if not check(value):
            raise ConfigError(f"{key}={bounded(repr(value), 200)} is not allowed; use {takes}")
        parse, what = PARSERS[key]
        try:
            values[key] = parse(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={reprlib.repr(value)} is not allowed; use {what}") from None
    return ReportOptions(**values)
