"""The command line shared by ``experiment``, ``report`` and ``merge``: a grid YAML with the
command line applied (seeds, variants, per-variant ``--set``, fit overrides), and where its
results go.

A grid's ``results_dir`` (``results/<name>/``: published figures and tables) is written only by an
invocation that runs the config's own protocol; one that changes it (fit overrides, ``--seeds``,
``--variants`` or ``--set``) writes its tables and figures to ``<out_dir>/results/`` instead,
unless it names ``--results_dir`` or passes ``--publish``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, NoReturn

from cl_attractors.errors import ConfigError
from cl_attractors.grid.checks import validate
from cl_attractors.grid.spec import ExperimentSpec, Run, load_spec, select_variants
from cl_attractors.report.claim_spec import check_claims
from cl_attractors.report.published import check_published

ARGS_FILE = "experiment_args.json"
RECORD_FILE = "experiment.json"  # the last experiment's command-line changes, for `report`

EXTRA_HELP = """\
Arguments not listed above are fit overrides passed to EVERY run of the grid (every variant),
e.g. --data.num_tasks 3 --data.train_size 2000; to change ONE variant, use
--set VARIANT:key=value (e.g. --set ewc:model.method.init_args.lam=500; repeatable).
Fit overrides, --seeds, --variants and --set change the config's protocol: such an invocation
writes its tables and figures under <out_dir>/results/, never the config's results_dir
(results/<name>/), unless --publish or --results_dir says where."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise ConfigError(f"{self.prog}: {message}")


def grid_parser(prog: str, running: bool, description: str = "") -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        allow_abbrev=False,
        description=description,
        epilog=EXTRA_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="experiment YAML (configs/grid/fig*.yaml)")
    parser.add_argument("--seeds", type=int, nargs="+", help="replace the YAML's seeds")
    parser.add_argument("--variants", nargs="+", help="only these variants of the YAML")
    parser.add_argument(
        "--set",
        dest="set_args",
        action="append",
        default=[],
        metavar="VARIANT:key=value",
        help="a fit argument for one variant only (e.g. ewc:model.method.init_args.lam=500)",
    )
    parser.add_argument("--out_dir", help="run directory root (default: the YAML's, or runs/<name>)")
    parser.add_argument(
        "--results_dir", help="tables, figures, results.md (default: the YAML's, see --publish)"
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="write the YAML's results_dir even though the command line changes the protocol",
    )
    if running:
        parser.add_argument("--workers", type=int, help="parallel runs (default: CPU cores, or GPUs)")
        parser.add_argument(
            "--workers-per-gpu",
            "--workers_per_gpu",
            dest="workers_per_gpu",
            type=int,
            help="K runs at once on each GPU, one CPU thread each (docs/distributed.md: choosing K)",
        )
        parser.add_argument(
            "--keep_task_checkpoints",
            action="store_true",
            help="keep every run's checkpoint after each task (default: a finished run keeps its final one)",
        )
        parser.add_argument(
            "--replicas",
            help="train R runs of one variant as one replica-batched model per process (a positive "
            "integer, or auto: the most that fit the device's memory); --workers such processes at once",
        )
        parser.add_argument(
            "--scheduler",
            help="run on the Dask cluster of this scheduler: tcp://HOST:8786 (docs/distributed.md)",
        )
    return parser


def parse_set(values: list[str], variants: dict[str, list[str]]) -> dict[str, list[str]]:
    """``--set VARIANT:key=value`` (repeatable) as fit arguments per variant."""
    out: dict[str, list[str]] = {}
    for item in values:
        name, sep, assignment = item.partition(":")
        key, eq, value = assignment.partition("=")
        key = key.strip().removeprefix("--")
        if not sep or not eq or not name or not key:
            raise ConfigError(
                f"--set {item} is not allowed; use VARIANT:key=value, e.g. ewc:model.method.init_args.lam=500"
            )
        if name not in variants:
            raise ConfigError(
                f"--set {item}: {name!r} is not a variant; use one of {', '.join(variants) or '(none)'}"
            )
        out.setdefault(name, []).extend([f"--{key}", value])
    return out


