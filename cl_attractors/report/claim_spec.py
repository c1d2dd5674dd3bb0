"""The claims a grid YAML states, checked before any run: each a mapping of a known ``type``
with that type's fields, naming variants of the grid (sweep groups for ``benefit_until``), a
known metric and curve, and numbers where numbers are due. What each type means and how it is
judged: :mod:`cl_attractors.report.claims`.
"""

from __future__ import annotations

from cl_attractors.errors import ConfigError
from cl_attractors.report.aggregate import CURVES, FINALS

CLAIM_FIELDS = {
    "gap": ("better", "worse"),
    "best": ("variant",),
    "beats_all": ("better", "rivals"),
    "benefit_until": ("better", "worse", "paper"),
    "modes": ("variant", "paper"),
    "crossing": ("better", "worse"),
}


def _check_among(field: str, claim: dict, variants: set[str]) -> None:
    """A best claim's ``among``: a list of the grid's variants holding the claimed one(s)."""
    ranked = claim["variant"] if isinstance(claim["variant"], list) else [claim["variant"]]
    among = claim.get("among", ranked)
    if (
        not isinstance(among, list)
        or not all(isinstance(a, str) and a in variants for a in among)
        or not set(ranked) <= set(among)
    ):
        raise ConfigError(
            f"{field}.among={among!r} is not allowed; use a list of the grid's variants that "
            f"holds {claim['variant']!r}: {', '.join(sorted(variants))}"
        )


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
        for key in ("better", "worse", "variant", "rivals"):
            named = claim.get(key, [])
            if any(name not in names for name in (named if isinstance(named, list) else [named])):
                raise ConfigError(
                    f"{field}.{key}={named!r} is not allowed; use a variant of the grid: "
                    f"{', '.join(sorted(names))} (or a list of them)"
                )
        if kind == "best":
            _check_among(field, claim, variants)
        if claim.get("curve", CURVES[0]) not in CURVES:
            raise ConfigError(
                f"{field}.curve={claim['curve']!r} is not allowed; use one of {', '.join(CURVES)}"
            )
        if claim.get("metric", FINALS[0]) not in FINALS:
            raise ConfigError(
                f"{field}.metric={claim['metric']!r} is not allowed; use one of {', '.join(FINALS)}"
            )
        paper = claim.get("paper", 0.0)
        numbers = paper if kind == "modes" and isinstance(paper, list) else [paper]
        symbolic = ("a1", "negative") if kind == "modes" else ()
        if not all(
            v in symbolic or (isinstance(v, int | float) and not isinstance(v, bool)) for v in numbers
        ):
            raise ConfigError(
                f"{field}.paper={paper!r} is not allowed; use a number (modes: a list of numbers)"
            )
