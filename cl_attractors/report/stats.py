"""Means and Student-t confidence intervals over seeds (the t quantile is ``scipy.stats.t``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats


def mean_ci(values: Sequence[float | None], level: float = 0.95) -> dict:
    """Mean and Student-t confidence half-width of the finite ``values`` (None/NaN skipped).

    Returns ``{"mean", "ci", "n", "values"}``; ``mean`` is None without values and ``ci`` is None
    with fewer than two (no spread to estimate).
    """
    kept = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(kept)
    out: dict = {"mean": None, "ci": None, "n": n, "values": kept}
    if n == 0:
        return out
    mean = math.fsum(kept) / n
    out["mean"] = mean
    if n >= 2:
        sd = math.sqrt(math.fsum((v - mean) ** 2 for v in kept) / (n - 1))
        out["ci"] = float(stats.t.ppf(0.5 + level / 2.0, n - 1)) * sd / math.sqrt(n)
    return out
