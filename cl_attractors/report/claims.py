"""The paper's stated claims (from the experiment YAML) against what was measured.

A claim is a mapping with ``text`` (the paper's words), ``type`` and its fields:

- ``gap``: ``better``, ``worse``, ``metric`` (a final summary, e.g. ``final_avg_acc``), ``paper``
  (the stated gap). Holds when the 95% CI of the seed-paired difference ``better - worse`` lies
  above 0, and the paper's value falls inside that CI ("direction holds, size does not" when
  only the sign agrees).
- ``best``: ``variant``, ``metric``: holds when ``variant`` has the highest mean.
- ``benefit_until``: ``better``, ``worse`` (variant groups of a sweep), ``metric``, ``paper`` (the
  sweep value where the benefit ends): holds when the smallest value without a significant
  benefit equals ``paper`` (within ``tol``, default 1e-9) and every smaller value has one.
- ``modes``: ``variant``, ``paper`` (list of mode locations), ``tol``, optional ``exact``: holds
  when each stated mode has a measured histogram mode within ``tol`` (and with ``exact``, there
  are no other modes).
"""

from __future__ import annotations

from cl_attractors.errors import ConfigError
from cl_attractors.report.aggregate import FINALS, paired_gap


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:+.2f}%"


def _gap_text(stat: dict) -> str:
    if stat["mean"] is None:
        return "no common finished seeds"
    ci = (
        "no CI (1 seed)"
        if stat["ci"] is None
        else f"95% CI [{_pct(stat['mean'] - stat['ci'])}, {_pct(stat['mean'] + stat['ci'])}]"
    )
    return f"{_pct(stat['mean'])} ({ci}, n={stat['n']})"


def _significant(stat: dict) -> bool:
    return stat["mean"] is not None and stat["ci"] is not None and stat["mean"] - stat["ci"] > 0


def _variant(agg: dict, name: str) -> dict:
    if name not in agg["variants"]:
        raise ConfigError(f"claim names variant {name!r}, which has no finished runs")
    return agg["variants"][name]


def check_gap(claim: dict, agg: dict) -> tuple[str, str]:
    _variant(agg, claim["better"]), _variant(agg, claim["worse"])
    stat = paired_gap(agg, claim["better"], claim["worse"], claim.get("metric", "final_avg_acc"))
    measured = f"{claim['better']} − {claim['worse']}: {_gap_text(stat)}"
    size_ok = True
    if "paper" in claim and stat["ci"] is not None:
        lo, hi = stat["mean"] - stat["ci"], stat["mean"] + stat["ci"]
        size_ok = lo <= claim["paper"] <= hi
        measured += f"; paper's {_pct(claim['paper'])} is {'inside' if size_ok else 'outside'} the CI"
    if not _significant(stat):
        return measured, "does not hold"
    return measured, "holds" if size_ok else "direction holds, size does not"


def check_best(claim: dict, agg: dict) -> tuple[str, str]:
    metric = claim.get("metric", "final_avg_acc")
    _variant(agg, claim["variant"])
    ranking = sorted(agg["variants"].items(), key=lambda kv: -(kv[1]["final"][metric]["mean"] or -1e9))
    order = ", ".join(f"{k} {100 * v['final'][metric]['mean']:.2f}%" for k, v in ranking[:3])
    return f"top 3 by {metric}: {order}", "holds" if ranking[0][0] == claim["variant"] else "does not hold"


def check_benefit_until(claim: dict, agg: dict) -> tuple[str, str]:
    metric = claim.get("metric", "final_avg_acc")
    pairs: dict[float, dict] = {}
    for name, v in agg["variants"].items():
        if v["x"] is not None and v["group"] in (claim["better"], claim["worse"]):
            pairs.setdefault(v["x"], {})[v["group"]] = name
    rows, lost = [], None
    for x in sorted(pairs):
        if len(pairs[x]) < 2:
            continue
        stat = paired_gap(agg, pairs[x][claim["better"]], pairs[x][claim["worse"]], metric)
        rows.append(f"{x:g}: {_pct(stat['mean'])}{'*' if _significant(stat) else ''}")
        if lost is None and not _significant(stat):
            lost = x
    if not rows:
        raise ConfigError(
            f"claim {claim['text']!r}: no sweep value has both {claim['better']} and {claim['worse']}"
        )
    holds = lost is not None and abs(lost - claim["paper"]) <= claim.get("tol", 1e-9)
    measured = (
        f"{claim['better']} − {claim['worse']} by value (* = 95% CI above 0): {'; '.join(rows)}; "
        f"benefit first lost at {'never' if lost is None else f'{lost:g}'}"
    )
    return measured, "holds" if holds else "does not hold"


