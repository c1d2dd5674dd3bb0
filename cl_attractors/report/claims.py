"""The paper's stated claims (from the experiment YAML) against what was measured.

A claim is a mapping with ``text`` (the paper's words), ``type`` and its fields:

- ``gap``: ``better``, ``worse``, ``metric`` (a final summary, e.g. ``final_avg_acc``), optional
  ``paper`` (the stated gap). On the 95% CI of the seed-paired difference ``better - worse``:
  **holds** when it lies above 0 and holds the paper's value; **direction holds, size does not**
  when it lies above 0 without the paper's value; **inconclusive** when it holds both 0 and the
  paper's value (or 0 and no value is stated; or one seed gives no CI): the seeds cannot tell;
  **does not hold** otherwise (it excludes the paper's value and shows no gap, or lies below 0).
- ``best``: ``variant``, ``metric``, optional ``among`` (the variants ranked; default all): holds
  when ``variant`` has the highest mean (the paired gap to its closest competitor is reported with
  its CI).
- ``benefit_until``: ``better``, ``worse`` (variant groups of a sweep), ``metric``, ``paper`` (the
  sweep value where the benefit ends): holds when the smallest value without a significant
  benefit equals ``paper`` (within ``tol``, default 1e-9) and every smaller value has one.
- ``crossing``: ``better``, ``worse``, optional ``curve`` (default ``avg_acc_seen``) and ``from``
  (the first task counted, default 2): the tasks after which the mean curves change order; holds
  when ``better``'s mean stays above ``worse``'s after every task from ``from`` on (means over
  seeds, not paired: the curves are kept per task as mean and CI only).
- ``beats_all``: ``better``, ``rivals`` (a list), ``metric``: holds when the seed-paired gap to
  every rival has its 95% CI above 0; the closest rival's gap is the reported value.
- ``modes``: ``variant``, ``paper`` (mode locations: a number, ``a1`` for the variant's own
  attractor, or ``negative`` for any mode below ``-tol``), ``tol``, optional ``exact``: holds when
  each stated mode has a measured histogram mode within ``tol`` (and with ``exact``, there are no
  other modes).

``better``, ``worse`` and ``variant`` may be lists: the claim is checked for every combination,
one row each. Every result has ``text``, ``measured``, ``verdict`` and the numbers behind them:
``value``, ``lo``/``hi`` (the 95% CI, when there is one) and ``n`` (seeds).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from cl_attractors.errors import ConfigError
from cl_attractors.report.aggregate import label, paired_gap
from cl_attractors.report.claim_spec import CLAIM_FIELDS

NOT_RUN = "not run yet"
INCONCLUSIVE = "inconclusive"


class NotRun(ConfigError):
    """A claim names a variant without finished runs."""


def _pts(v: float | None) -> str:
    """A difference of accuracies (fractions) in points: ``+1.23``."""
    return "n/a" if v is None else f"{100 * v:+.2f}"


def _bounds(stat: dict) -> tuple[float | None, float | None]:
    if stat["mean"] is None or stat["ci"] is None:
        return None, None
    return stat["mean"] - stat["ci"], stat["mean"] + stat["ci"]


def _gap_text(stat: dict) -> str:
    if stat["mean"] is None:
        return "no common finished seeds"
    lo, hi = _bounds(stat)
    ci = "no CI (1 seed)" if lo is None else f"95% CI [{_pts(lo)}, {_pts(hi)}]"
    return f"{_pts(stat['mean'])} points ({ci}, n={stat['n']})"


def significant(stat: dict) -> bool:
    return stat["mean"] is not None and stat["ci"] is not None and stat["mean"] - stat["ci"] > 0


def _variant(agg: dict, name: str) -> dict:
    if name not in agg["variants"]:
        raise NotRun(f"variant {name!r} has no finished runs")
    return agg["variants"][name]


def _result(measured: str, verdict: str, stat: dict | None = None, **numbers: object) -> dict:
    lo, hi = _bounds(stat) if stat else (None, None)
    out = {"measured": measured, "verdict": verdict, "value": None, "lo": lo, "hi": hi, "n": None}
    if stat:
        out.update(value=stat["mean"], n=stat["n"])
    return {**out, **numbers}


def check_gap(claim: dict, agg: dict) -> dict:
    _variant(agg, claim["better"]), _variant(agg, claim["worse"])
    stat = paired_gap(agg, claim["better"], claim["worse"], claim.get("metric", "final_avg_acc"))
    measured = f"{label(agg, claim['better'])} − {label(agg, claim['worse'])}: {_gap_text(stat)}"
    lo, hi = _bounds(stat)
    if lo is None or hi is None:
        return _result(measured, INCONCLUSIVE, stat)
    paper_inside = "paper" not in claim or lo <= claim["paper"] <= hi
    if "paper" in claim:
        measured += f"; paper's {_pts(claim['paper'])} is {'inside' if paper_inside else 'outside'} the CI"
    return _result(measured, gap_verdict(lo, hi, paper_inside), stat)


def gap_verdict(lo: float, hi: float, paper_inside: bool) -> str:
    """The verdict of a claimed positive gap from its CI ``[lo, hi]`` and whether the paper's
    value lies inside it (True when no value is stated)."""
    if lo > 0:
        return "holds" if paper_inside else "direction holds, size does not"
    if hi >= 0 and paper_inside:
        return INCONCLUSIVE
    return "does not hold"


def check_beats_all(claim: dict, agg: dict) -> dict:
    better, metric = claim["better"], claim.get("metric", "final_avg_acc")
    for name in (better, *claim["rivals"]):
        _variant(agg, name)
    stats = {r: paired_gap(agg, better, r, metric) for r in claim["rivals"]}
    closest = min(stats, key=lambda r: -1e9 if stats[r]["mean"] is None else stats[r]["mean"])
    each = "; ".join(f"{label(agg, r)} {_pts(s['mean'])}{'*' * significant(s)}" for r, s in stats.items())
    measured = (
        f"{label(agg, better)} − each, points (* = 95% CI above 0): {each}; closest: {label(agg, closest)}, "
        f"{_gap_text(stats[closest])}"
    )
    verdict = "holds" if all(significant(s) for s in stats.values()) else "does not hold"
    return _result(measured, verdict, stats[closest])


def check_best(claim: dict, agg: dict) -> dict:
    metric = claim.get("metric", "final_avg_acc")
    _variant(agg, claim["variant"])
    among = claim.get("among") or list(agg["variants"])
    for name in among:
        _variant(agg, name)
    ranking = sorted(among, key=lambda k: -(agg["variants"][k]["final"][metric]["mean"] or -1e9))
    order = ", ".join(
        f"{label(agg, k)} {100 * agg['variants'][k]['final'][metric]['mean']:.2f}%" for k in ranking[:3]
    )
    rivals = [k for k in ranking if k != claim["variant"]]
    measured = f"top 3 by {metric}: {order}"
    stat = None
    if rivals:  # against the best of the others (a grid of one variant has nothing to rank)
        rival = rivals[0]
        stat = paired_gap(agg, claim["variant"], rival, metric)
        measured += f"; {label(agg, claim['variant'])} − {label(agg, rival)}: {_gap_text(stat)}"
    verdict = "holds" if ranking[0] == claim["variant"] else "does not hold"
    return _result(measured, verdict, stat, leader=label(agg, ranking[0]))


def check_benefit_until(claim: dict, agg: dict) -> dict:
    metric = claim.get("metric", "final_avg_acc")
    pairs: dict[float, dict] = {}
    for name, v in agg["variants"].items():
        if v["x"] is not None and v["group"] in (claim["better"], claim["worse"]):
            pairs.setdefault(v["x"], {})[v["group"]] = name
    rows, lost, seeds = [], None, []
    for x in sorted(pairs):
        if len(pairs[x]) < 2:
            continue
        stat = paired_gap(agg, pairs[x][claim["better"]], pairs[x][claim["worse"]], metric)
        rows.append(f"{x:.4g}: {_pts(stat['mean'])}{'*' if significant(stat) else ''}")
        seeds.append(stat["n"])
        if lost is None and not significant(stat):
            lost = x
    if not rows:
        raise NotRun(f"no sweep value has finished runs of both {claim['better']} and {claim['worse']}")
    holds = lost is not None and abs(lost - claim["paper"]) <= claim.get("tol", 1e-9)
    measured = (
        f"{claim['better']} − {claim['worse']} by value, points (* = 95% CI above 0): {'; '.join(rows)}; "
        f"benefit first lost at {'never' if lost is None else f'{lost:.4g}'}"
    )
    return _result(measured, "holds" if holds else "does not hold", value=lost, n=min(seeds))


def check_crossing(claim: dict, agg: dict) -> dict:
    curve, start = claim.get("curve", "avg_acc_seen"), int(claim.get("from", 2))
    a = _variant(agg, claim["better"])["curves"][curve]
    b = _variant(agg, claim["worse"])["curves"][curve]
    above = [x["mean"] > y["mean"] for x, y in zip(a, b) if x["mean"] is not None and y["mean"] is not None]
    changes = [
        f"task {j + 1} ({'rises above' if now else 'falls to or below'})"
        for j, now in enumerate(above)
        if j > 0 and now != above[j - 1]
    ]
    first_not = next((j + 1 for j, up in enumerate(above) if j + 1 >= start and not up), None)
    seeds = min(len(_variant(agg, claim[k])["seeds"]) for k in ("better", "worse"))
    measured = (
        f"{label(agg, claim['better'])} vs {label(agg, claim['worse'])}, mean {curve} after each of "
        f"{len(above)} tasks: {'above' if above and above[0] else 'at or below'} after task 1; "
        f"order changes after {', '.join(changes) or 'no task'}"
    )
    verdict = "holds" if above and first_not is None else "does not hold"
    return _result(measured, verdict, value=first_not, n=seeds)


def _near(at: float, tol: float) -> Callable[[float], bool]:
    return lambda m: abs(m - at) <= tol


def _stated(paper: list, attractor: float | None, tol: float) -> list[tuple[str, Callable[[float], bool]]]:
    """The stated modes as (shown text, matcher) pairs."""
    out: list[tuple[str, Callable[[float], bool]]] = []
    for p in paper:
        if p == "a1":
            if attractor is None:
                raise ConfigError("a mode at 'a1' needs the variant's method config to set a1")
            out.append((f"a1 = {attractor:.4g}", _near(attractor, tol)))
        elif p == "negative":
            out.append((f"< {-tol:g}", lambda m: m < -tol))
        else:
            out.append((f"{float(p):g}", _near(float(p), tol)))
    return out


def check_modes(
    claim: dict, modes: dict[str, list[float]], agg: dict, attractors: dict[str, float] | None = None
) -> dict:
    name = claim["variant"]
    if name not in modes:
        raise NotRun(f"variant {name!r} has no final checkpoint")
    found, tol = modes[name], claim.get("tol", 0.02)
    stated = _stated(claim["paper"], (attractors or {}).get(name), tol)
    hit = all(any(match(m) for m in found) for _, match in stated)
    if claim.get("exact"):
        hit = hit and len(found) == len(stated)
    seeds = agg["variants"].get(name, {}).get("seeds")
    exact = ", no other mode" if claim.get("exact") else ""
    measured = (
        f"{label(agg, name)}: modes at {', '.join(f'{m:.3f}' for m in found) or 'none'}; stated "
        f"{', '.join(s for s, _ in stated)} (tolerance {tol}{exact})"
    )
    n = len(seeds) if seeds else None
    return _result(measured, "holds" if hit else "does not hold", value=found, n=n)


def expand(claim: dict) -> list[dict]:
    """One claim per combination of list-valued ``better``/``worse``/``variant``."""
    keys = [k for k in ("better", "worse", "variant") if isinstance(claim.get(k), list)]
    combos = itertools.product(*(claim[k] for k in keys))
    out = [{**claim, **dict(zip(keys, combo))} for combo in combos]
    return [c for c in out if c.get("better") is None or c.get("better") != c.get("worse")]


def _text(claim: dict, agg: dict, expanded: bool) -> str:
    text = str(claim.get("text", ""))
    if not expanded:
        return text
    if "variant" in claim:
        return f"{text}: {label(agg, claim['variant'])}"
    return f"{text}: {label(agg, claim['better'])} vs {label(agg, claim['worse'])}"


def evaluate(
    claims: list[dict],
    agg: dict,
    modes: dict[str, list[float]] | None = None,
    attractors: dict[str, float] | None = None,
) -> list[dict]:
    """One result per (expanded) claim; a claim that cannot be checked says why."""
    checks = {
        "gap": check_gap,
        "best": check_best,
        "beats_all": check_beats_all,
        "benefit_until": check_benefit_until,
        "crossing": check_crossing,
    }
    out = []
    for raw in claims:
        listed = any(isinstance(raw.get(k), list) for k in ("better", "worse", "variant"))
        for claim in expand(raw):
            kind = claim.get("type")
            try:
                if kind == "modes":
                    result = check_modes(claim, modes or {}, agg, attractors)
                elif kind in checks:
                    result = checks[kind](claim, agg)
                else:
                    raise ConfigError(
                        f"claim type={kind!r} is not allowed; use one of {', '.join(CLAIM_FIELDS)}"
                    )
            except NotRun as err:
                result = _result(f"{err}", NOT_RUN)
            except (ConfigError, KeyError) as err:
                result = _result(f"cannot be checked: {err}", "not checked")
            out.append({"text": _text(claim, agg, listed), **result})
    return out


def claims_markdown(results: list[dict]) -> str:
    """The claims table of results.md."""
    lines = ["| paper's claim | measured | verdict |", "|---|---|---|"]
    lines += [f"| {r['text']} | {r['measured']} | **{r['verdict']}** |" for r in results]
    return "\n".join(lines) + "\n"
