"""Our measurements beside a published table: a curves grid's ``published`` option.

```yaml
published:
  source: "Hsu et al. 2018, Table 2 (incremental task learning)"
  metric: final_avg_acc          # optional; a final summary of aggregate.FINALS
  sd: population                 # how the source computed its SDs: population (ddof 0) or sample
  values: {adam: [93.46, 2.01], ewc: [97.70, 0.81]}   # variant -> [mean, SD], in percent
```

A row **agrees** when our mean lies within two of the published SDs of the published mean; else
it **differs by k SDs** (and the reason belongs in the grid's notes). Our SD is computed over
seeds the way the source says it computed its own.
"""

from __future__ import annotations

import math

from cl_attractors.errors import ConfigError
from cl_attractors.report.aggregate import FINALS, label

TOLERANCE_SDS = 2.0
SD_KINDS = {"population": 0, "sample": 1}


def check_published(published: object) -> None:
    """The option's structure, before any run: one line naming the bad key otherwise. A published
    row may name a method this grid does not run (yet): its row says "not run yet"."""
    if not isinstance(published, dict):
        raise ConfigError(f"published={published!r} is not allowed; use a mapping with source and values")
    allowed = {"source", "metric", "sd", "values"}
    for key in published:
        if key not in allowed:
            raise ConfigError(f"published.{key} is not a key of published; use {', '.join(sorted(allowed))}")
    if not isinstance(published.get("source"), str):
        raise ConfigError(
            f"published.source={published.get('source')!r} is not allowed; use the table's name"
        )
    if published.get("metric", FINALS[0]) not in FINALS:
        raise ConfigError(f"published.metric={published['metric']!r} is not allowed; use one of {FINALS}")
    if published.get("sd", "population") not in SD_KINDS:
        raise ConfigError(f"published.sd={published['sd']!r} is not allowed; use population or sample")
    values = published.get("values")
    if not isinstance(values, dict) or not values:
        raise ConfigError(f"published.values={values!r} is not allowed; use variant: [mean, SD] in percent")
    for name, pair in values.items():
        numbers = isinstance(pair, list) and len(pair) == 2
        numbers = numbers and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
        if not isinstance(name, str) or not numbers or not all(map(math.isfinite, pair)) or pair[1] < 0:
            raise ConfigError(
                f"published.values.{name}={pair!r} is not allowed; use [mean, SD] (percent, SD >= 0)"
            )


def _sd(values: list[float], ddof: int) -> float | None:
    if len(values) <= ddof:
        return None
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - ddof))


def compare(agg: dict, published: dict) -> list[dict]:
    """One row per published variant: ours (mean, SD, n), theirs, the gap in their SDs, a verdict."""
    metric, ddof = published.get("metric", FINALS[0]), SD_KINDS[published.get("sd", "population")]
    rows = []
    for name, (mean, sd) in published["values"].items():
        stat = agg["variants"].get(name, {}).get("final", {}).get(metric)
        row = {"variant": name, "label": label(agg, name), "theirs": mean, "their_sd": sd}
        if not stat or stat["mean"] is None:
            rows.append({**row, "ours": None, "our_sd": None, "n": 0, "sds": None, "verdict": "not run yet"})
            continue
        ours = 100 * stat["mean"]
        our_sd = _sd([100 * v for v in stat["values"]], ddof)
        gap = ours - mean
        sds = gap / sd if sd > 0 else (0.0 if gap == 0 else math.copysign(math.inf, gap))
        verdict = "agrees" if abs(sds) <= TOLERANCE_SDS else f"differs ({abs(sds):.1f} SDs)"
        rows.append({**row, "ours": ours, "our_sd": our_sd, "n": stat["n"], "sds": sds, "verdict": verdict})
    return rows


def _pm(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.2f}" + ("" if sd is None else f" ± {sd:.2f}")


def published_markdown(agg: dict, published: dict) -> str:
    """The section of results.md: the table and the rule of its verdicts."""
    kind = published.get("sd", "population")
    lines = [
        f"## Beside the published numbers: {published['source']}",
        "",
        f"Metric `{published.get('metric', FINALS[0])}` in percent, mean ± SD over seeds ({kind} SD, as "
        f"the source computed its own). A row **agrees** when our mean lies within {TOLERANCE_SDS:g} of "
        "the published SDs of the published mean.",
        "",
        "| variant | seeds | ours | published | ours − published | in published SDs | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in compare(agg, published):
        gap = "—" if r["ours"] is None else f"{r['ours'] - r['theirs']:+.2f}"
        sds = "—" if r["sds"] is None else f"{r['sds']:+.1f}"
        lines.append(
            f"| {r['label']} | {r['n']} | {_pm(r['ours'], r['our_sd'])} | {_pm(r['theirs'], r['their_sd'])} "
            f"| {gap} | {sds} | **{r['verdict']}** |"
        )
    return "\n".join(lines) + "\n"
