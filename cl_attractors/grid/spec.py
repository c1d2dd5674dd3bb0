"""Experiment specs: a YAML naming a base fit config, variants, seeds and a figure kind.

```yaml
name: fig2
kind: curves              # curves | shared | weights | sensitivity | stability | plasticity | scoreboard
base: configs/experiment/vanilla.yaml
seeds: [0, 1, 2]
overrides: []             # fit arguments for every run
variants:                 # name -> fit arguments of that variant
  control: []
  ewc: [--model.method, configs/method/ewc.yaml]
sweep: {flag: --data.shared_fraction, values: [0.0, 0.5]}   # optional: variants x values
# a sweep of lists names its runs and axis by numbers: {flag: --model.net.init_args.hidden_sizes,
#   values: [[1000], [1000, 1000]], x: [1, 2]}
sweeps: {ewc: {flag: --model.method.init_args.lam, values: [1.0, 1000.0]}}  # optional, per variant
# a sweep may add a study's tuned value: tuned: results/tune/ewc/best_method.yaml (its init_args.lam)
labels: {ewc: "EWC, λ = 1000 (paper)"}   # optional: human names in legends and tables
out_dir: runs/fig2        # default runs/<name>; run dirs <out_dir>/<variant>/seed_<s>
claims: [...]             # the paper's statements, checked by cl_attractors.report.claims
```
Input paths (``base``, config files in ``overrides``/``variants``, ``method_config``, a sweep's
``tuned``) are relative to
this file (:func:`cl_attractors.paths.resolve_relative`); ``out_dir`` and ``results_dir`` to the
working directory. A variant's sweep (``sweeps``) replaces the grid's ``sweep`` for that variant;
variants with neither run once. Beyond these fields, a kind takes only the keys its report reads
(:class:`~cl_attractors.grid.options.ReportOptions`, typed): any other key is refused.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cl_attractors.errors import ConfigError
from cl_attractors.grid.options import ReportOptions, parse_options
from cl_attractors.io import read_yaml_mapping
from cl_attractors.paths import resolve_args, resolve_relative, task_checkpoints

KINDS = ("curves", "shared", "weights", "sensitivity", "stability", "plasticity", "scoreboard")
NO_RUNS = ("plasticity", "scoreboard")
FIELDS = (
    "name",
    "kind",
    "base",
    "seeds",
    "variants",
    "overrides",
    "sweep",
    "sweeps",
    "out_dir",
    "results_dir",
    "claims",
)


@dataclass(frozen=True)
class Run:
    """One fit run of the grid: a variant (group, optional sweep value x) at one seed."""

    variant: str
    group: str
    x: float | None
    seed: int
    run_dir: Path
    args: tuple[str, ...]
    keep_task_checkpoints: bool = False  # else, once finished, only its final checkpoint is kept

    @property
    def complete(self) -> bool:
        """Whether ``metrics.json`` says the run finished all tasks."""
        return is_complete(self.run_dir)

    def command(self) -> list[str]:
        """``cli.py`` arguments (after the script): a fresh run, or a resume when a task checkpoint
        exists (``--ckpt_path last`` picks the newest that loads, whatever state last.ckpt is in)."""
        resume = ["--ckpt_path", "last"] if task_checkpoints(self.run_dir / "checkpoints") else []
        return [*self.args, *resume]


def is_complete(run_dir: Path) -> bool:
    """Whether ``run_dir/metrics.json`` exists and has ``"complete": true``."""
    try:
        text = (Path(run_dir) / "metrics.json").read_text(encoding="utf-8")
        return json.loads(text).get("complete") is True
    except (OSError, ValueError):
        return False


def held(run: Run) -> bool:
    """Whether another process holds the run's lock right now."""
    path = run.run_dir / ".lock"
    if not path.is_file():
        return False
    with open(path, encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
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
    sweeps: dict[str, dict[str, Any]] = field(default_factory=dict)
    out_dir: Path = Path("runs")
    results_dir: Path = Path("results")
    claims: list[dict] = field(default_factory=list)
    report: ReportOptions = field(default_factory=ReportOptions)  # what the report reads
    source: Path = Path("")
    keep_task_checkpoints: bool = False  # --keep_task_checkpoints: every run keeps one per task
    changes: list[str] = field(default_factory=list)  # how the command line changes the protocol

    @property
    def needs_runs(self) -> bool:
        return self.kind not in NO_RUNS

    def variant_args(self) -> dict[str, tuple[str, float | None, list[str]]]:
        """Every variant name -> (group, sweep value, its fit arguments), sweep expanded."""
        out: dict[str, tuple[str, float | None, list[str]]] = {}
        for name, args in self.variants.items():
            sweep = self.sweeps.get(name, self.sweep)
            if not sweep:
                out[name] = (name, None, list(args))
                continue
            key = sweep["flag"].lstrip("-").split(".")[-1]
            for x, value in sweep_points(sweep):
                out[f"{name}_{key}{x}"] = (name, float(x), [*args, sweep["flag"], str(value)])
        return out

    def runs(self, extra: Sequence[str] = ()) -> list[Run]:
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
                out.append(Run(variant, group, x, seed, run_dir, tuple(fit), self.keep_task_checkpoints))
        return out


def tuned_value(sweep: dict[str, Any]) -> float | None:
    """The value a sweep's ``tuned`` method file gives its flag's argument (``init_args.<name>``);
    None when the sweep names no such file or it does not exist yet (the checks refuse that)."""
    path = sweep.get("tuned")
    if not isinstance(path, str) or not Path(path).is_file():
        return None
    init_args = read_yaml_mapping(Path(path), "tuned").get("init_args") or {}
    value = init_args.get(sweep["flag"].split(".")[-1]) if isinstance(init_args, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"tuned={path} has no number init_args.{sweep['flag'].split('.')[-1]}")
    return float(value)


def sweep_values(sweep: dict[str, Any]) -> list[Any]:
    """The sweep's ``values``, and its tuned value when it names one (not twice)."""
    values = list(sweep["values"])  # as written: they name the run folders
    tuned = tuned_value(sweep)
    return values if tuned is None or tuned in values else [*values, tuned]


def sweep_points(sweep: dict[str, Any]) -> list[tuple[Any, Any]]:
    """``(x, value)`` per run: ``x`` names the run and places it on the figure's axis. A sweep
    of lists (e.g. ``hidden_sizes: [[1000], [1000, 1000]]``) gives its numbers in ``x`` (e.g.
    ``[1, 2]``, one per value); a sweep of numbers is its own ``x``."""
    if "x" in sweep:
        return list(zip(sweep["x"], sweep["values"]))
    return [(value, value) for value in sweep_values(sweep)]


def _sweep(raw: Any, path: Path) -> Any:
    """A sweep mapping with its ``tuned`` path made relative to the working directory."""
    if isinstance(raw, dict) and isinstance(raw.get("tuned"), str):
        return {**raw, "tuned": resolve_relative(raw["tuned"], path)}
    return raw


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
    for vname in _get(raw, "sweeps", dict, {}) or {}:
        if vname not in variants:
            raise ConfigError(
                f"sweeps.{vname}: {vname!r} is not a variant; use one of {', '.join(variants) or '(none)'}"
            )
    base = _get(raw, "base", str, None)
    report = parse_options(raw, kind, FIELDS)
    if report.method_config is not None:
        report = replace(report, method_config=resolve_relative(report.method_config, path))
    return ExperimentSpec(
        name=name,
        kind=kind,
        base=None if base is None else resolve_relative(base, path),
        seeds=list(_get(raw, "seeds", list, []) or []),
        variants={k: resolve_args(v, path) for k, v in variants.items()},
        overrides=resolve_args(_get(raw, "overrides", list, []) or [], path),
        sweep=_sweep(_get(raw, "sweep", dict, None), path),
        sweeps={k: _sweep(v, path) for k, v in (_get(raw, "sweeps", dict, {}) or {}).items()},
        out_dir=Path(_get(raw, "out_dir", str, f"runs/{name}")),
        results_dir=Path(_get(raw, "results_dir", str, f"results/{name}")),
        claims=list(_get(raw, "claims", list, []) or []),
        report=report,
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


def default_workers() -> tuple[int, list[int] | None]:
    """(workers, GPU ids): one worker per GPU when there are GPUs, else one per CPU core."""
    import torch

    gpus = torch.cuda.device_count()
    if gpus:
        return gpus, list(range(gpus))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1), None