def protocol_changes(spec: ExperimentSpec, args: argparse.Namespace, extra: list[str]) -> list[str]:
    """What this command line changes in the config's protocol (empty: the config's own)."""
    changes = []
    if extra:
        changes.append("fit overrides " + " ".join(extra))
    if args.seeds is not None and list(args.seeds) != spec.seeds:
        changes.append("--seeds " + " ".join(map(str, args.seeds)))
    if args.variants is not None and set(args.variants) != set(spec.variants):
        changes.append("--variants " + " ".join(args.variants))
    changes += [f"--set {item}" for item in args.set_args]
    return changes


def grid_spec(args: argparse.Namespace, extra: list[str]) -> ExperimentSpec:
    """The spec with the command line applied, validated (claims too, against every variant of
    the YAML: ``--variants`` may leave some out), its results_dir chosen (module docstring)."""
    spec = load_spec(args.config)
    spec.changes = protocol_changes(spec, args, extra)
    everything = dict(spec.variants)
    for name, more in parse_set(args.set_args, everything).items():
        everything[name] = [*everything[name], *more]
    spec.variants = everything
    select_variants(spec, args.variants)
    if args.seeds is not None:
        spec.seeds = list(args.seeds)
    if args.out_dir:
        spec.out_dir = Path(args.out_dir)
    if args.results_dir:
        spec.results_dir = Path(args.results_dir)
    elif spec.changes and not args.publish:
        spec.results_dir = spec.out_dir / "results"
    spec.keep_task_checkpoints = getattr(args, "keep_task_checkpoints", False)
    validate(spec, extra)
    names = set(dataclasses.replace(spec, variants=everything).variant_args())
    check_claims(spec.claims, names | set(everything), set(everything))
    check_references(spec, names | set(everything), list(everything))
    if spec.report.published is not None:
        check_published(spec.report.published)
    return spec


def check_references(spec: ExperimentSpec, known: set[str], variants: list[str]) -> None:
    """``reference`` and every key and value of ``references`` name a variant (or a sweep's group)
    of the YAML (``--variants`` may leave some out: their rows are n/a)."""
    use = f"use one of {', '.join(variants)}"
    ref = spec.report.reference
    if ref is not None and ref not in known:
        raise ConfigError(f"reference={ref!r} is not a variant of the grid; {use}")
    for key, value in spec.report.references.items():
        if key not in known:
            raise ConfigError(f"references.{key}: {key!r} is not a variant of the grid; {use}")
        if value not in known:
            raise ConfigError(f"references.{key}={value!r} is not a variant of the grid; {use}")


def record(spec: ExperimentSpec, args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    """What ``report`` needs to re-render this invocation's grid as it ran."""
    return {
        "config": spec.name,
        "extra": extra,
        "seeds": args.seeds,
        "variants": args.variants,
        "set": args.set_args,
    }


def recorded_args(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """``extra`` with the last experiment's record of the same out_dir filled in where the
    command line leaves it out (fit overrides; the grid's own seeds, variants and ``--set``)."""
    spec = load_spec(args.config)
    saved = read_json(Path(args.out_dir or spec.out_dir) / RECORD_FILE, {})
    if not isinstance(saved, dict):
        return extra
    if saved.get("config") == spec.name:
        if args.seeds is None and isinstance(saved.get("seeds"), list):
            args.seeds = saved["seeds"]
        if args.variants is None and isinstance(saved.get("variants"), list):
            args.variants = saved["variants"]
        if not args.set_args and isinstance(saved.get("set"), list):
            args.set_args = saved["set"]
    return extra or list(saved.get("extra") or [])


def check_reuse(runs: list[Run]) -> None:
    """A run directory made with other fit arguments must not be skipped or resumed silently."""
    for run in runs:
        path = run.run_dir / ARGS_FILE
        if path.is_file() and read_json(path, None) != list(run.args):
            raise ConfigError(
                f"{run.run_dir} was made with other fit arguments (see {path}); "
                "use another --out_dir or delete it"
            )


def read_json(path: Path, default: Any) -> Any:
    """A JSON file this command wrote; ``default`` when it was torn or edited into non-JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default
