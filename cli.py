"""cl-attractors command line (also installed as the ``cl-attractors`` command: ``pip install -e .``).

    python cli.py fit -c configs/experiment/vanilla.yaml [--seed 3 --model.method EWC ...]
    python cli.py fit --run_dir runs/x --ckpt_path last          # resume a killed run (its own config)
    python cli.py validate -c runs/x/config.yaml --ckpt_path runs/x/checkpoints/task_02.ckpt
    python cli.py tune --config configs/search/sticky_paper.yaml    # meta-learn phi (Optuna TPE)
    python cli.py experiment --config configs/grid/fig2.yaml [--replicas 8|auto]
    python cli.py report --config configs/grid/fig2.yaml    # figures from saved runs
    python cli.py merge --config configs/grid/fig2.yaml --from OTHER/runs/fig2   # runs made elsewhere

Bad input ends with one line ``error: ...`` and exit status 2, never a traceback.
"""

from __future__ import annotations

import functools
import sys
from argparse import ArgumentError
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cl_attractors.errors import ConfigError, bounded, environment_cause, interrupted, one_line
from cl_attractors.io import safe_yaml

# expected failures: a refused value or file (ConfigError, a parser's ArgumentError), a training
# that diverged on the given values, and the environment (a full disk, a missing permission);
# anything else is a bug and keeps its traceback
EXPECTED = (ConfigError, ArgumentError, FloatingPointError, OSError)
KEPT = "finished tasks, checkpoints and studies are kept; re-run (fit: --ckpt_path last) to resume"

COMMANDS = {
    "fit": "train one run over the whole task sequence (LightningCLI: `fit --help` lists every field)",
    "validate": "a checkpoint's accuracy on every task, written to <run>/validation/ (LightningCLI)",
    "tune": "meta-learn a method's hyperparameters with Optuna TPE on Eq. 2",
    "experiment": "run a grid of fits (a paper figure) in parallel, then report",
    "report": "tables, figures and claims of a grid from its saved runs",
    "merge": "bring a grid's finished runs home from another machine's out_dir",
    "replicas": "train a group of fit runs (one architecture and protocol) as one replica-batched model",
}
EXTRA_COMMANDS = {
    "tune": ("cl_attractors.tune.study", "main"),
    "experiment": ("cl_attractors.commands.experiment", "main"),
    "report": ("cl_attractors.commands.experiment", "report_main"),
    "merge": ("cl_attractors.commands.merge", "main"),
    "replicas": ("cl_attractors.replicas.group", "main"),
}


def usage(prog: str) -> str:
    """The top-level help: every command of this tool, LightningCLI's and ours."""
    lines = [f"usage: {prog} {{{','.join(COMMANDS)}}} [options]", "", "commands:"]
    lines += [f"  {name:<12}{text}" for name, text in COMMANDS.items()]
    lines += [
        "",
        f"`{prog} COMMAND --help` lists a command's options. Paths inside a config are relative to",
        "that config file; -c/--config FILE, --data FILE, --model FILE, --trainer FILE and",
        "--model.method FILE|ClassName compose a run; --seed N sets the data and init seeds;",
        "--print_config prints what will run.",
    ]
    return "\n".join(lines) + "\n"


def _command(name: str) -> Callable[[Sequence[str]], object]:
    import importlib

    module, func = EXTRA_COMMANDS[name]
    command = getattr(importlib.import_module(module), func)
    # the grid never imports train/ (a run is a fit process): its probe of each variant, and the
    # size of a replica group, come from here
    if name == "experiment":
        return functools.partial(command, probe=_probe_fit, sizer=_max_replicas)
    return command


def _probe_fit(args: Sequence[str]) -> None:
    """Build a fit from ``args`` without training: every check of its values runs, and Lightning's
    banners ("Seed set to", "GPU available") stay out of the terminal: the runs print their own."""
    from callbacks.terminal import banners_off
    from cl_attractors.train.cli import make_cli

    try:
        with banners_off():
            make_cli(args, run=False)
    except ArgumentError as err:
        raise ConfigError(one_line(err)) from None


def _max_replicas(args: Sequence[str]) -> int:
    """How many runs like ``args`` (fit arguments) fit the device as one replica group."""
    from callbacks.terminal import banners_off
    from cl_attractors.replicas.memory import max_replicas

    with banners_off():
        return max_replicas(args)


