"""Each report option's value checked before any run (issues 20 and 22, 21 class 6): :data:`CHECKS`
maps an option to a predicate and the words for what is allowed; :func:`check_options` and
:func:`check_claim_values` check what one value alone does not show. A grid never trains for hours
and then dies (or silently drops a claim) while rendering. Each refusal is one
:class:`ConfigError` line naming the field, the value and what is allowed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cl_attractors.errors import ConfigError

if TYPE_CHECKING:
    from cl_attractors.grid.spec import ExperimentSpec

MAX_BINS = 1_000_000  # histogram bins over x_range (a report, not a memory test)
MAX_POINTS = 1_000_000  # points of a plotted curve
FINALS = ("final_avg_acc", "final_prev_acc", "final_current_acc", "bwt", "forgetting")
MODE_KEYS = ("smooth_bins", "min_prominence", "min_height", "min_count")
EXPECT_KEYS = ("text", "plateau", "plateau_tol", "dip_max", "dip_at", "dip_tol")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _range(v: Any) -> bool:
    return isinstance(v, list | tuple) and len(v) == 2 and all(map(_is_number, v)) and v[0] < v[1]


def _str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(x, str | int | float) for k, x in v.items()
    )


def _name_map(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) and x for k, x in v.items())


def _modes_ok(v: Any) -> bool:
    if not isinstance(v, dict) or not set(v) <= set(MODE_KEYS) or not all(map(_is_number, v.values())):
        return False
    return (_is_integer(v.get("smooth_bins", 1)) and v.get("smooth_bins", 1) >= 0) and all(
        v[k] >= 0 for k in v if k != "smooth_bins"
    )


def _expect(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and set(v) == set(EXPECT_KEYS)
        and isinstance(v["text"], str)
        and all(_is_number(v[k]) for k in EXPECT_KEYS[1:])
        and v["plateau_tol"] >= 0
        and v["dip_tol"] >= 0
    )


def _marks(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(m, dict) and all(_is_number(x) and isinstance(t, str | int | float) for x, t in m.items())
        for m in v.values()
    )


# option -> (check, what is allowed); the same name means the same thing in every kind
CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "title": (lambda v: isinstance(v, str), "a text"),
    "notes": (lambda v: isinstance(v, str), "a text"),
    "summary": (lambda v: isinstance(v, bool), "true or false"),
    "labels": (_str_map, "a mapping variant: label"),
    "references": (_name_map, "a mapping variant: its reference variant"),
    "metric": (lambda v: v in FINALS, f"one of {', '.join(FINALS)}"),
    "metrics": (
        lambda v: isinstance(v, list) and bool(v) and all(m in FINALS for m in v),
        f"a list of {', '.join(FINALS)}",
    ),
    "xlabel": (lambda v: isinstance(v, str), "a text"),
    "x_range": (_range, "[low, high] with finite low < high"),
    "min_abs": (lambda v: _is_number(v) and v >= 0, "a finite number >= 0"),
    "bin_width": (lambda v: _is_number(v) and v > 0, "a finite number > 0"),
    "mass_ranges": (lambda v: isinstance(v, list) and all(map(_range, v)), "a list of [low, high] ranges"),
    "modes": (_modes_ok, f"a mapping of {', '.join(MODE_KEYS)} (numbers >= 0; smooth_bins an integer)"),
    "yscale": (lambda v: v in ("linear", "log"), "linear or log"),
    "baseline": (lambda v: isinstance(v, str) and v != "", "a variant name"),
    "marks": (_marks, "a mapping group: {value: label}"),
    "xlabels": (_str_map, "a mapping group: axis label"),
    "params": (
        lambda v: isinstance(v, list) and bool(v) and all(isinstance(p, str) for p in v),
        "a list of names",
    ),
    "points": (lambda v: _is_integer(v) and 2 <= v <= MAX_POINTS, f"an integer in [2, {MAX_POINTS}]"),
    "expect": (_expect, f"a mapping of {', '.join(EXPECT_KEYS)} (numbers; tolerances >= 0)"),
    "tolerance": (
        lambda v: _is_number(v) and 0 <= v <= 1,
        "a finite number in [0, 1] (accuracy, 0.01 = 1 point)",
    ),
}


def check_options(spec: ExperimentSpec) -> None:
    """What one value alone does not show: the histogram's size (bins over x_range)."""
    if spec.kind == "weights":
        lo, hi = spec.report.x_range or (-0.5, 0.5)
        width = spec.report.bin_width
        if (hi - lo) / width > MAX_BINS:
            raise ConfigError(
                f"bin_width={width!r} is not allowed; use at least {(hi - lo) / MAX_BINS:.3g} "
                f"(at most {MAX_BINS} bins over x_range={[lo, hi]})"
            )


def check_claim_values(claims: list[Any]) -> None:
    """What a claim's check reads and the spec's claim check does not see: no empty list of
    variants, at least one combination where ``better`` differs from ``worse`` (a claim of a
    variant against itself would be dropped silently), and a finite ``tol`` >= 0."""
    for i, claim in enumerate(claims):
        if not isinstance(claim, dict):
            continue  # the spec's claim check names it
        field = f"claims[{i}]"
        for key in ("better", "worse", "variant", "among", "rivals"):
            value = claim.get(key)
            if value is not None and (
                value == [] or value == "" or (isinstance(value, list) and "" in value)
            ):
                raise ConfigError(
                    f"{field}.{key}={value!r} is not allowed; use a variant name or a list of them"
                )
        better, worse = claim.get("better"), claim.get("worse")
        if better is not None and worse is not None:
            pairs = itertools.product(*(v if isinstance(v, list) else [v] for v in (better, worse)))
            if all(b == w for b, w in pairs):
                raise ConfigError(
                    f"{field}.better={better!r} is not allowed: it equals worse; use two different variants"
                )
        if "tol" in claim and not (_is_number(claim["tol"]) and claim["tol"] >= 0):
            raise ConfigError(f"{field}.tol={claim['tol']!r} is not allowed; use a finite number >= 0")
