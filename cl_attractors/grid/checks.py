"""The checks an experiment spec passes before any run starts: unique seeds in Lightning's range,
well-formed sweeps, names that stay one path component, config files that exist (a missing tuned
method file names the search that makes it) and writable output folders. Each failure is a
one-line :class:`ConfigError`."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cl_attractors.errors import ConfigError
from cl_attractors.grid.option_checks import check_claim_values, check_options
from cl_attractors.grid.spec import ExperimentSpec
from cl_attractors.io import ensure_writable, read_yaml_mapping

SEED_MAX = 2**32 - 1  # each seed is also --seed_everything (Lightning's range)
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=+-]*")  # names that become one path component


def _check_writable(directory: Path, field_name: str) -> None:
    try:
        ensure_writable(directory)
    except OSError as err:
        raise ConfigError(f"{field_name}={directory} is not writable ({err})") from None


def made_by(path: str) -> str:
    """How a missing tuned method file ``results/tune/<study>/best_method.yaml`` is made ('' if
    ``path`` is not one): the study's search command, and where it writes."""
    p = Path(path)
    search = Path("configs/search") / f"{p.parent.name}.yaml"
    if p.name != "best_method.yaml" or not search.is_file():
        return ""
    raw = read_yaml_mapping(search, "search config")
    command = f"`python cli.py tune --config {search}`"
    if Path(str(raw.get("results_dir"))).resolve() == p.parent.resolve():
        return f": the {p.parent.name} search has not finished ({command} writes it there once finished)"
    out_dir = raw.get("out_dir", f"runs/tune/{p.parent.name}")
    return (
        f": the {p.parent.name} search has not finished ({command} writes {out_dir}/; copy it to {p.parent}/)"
    )


def _missing(args: list[str]) -> str | None:
    return next((a for a in args if a.endswith((".yaml", ".yml")) and not Path(a).is_file()), None)


def _check_paths(where: str, args: list[str]) -> None:
    missing = _missing(args)
    if missing:
        raise ConfigError(f"{where}: config {missing} does not exist{made_by(missing)}")


def _check_variant_paths(variants: dict[str, list[str]]) -> None:
    """A variant naming a config that does not exist stops the grid; when it is a study's tuned
    method file, the message names the search command and the variants that can run now."""
    missing = {v: m for v, args in variants.items() if (m := _missing(args))}
    if not missing:
        return
    vname, path = next(iter(missing.items()))
    hint, ready = made_by(path), [v for v in variants if v not in missing]
    if hint and ready:
        hint += f"; run the others with --variants {' '.join(ready)}"
    raise ConfigError(f"variants.{vname}: config {path} does not exist{hint}")


def _check_names(spec: ExperimentSpec) -> None:
    """Names that become paths (the grid's, each variant's) stay one path component."""
    for what, value in (
        ("the grid's name", spec.name),
        *(("a variant name", v) for v in spec.variant_args()),
    ):
        if not SAFE_NAME.fullmatch(value) or value in (".", ".."):
            raise ConfigError(
                f"{what} {value!r} is not allowed: it names a folder; use letters, digits and "
                "_ . = + -, starting with a letter or digit"
            )


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(values: Any) -> bool:
    return isinstance(values, list) and bool(values) and all(_finite_number(v) for v in values)


def _check_sweep(where: str, sweep: Any) -> None:
    if sweep is None:
        return
    values: Any = sweep.get("values") if isinstance(sweep, dict) else None
    listed = isinstance(values, list) and bool(values) and all(_numbers(v) for v in values)
    if (
        not isinstance(sweep, dict)
        or not isinstance(sweep.get("flag"), str)
        or not sweep["flag"].startswith("--")
        or not (_numbers(values) or (listed and "x" in sweep))
    ):
        raise ConfigError(
            f"{where}={sweep!r} is not allowed; use {{flag: --a.b, values: [finite numbers, ...]}} "
            "(or lists of numbers with x: [one finite number per value])"
        )
    if "x" in sweep:
        x = sweep["x"]
        if not _numbers(x) or len(x) != len(values) or len(set(x)) != len(x) or "tuned" in sweep:
            raise ConfigError(
                f"{where}.x={x!r} is not allowed; use {len(values)} distinct finite numbers, one per "
                "value (they name the runs and place them on the axis; not with tuned)"
            )


def _check_tuned(spec: ExperimentSpec) -> None:
    """A sweep's ``tuned`` method file must exist (a missing one names the search that makes it)."""
    named = {"sweep": spec.sweep, **{f"sweeps.{v}": s for v, s in spec.sweeps.items()}}
    for where, sweep in named.items():
        tuned = (sweep or {}).get("tuned")
        if tuned is not None and not isinstance(tuned, str):
            raise ConfigError(f"{where}.tuned={tuned!r} is not allowed; use a study's best_method.yaml")
        if tuned is not None and not Path(tuned).is_file():
            raise ConfigError(f"{where}.tuned: config {tuned} does not exist{made_by(tuned)}")


def validate(spec: ExperimentSpec, extra: Sequence[str] = ()) -> None:
    """Every check that must pass before any run starts (one-line :class:`ConfigError`)."""
    check_options(spec)
    check_claim_values(spec.claims)
    if len(set(spec.seeds)) != len(spec.seeds):
        raise ConfigError(f"seeds={spec.seeds} is not allowed; seeds must be unique")
    if not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= SEED_MAX for s in spec.seeds):
        raise ConfigError(f"seeds={spec.seeds} is not allowed; use integers in [0, {SEED_MAX}]")
    _check_sweep("sweep", spec.sweep)
    for vname, sweep in spec.sweeps.items():
        _check_sweep(f"sweeps.{vname}", sweep)
    _check_names(spec)
    if spec.needs_runs:
        if not spec.variants or not spec.seeds:
            raise ConfigError(
                f"{spec.name}: the grid is empty (variants={list(spec.variants)}, "
                f"seeds={spec.seeds}); name at least one variant and one seed"
            )
        if spec.base is None or not Path(spec.base).is_file():
            raise ConfigError(f"base={spec.base} does not exist; name a fit config")
        _check_paths("overrides", spec.overrides)
        _check_paths("pass-through arguments", list(extra))
        _check_variant_paths(spec.variants)
        _check_tuned(spec)
        _check_writable(spec.out_dir, "out_dir")
    method = spec.report.method_config
    if method is not None and not Path(method).is_file():
        raise ConfigError(f"method_config={method} does not exist")
    _check_writable(spec.results_dir, "results_dir")
