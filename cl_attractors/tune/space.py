"""The search space of a meta-learning study, as data: parsed from YAML, checked, sampled.

Each entry of ``space:`` names an ``__init__`` argument of the method class (it becomes
``--model.method.init_args.<name>``) and is one of

* a range ``{low: 0.01, high: 10.0}`` (log-uniform unless ``log: false``; ``int: true`` for integers),
* a categorical ``{choices: [true, false]}`` (scalars only: bool, int, float, str, null),
* anything else: a fixed value, passed unchanged to every trial.

Ranges and categoricals become Optuna distributions (``FloatDistribution``, ``IntDistribution``,
``CategoricalDistribution``), so a study's trials carry them as Optuna users expect. A range or a
categorical may add ``when: {other: value}``: it is sampled only in trials where the
categorical ``other`` (listed before it) took ``value``, e.g. EWC's ``gamma_online`` only when
``mode`` is ``online``; in the other trials it keeps the ``fit`` configuration's value.

A parameter left out of the space keeps the value of the ``fit`` configuration.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from cl_attractors.errors import ConfigError, one_line, require_finite
from cl_attractors.signatures import init_parameters

RANGE_KEYS = {"low", "high", "log", "int", "when"}


@dataclass(frozen=True)
class Sampled:
    """A parameter the study samples from an Optuna distribution (a range: ``FloatDistribution``
    or ``IntDistribution``, log-uniform by default as in the paper's App. 6.2; a categorical:
    ``CategoricalDistribution``), only in trials where every ``when`` choice took its value."""

    distribution: BaseDistribution
    when: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Fixed:
    """A value given to every trial unchanged."""

    value: Any


Param = Sampled | Fixed


def allowed_params(cls: type) -> list[str]:
    """Names a search space may set on ``cls``: its ``__init__`` arguments (and its bases' when
    it forwards ``**kwargs``)."""
    return list(init_parameters(cls))


def parse_space(raw: Any, cls: type) -> dict[str, Param]:
    """Check the YAML ``space:`` mapping against ``cls`` and return its parameters."""
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"search.space={raw!r} is not allowed; use a non-empty mapping name -> range")
    allowed = allowed_params(cls)
    unknown = [name for name in raw if name not in allowed]
    if unknown:
        raise ConfigError(
            f"search.space has unknown parameter(s) {unknown} for {cls.__name__}; allowed: {allowed}"
        )
    space: dict[str, Param] = {}
    for name, spec in raw.items():
        space[name] = _parse_param(name, spec, space)
    return space


def _parse_when(field: str, spec: dict, before: dict[str, Param]) -> tuple[tuple[str, Any], ...]:
    when = spec.get("when", {})
    if not isinstance(when, dict) or not when:
        raise ConfigError(f"{field}.when={when!r} is not allowed; use a mapping {{choice: value}}")
    for other, value in when.items():
        param = before.get(other)
        dist = param.distribution if isinstance(param, Sampled) else None
        if not isinstance(dist, CategoricalDistribution) or value not in dist.choices:
            raise ConfigError(
                f"{field}.when.{other}={value!r} is not allowed; use one of the choices "
                f"of a categorical listed before {field.rsplit('.', 1)[-1]}"
            )
    return tuple(when.items())


def _parse_param(name: str, spec: Any, before: dict[str, Param]) -> Param:
    field = f"search.space.{name}"
    if not isinstance(spec, dict) or not ({"low", "high", "choices"} & spec.keys()):
        return Fixed(spec)
    when = _parse_when(field, spec, before) if "when" in spec else ()
    if "choices" in spec:
        return _parse_choice(field, {k: v for k, v in spec.items() if k != "when"}, when)
    extra = spec.keys() - RANGE_KEYS
    if extra or not {"low", "high"} <= spec.keys():
        raise ConfigError(f"{field}={spec!r} is not allowed; use {{low, high[, log][, int]}}")
    low, high = spec["low"], spec["high"]
    for key, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(f"{field}.{key}={value!r} is not allowed; use a finite number")
    if low >= high:
        raise ConfigError(f"{field}.low={low} >= high={high} is not allowed; use low < high")
    log, is_int = spec.get("log", True), spec.get("int", False)
    if not isinstance(log, bool) or not isinstance(is_int, bool):
        raise ConfigError(f"{field}.log={log!r}, int={is_int!r} is not allowed; use true or false")
    if log and low <= 0:
        raise ConfigError(f"{field}.low={low} <= 0 with log: true is not allowed; use low > 0 or log: false")
    if is_int and (low != int(low) or high != int(high)):
        raise ConfigError(f"{field}.int=true with low={low}, high={high} is not allowed; use integer bounds")
    if is_int:
        return Sampled(IntDistribution(int(low), int(high), log=log), when)
    return Sampled(FloatDistribution(float(low), float(high), log=log), when)


def _parse_choice(field: str, spec: dict, when: tuple[tuple[str, Any], ...]) -> Sampled:
    choices = spec["choices"]
    if len(spec) != 1 or not isinstance(choices, list) or not choices:
        raise ConfigError(f"{field}={spec!r} is not allowed; use {{choices: [a non-empty list]}}")
    bad = [c for c in choices if c is not None and not isinstance(c, bool | int | float | str)]
    if bad:
        raise ConfigError(f"{field}.choices has {bad!r}; use scalars (bool, int, float, str, null)")
    return Sampled(CategoricalDistribution(choices), when)


def _probe_values(name: str, param: Param) -> list[tuple[str, Any]]:
    if isinstance(param, Fixed):
        return [(f"search.space.{name}", param.value)]
    dist = param.distribution
    if isinstance(dist, CategoricalDistribution):
        return [(f"search.space.{name}.choices[{i}]", c) for i, c in enumerate(dist.choices)]
    assert isinstance(dist, FloatDistribution | IntDistribution)
    return [(f"search.space.{name}.low", dist.low), (f"search.space.{name}.high", dist.high)]


def check_space_values(space: dict[str, Param], cls: type, base: dict[str, Any]) -> None:
    """Every fixed value, choice and range end through ``cls``'s own checks (its ``__init__`` with
    the ``fit`` configuration's other arguments ``base``), before the first trial."""
    for name, param in space.items():
        for field, value in _probe_values(name, param):
            require_finite(value, field)
            try:
                cls(**{**base, name: value})
            except (ValueError, TypeError) as err:
                raise ConfigError(
                    f"{field}={value!r} is refused by {cls.__name__}: {one_line(err)}"
                ) from None


def suggest(trial: optuna.Trial, space: dict[str, Param]) -> dict[str, Any]:
    """φ of one trial: sampled values for ranges and choices, the fixed values as they are."""
    phi: dict[str, Any] = {}
    for name, param in space.items():
        if isinstance(param, Fixed):
            phi[name] = param.value
        elif all(phi.get(k) == v for k, v in param.when):
            phi[name] = _suggest(trial, name, param.distribution)
    return phi


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    assert isinstance(dist, FloatDistribution)
    return trial.suggest_float(name, dist.low, dist.high, log=dist.log)


def fit_overrides(phi: dict[str, Any]) -> list[str]:
    """``fit`` command-line overrides setting φ on the method (strings as they are, other values
    as JSON, which the parser reads as YAML)."""
    args: list[str] = []
    for name, value in phi.items():
        text = value if isinstance(value, str) else json.dumps(value)
        args += [f"--model.method.init_args.{name}", text]
    return args