def check_modes(claim: dict, modes: dict[str, list[float]]) -> tuple[str, str]:
    if claim["variant"] not in modes:
        raise ConfigError(f"claim names variant {claim['variant']!r}, which has no final checkpoint")
    found = modes[claim["variant"]]
    tol = claim.get("tol", 0.02)
    hit = all(any(abs(m - p) <= tol for m in found) for p in claim["paper"])
    if claim.get("exact"):
        hit = hit and len(found) == len(claim["paper"])
    return (
        f"{claim['variant']} modes at {', '.join(f'{m:.3f}' for m in found) or 'none'} (tolerance {tol})",
        "holds" if hit else "does not hold",
    )


def evaluate(claims: list[dict], agg: dict, modes: dict[str, list[float]] | None = None) -> list[dict]:
    """``[{"text", "measured", "verdict"}]``: a claim that cannot be checked says why."""
    checks = {"gap": check_gap, "best": check_best, "benefit_until": check_benefit_until}
    out = []
    for claim in claims:
        kind = claim.get("type")
        try:
            if kind == "modes":
                measured, verdict = check_modes(claim, modes or {})
            elif kind in checks:
                measured, verdict = checks[kind](claim, agg)
            else:
                raise ConfigError(
                    f"claim type={kind!r} is not allowed; use gap, best, benefit_until or modes"
                )
        except (ConfigError, KeyError) as err:
            measured, verdict = f"cannot be checked: {err}", "not checked"
        out.append({"text": claim.get("text", ""), "measured": measured, "verdict": verdict})
    return out


def claims_markdown(results: list[dict]) -> str:
    """The claims table of results.md."""
    lines = ["| paper's claim | measured | verdict |", "|---|---|---|"]
    lines += [f"| {r['text']} | {r['measured']} | **{r['verdict']}** |" for r in results]
    return "\n".join(lines) + "\n"


CLAIM_FIELDS = {
    "gap": ("better", "worse"),
    "best": ("variant",),
    "benefit_until": ("better", "worse", "paper"),
    "modes": ("variant", "paper"),
}


def check_claims(claims: list, variants: set[str], groups: set[str]) -> None:
    """Each claim's structure, checked before any run: a mapping of a known type with its fields,
    naming variants of the grid (``groups`` for ``benefit_until``) and a known metric."""
    for i, claim in enumerate(claims):
        field = f"claims[{i}]"
        if not isinstance(claim, dict):
            raise ConfigError(
                f"{field}={claim!r} is not allowed; use a mapping with text, type and its fields"
            )
        kind = claim.get("type")
        if kind not in CLAIM_FIELDS:
            raise ConfigError(f"{field}.type={kind!r} is not allowed; use one of {', '.join(CLAIM_FIELDS)}")
        missing = [k for k in ("text", *CLAIM_FIELDS[kind]) if k not in claim]
        if missing:
            raise ConfigError(f"{field} (type {kind}) lacks {', '.join(missing)}")
        names = groups if kind == "benefit_until" else variants
        for key in ("better", "worse", "variant"):
            if key in claim and claim[key] not in names:
                raise ConfigError(
                    f"{field}.{key}={claim[key]!r} is not allowed; use a variant of the grid: "
                    f"{', '.join(sorted(names))}"
                )
        if claim.get("metric", FINALS[0]) not in FINALS:
            raise ConfigError(
                f"{field}.metric={claim['metric']!r} is not allowed; use one of {', '.join(FINALS)}"
            )
        paper = claim.get("paper", 0.0)
        numbers = paper if kind == "modes" and isinstance(paper, list) else [paper]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
            raise ConfigError(
                f"{field}.paper={paper!r} is not allowed; use a number (modes: a list of numbers)"
            )