def _fit(args: Sequence[str]) -> None:
    from cl_attractors.train.cli import make_cli

    if args and args[0] == "validate" and not any(a.startswith("--ckpt_path") for a in args):
        raise ConfigError(
            "validate needs --ckpt_path RUN/checkpoints/task_XX.ckpt: the checkpoint to evaluate"
        )
    cli = make_cli(args)
    if cli.subcommand == "fit":
        print_outcome(cli)
    elif cli.subcommand == "validate":
        print_validation(cli)


def print_validation(cli: Any) -> None:
    """Print a checkpoint's accuracy per task beside the column the run recorded, and write it
    to ``<run>/validation/`` (callbacks/validation.py)."""
    from callbacks.task_sequence import TaskSequence
    from callbacks.validation import report
    from cl_attractors.train.guard import resolve_ckpt_path

    seq = next(c for c in cli.trainer.callbacks if isinstance(c, TaskSequence))
    config = cli.config[cli.subcommand]
    if seq.validated is None:
        raise ConfigError(f"validate: {config.ckpt_path} evaluated no task; check --data.eval_split")
    # the file read ('last' is the run's checkpoints/last.ckpt), so the report lands beside its run
    ckpt = resolve_ckpt_path(config.ckpt_path, config.get("run_dir")) or Path(config.ckpt_path)
    text, _ = report(seq.validated, ckpt, str(config.data.eval_split))
    print(text)


def print_outcome(cli: Any) -> None:
    """Print the end-of-fit summary: final metrics, the accuracy matrix, where the outputs are."""
    from callbacks.terminal import fit_report

    print(fit_report(cli.trainer))


def safe_streams() -> None:
    """The terminal streams never fail on a character their encoding lacks (an ASCII locale and
    the φ, λ, ± of a report): it is written escaped. Files are written as UTF-8 everywhere."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def bounded_parser_yaml() -> None:
    """Every YAML value the fit's parser reads (a command-line value, an inline config) is bounded
    as the config files are (:func:`cl_attractors.io.safe_yaml`): an alias bomb is refused."""
    import jsonargparse
    import yaml
    from jsonargparse._loaders_dumpers import yaml_load

    def load(stream: str) -> Any:
        if isinstance(stream, str) and ("*" in stream or "\x00" in stream):  # aliases or NUL bytes
            safe_yaml(stream, "a YAML value")
        return yaml_load(stream)

    jsonargparse.set_loader("yaml", load, (yaml.YAMLError,))


def check_argv(argv: Sequence[str]) -> None:
    """Refuse an argument holding a NUL byte (no path or value can hold one)."""
    for arg in argv:
        if "\x00" in arg:
            raise ConfigError(f"the argument {bounded(repr(arg), 120)} holds a NUL byte; remove it")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    safe_streams()
    if not argv:
        print(f"error: command is missing; use one of {', '.join(COMMANDS)} (--help)", file=sys.stderr)
        return 2
    if argv[0] not in COMMANDS and not argv[0].startswith("-"):
        shown = bounded(repr(argv[0]), 80)
        print(f"error: command {shown} is not allowed; use one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(usage(Path(sys.argv[0]).name), end="")
        return 0
    try:
        check_argv(argv)
        bounded_parser_yaml()
        if argv[0] in EXTRA_COMMANDS:
            _command(argv[0])(argv[1:])
        else:
            _fit(argv)
    except EXPECTED as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {KEPT}", file=sys.stderr)
        return 130
    except Exception as err:  # a full disk deep inside a library is the environment, not a bug
        if interrupted(err):  # Ctrl-C inside an import: ImportError from KeyboardInterrupt
            print(f"interrupted: {KEPT}", file=sys.stderr)
            return 130
        cause = environment_cause(err)
        if cause is None:
            raise
        print(f"error: {one_line(cause)}; free space, then re-run: {KEPT}", file=sys.stderr)
        return 2
    except SystemExit as err:
        if isinstance(err.__context__, KeyboardInterrupt):  # Lightning's exit(1) after its Ctrl-C
            print(f"interrupted: {KEPT}", file=sys.stderr)
            return 130
        if type(err).__name__ != "SIGTERMException":  # Lightning's, raised at a batch boundary
            raise
        print(f"error: terminated by SIGTERM before the run finished: {KEPT}", file=sys.stderr)
        return 143
    return 0


def entry_point() -> None:
    """The ``cl-attractors`` console command (``[project.scripts]`` in pyproject.toml)."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
