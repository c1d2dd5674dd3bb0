"""cl-attractors command line.

    python cli.py fit --config configs/experiment/vanilla.yaml [--data.seed 3 ...]
    python cli.py fit ... --run_dir runs/x --ckpt_path last      # resume a killed run
    python cli.py tune --config configs/search/sticky_paper.yaml    # meta-learn phi (Optuna TPE)
    python cli.py experiment --config configs/grid/fig2.yaml
    python cli.py report --config configs/grid/fig2.yaml    # figures from saved runs

Bad input ends with one line ``error: ...`` and exit status 2, never a traceback.
"""

from __future__ import annotations

import functools
import sys
from argparse import ArgumentError
from collections.abc import Callable, Sequence

from cl_attractors.errors import ConfigError, one_line

# expected failures: a refused value or file (ConfigError, a parser's ArgumentError), a training
# that diverged on the given values, and the environment (a full disk, a missing permission);
# anything else is a bug and keeps its traceback
EXPECTED = (ConfigError, ArgumentError, FloatingPointError, OSError)
KEPT = "finished tasks, checkpoints and studies are kept; re-run (fit: --ckpt_path last) to resume"

EXTRA_COMMANDS = {
    "tune": ("cl_attractors.tune.study", "main"),
    "experiment": ("cl_attractors.grid.command", "main"),
    "report": ("cl_attractors.grid.command", "report_main"),
}


def _command(name: str) -> Callable[[Sequence[str]], object]:
    import importlib

    module, func = EXTRA_COMMANDS[name]
    command = getattr(importlib.import_module(module), func)
    # the grid never imports train/ (a run is a fit process): its probe of each variant comes from here
    return functools.partial(command, probe=_probe_fit) if name == "experiment" else command


def _probe_fit(args: Sequence[str]) -> None:
    """Build a fit from ``args`` without training: every check of its values runs."""
    from cl_attractors.train.cli import make_cli

    try:
        make_cli(args, run=False)
    except ArgumentError as err:
        raise ConfigError(one_line(err)) from None


def _fit(args: Sequence[str]) -> None:
    from cl_attractors.train.cli import make_cli

    cli = make_cli(args)
    if cli.subcommand == "fit":
        print_outcome(cli)


def print_outcome(cli: object) -> None:
    """Print the accuracy matrix and where the outputs are."""
    from callbacks.task_sequence import TaskSequence
    from cl_attractors.io import matrix_to_csv

    trainer = cli.trainer
    seq = next(c for c in trainer.callbacks if isinstance(c, TaskSequence))
    summary = seq.summary()
    print("\nAccuracy matrix A[i, j] (row i = evaluated task, column j = after training task j):")
    print(matrix_to_csv(seq.A).replace(",", "\t"), end="")
    if summary["tasks_done"]:
        print(
            f"final average accuracy {summary['final_avg_acc']:.4f}   Eq. 2 {summary['eq2']:.4f}"
            f"   BWT {summary['bwt']}"
        )
    print(f"outputs and TensorBoard logs: {trainer.log_dir}   (tensorboard --logdir {trainer.log_dir})")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in EXTRA_COMMANDS:
            _command(argv[0])(argv[1:])
        else:
            _fit(argv)
    except EXPECTED as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {KEPT}", file=sys.stderr)
        return 130
    except SystemExit as err:
        if type(err).__name__ != "SIGTERMException":  # Lightning's, raised at a batch boundary
            raise
        print(f"error: terminated by SIGTERM before the run finished: {KEPT}", file=sys.stderr)
        return 143
    return 0


if __name__ == "__main__":
    sys.exit(main())
