"""Experiment specs: a YAML naming a base fit config, variants, seeds and a figure kind.

```yaml
name: fig2
kind: curves              # curves | shared | weights | plasticity
base: configs/experiment/vanilla.yaml
seeds: [0, 1, 2]
overrides: []             # fit arguments for every run
variants:                 # name -> fit arguments of that variant
  control: []
  ewc: [--model.method, configs/method/ewc.yaml]
sweep: {flag: --data.shared_fraction, values: [0.0, 0.5]}   # optional: variants x values
out_dir: runs/fig2        # default runs/<name>; run dirs <out_dir>/<variant>/seed_<s>
claims: [...]             # the paper's statements, checked by cl_attractors.report.claims
```
Paths are relative to the working directory (the repository root).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cl_attractors.errors import ConfigError
from cl_attractors.io import ensure_writable, read_yaml_mapping

KINDS = ("curves", "shared", "weights", "plasticity")
SEED_MAX = 2**32 - 1  # each seed is also --seed_everything (Lightning's range)
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=+-]*")  # names that become one path component


@dataclass(frozen=True)
class Run:
    """One fit run of the grid: a variant (group, optional sweep value x) at one seed."""

    variant: str
    group: str
    x: float | None
    seed: int
    run_dir: Path
    args: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """Whether ``metrics.json`` says the run finished all tasks."""
        return is_complete(self.run_dir)

    def command(self) -> list[str]:
        """``cli.py`` arguments (after the script): a fresh run, or a resume from last.ckpt."""
        resume = ["--ckpt_path", "last"] if (self.run_dir / "checkpoints" / "last.ckpt").exists() else []
        return [*self.args, *resume]


def is_complete(run_dir: Path) -> bool:
    """Whether ``run_dir/metrics.json`` exists and has ``"complete": true``."""
    try:
        return json.loads((Path(run_dir) / "metrics.json").read_text()).get("complete") is True
    except (OSError, ValueError):
        return False


@dataclass
class ExperimentSpec:
    """A parsed experiment YAML (see the module docstring)."""

    name: str
    kind: str
    base: str | None
    seeds: list[int]
    variants: dict[str, list[str]]
    overrides: list[str] = field(default_factory=list)
    sweep: dict[str, Any] | None = None
    out_dir: Path = Path("runs")
    results_dir: Path = Path("results")
    claims: list[dict] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    source: Path = Path("")

    @property
    def needs_runs(self) -> bool:
        return self.kind != "plasticity"

    def variant_args(self) -> dict[str, tuple[str, float | None, list[str]]]:
        """Every variant name -> (group, sweep value, its fit arguments), sweep expanded."""
        if not self.sweep:
            return {name: (name, None, list(args)) for name, args in self.variants.items()}
        flag = self.sweep["flag"]
        key = flag.lstrip("-").split(".")[-1]
        return {
            f"{name}_{key}{value}": (name, float(value), [*args, flag, str(value)])
            for name, args in self.variants.items()
            for value in self.sweep["values"]
        }

    def runs(self, extra: list[str] = ()) -> list[Run]:
        """The grid: every variant at every seed, ``extra`` passed through to every fit."""
        out = []
        for variant, (group, x, args) in self.variant_args().items():
            for seed in self.seeds:
                run_dir = self.out_dir / variant / f"seed_{seed}"
                fit = [
                    "fit",
                    "--config",
                    str(self.base),
                    *self.overrides,
                    *args,
                    *extra,
                    "--seed_everything",
                    str(seed),
                    "--data.seed",
                    str(seed),
                    "--run_dir",
                    str(run_dir),
                    "--trainer.enable_progress_bar",
                    "false",
                ]
                out.append(Run(variant, group, x, seed, run_dir, tuple(fit)))
        return out


def _get(raw: dict, key: str, kind: type, default: Any) -> Any:
    value = raw.get(key, default)
    if value is not None and not isinstance(value, kind):
        raise ConfigError(f"{key}={value!r} is not allowed; use a {kind.__name__}")
    return value


def load_spec(path: str | Path) -> ExperimentSpec:
    """Parse an experiment YAML; structural errors raise :class:`ConfigError`."""
    path = Path(path)
    raw = read_yaml_mapping(path, "--config")
    name = _get(raw, "name", str, path.stem)
    kind = _get(raw, "kind", str, "curves")
    if kind not in KINDS:
        raise ConfigError(f"kind={kind!r} is not allowed; use one of {', '.join(KINDS)}")
    variants = _get(raw, "variants", dict, {}) or {}
    for vname, args in variants.items():
        if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) for a in args):
            raise ConfigError(f"variants.{vname}={args!r} is not allowed; use a list of fit arguments")
    known = {
        "name",
        "kind",
        "base",
        "seeds",
        "variants",
        "overrides",
        "sweep",
        "out_dir",
        "results_dir",
        "claims",
    }
    return ExperimentSpec(
        name=name,
        kind=kind,
        base=_get(raw, "base", str, None),
        seeds=list(_get(raw, "seeds", list, []) or []),
        variants={k: [str(a) for a in v] for k, v in variants.items()},
        overrides=[str(a) for a in _get(raw, "overrides", list, []) or []],
        sweep=_get(raw, "sweep", dict, None),
        out_dir=Path(_get(raw, "out_dir", str, f"runs/{name}")),
        results_dir=Path(_get(raw, "results_dir", str, f"results/{name}")),
        claims=list(_get(raw, "claims", list, []) or []),
        options={k: v for k, v in raw.items() if k not in known},
        source=path,
    )


def select_variants(spec: ExperimentSpec, names: list[str] | None) -> None:
    """Keep only the named variants (``--variants``); an unknown name is an error."""
    if names is None:
        return
    unknown = [n for n in names if n not in spec.variants]
    if unknown:
        raise ConfigError(
            f"--variants {unknown[0]} is not a variant of {spec.name}; "
            f"use one of {', '.join(spec.variants) or '(none)'}"
        )
    spec.variants = {n: spec.variants[n] for n in names}


def _check_writable(directory: Path, field_name: str) -> None:
    try:
        ensure_writable(directory)
    except OSError as err:
        raise ConfigError(f"{field_name}={directory} is not writable ({err})") from None


def _check_paths(where: str, args: list[str]) -> None:
    for arg in args:
        if arg.endswith((".yaml", ".yml")) and not Path(arg).is_file():
            raise ConfigError(f"{where}: config {arg} does not exist")


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


def _check_sweep(sweep: dict[str, Any] | None) -> None:
    if sweep is None:
        return
    values = sweep.get("values")
    if (
        not isinstance(sweep.get("flag"), str)
        or not sweep["flag"].startswith("--")
        or not isinstance(values, list)
        or not values
        or not all(_finite_number(v) for v in values)
    ):
        raise ConfigError(
            f"sweep={sweep!r} is not allowed; use {{flag: --a.b, values: [finite numbers, ...]}}"
        )


def validate(spec: ExperimentSpec, extra: list[str] = ()) -> None:
    """Every check that must pass before any run starts (one-line :class:`ConfigError`)."""
    if len(set(spec.seeds)) != len(spec.seeds):
        raise ConfigError(f"seeds={spec.seeds} is not allowed; seeds must be unique")
    if not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= SEED_MAX for s in spec.seeds):
        raise ConfigError(f"seeds={spec.seeds} is not allowed; use integers in [0, {SEED_MAX}]")
    _check_sweep(spec.sweep)
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
        for vname, args in spec.variants.items():
            _check_paths(f"variants.{vname}", args)
        _check_writable(spec.out_dir, "out_dir")
    method = spec.options.get("method_config")
    if method is not None and not Path(method).is_file():
        raise ConfigError(f"method_config={method} does not exist")
    _check_writable(spec.results_dir, "results_dir")


def default_workers() -> tuple[int, list[int] | None]:
    """(workers, GPU ids): one worker per GPU when there are GPUs, else one per CPU core."""
    import torch

    gpus = torch.cuda.device_count()
    if gpus:
        return gpus, list(range(gpus))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1), None
