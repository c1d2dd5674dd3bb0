"""cl-attractors command line.

    python cli.py fit --config configs/experiment/vanilla.yaml [--data.seed 3 ...]
    python cli.py fit ... --run_dir runs/x --ckpt_path last      # resume a killed run
    python cli.py tune --config configs/search/sticky_paper.yaml    # meta-learn phi (Optuna TPE)
    python cli.py experiment --config configs/grid/fig2.yaml
    python cli.py report --config configs/grid/fig2.yaml    # figures from saved runs

Bad input ends with one line ``error: ...`` and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys
from argparse import ArgumentError
from collections.abc import Callable, Sequence

from cl_attractors.errors import one_line

EXTRA_COMMANDS = {
    "tune": ("cl_attractors.tune.study", "main"),
    "experiment": ("cl_attractors.grid.command", "main"),
    "report": ("cl_attractors.grid.command", "report_main"),
}


def _command(name: str) -> Callable[[Sequence[str]], object]:
    import importlib

    module, func = EXTRA_COMMANDS[name]
    return getattr(importlib.import_module(module), func)


def _fit(args: Sequence[str]) -> None:
    from cl_attractors.train.cli import make_cli

    cli = make_cli(args)
    if cli.subcommand == "fit":
        print_outcome(cli)


def print_outcome(cli: object) -> None:
    """Print the end-of-fit summary: final metrics, the accuracy matrix, where the outputs are."""
    from callbacks.terminal import fit_report

    print(fit_report(cli.trainer))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in EXTRA_COMMANDS:
            _command(argv[0])(argv[1:])
        else:
            _fit(argv)
    except (ValueError, FloatingPointError, OSError, KeyError, ArgumentError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished tasks, checkpoints and studies are kept; re-run to resume", file=sys.stderr
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
