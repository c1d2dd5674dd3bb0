"""Configuration: the LightningCLI of cl-attractors and config composition.

A config file may start with ``defaults: [other.yaml, ...]`` (paths relative to that file):
those files are applied first, in order, then the file itself, then the command line. This
gives the ``configs/{trainer,data,model,method,experiment,search}`` groups their composition.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace

from callbacks.task_sequence import TaskSequence
from cl_attractors.errors import ConfigError
from cl_attractors.io import ensure_writable, read_yaml_mapping
from cl_attractors.train.data import PermutedMNIST
from cl_attractors.train.guard import GuardedCLI
from cl_attractors.train.module import CLModule

NEGATIVE_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|-\.?inf", re.IGNORECASE)


def expand_defaults(path: str | Path, _seen: tuple[Path, ...] = ()) -> list[str]:
    """``--config`` arguments for ``path`` with its ``defaults`` expanded depth-first."""
    path = Path(path)
    if path.resolve() in _seen:
        raise ConfigError(f"--config {path}: 'defaults' form a cycle")
    content = read_yaml_mapping(path, "--config")
    defaults = content.pop("defaults", [])
    if not isinstance(defaults, list) or not all(isinstance(item, str) and item for item in defaults):
        raise ConfigError(f"defaults={defaults!r} in --config {path} is not allowed; use a list of paths")
    args: list[str] = []
    for item in defaults:
        args += expand_defaults(path.parent / item, (*_seen, path.resolve()))
    if content:
        args += ["--config", yaml.safe_dump(content, sort_keys=False)]
    return args


def expand_argv(argv: Sequence[str]) -> list[str]:
    """Replace each ``--config FILE`` (or ``--config=FILE``) by its expanded defaults chain, and
    write ``--flag -1e-3`` as ``--flag=-1e-3`` (argparse takes ``-1e-3`` for an option)."""
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--config":
            out += expand_defaults(next(it, ""))
        elif arg.startswith("--config="):
            out += expand_defaults(arg.split("=", 1)[1])
        elif out and NEGATIVE_NUMBER.fullmatch(arg) and out[-1].startswith("--") and "=" not in out[-1]:
            out[-1] += f"={arg}"
        else:
            out.append(arg)
    return out


class CLI(GuardedCLI):
    """LightningCLI with the task-sequence callback always on and a ``--run_dir`` option (and the
    guards of :mod:`cl_attractors.train.guard`)."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_lightning_class_args(TaskSequence, "tasks")
        parser.add_argument(
            "--run_dir",
            type=str | None,
            default=None,
            help="write logs, outputs and checkpoints exactly here (resume: "
            "same --run_dir with --ckpt_path last)",
        )

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        if cfg.trainer.get("enable_progress_bar") is not False:
            # Lightning's default bar refreshes every step: at ~200 steps/s that costs throughput
            callbacks = cfg.trainer.get("callbacks") or []
            if not any("ProgressBar" in c.class_path for c in callbacks):
                cfg.trainer.callbacks = [
                    *callbacks,
                    Namespace(
                        class_path="lightning.pytorch.callbacks.TQDMProgressBar",
                        init_args=Namespace(refresh_rate=100),
                    ),
                ]
        cfg.trainer.max_epochs = cfg.data.num_tasks * cfg.data.epochs_per_task
        run_dir = cfg.get("run_dir")
        if run_dir:
            run_dir = Path(run_dir)
            ensure_writable(run_dir)
            cfg.trainer.logger = Namespace(
                class_path="lightning.pytorch.loggers.TensorBoardLogger",
                init_args=Namespace(
                    save_dir=str(run_dir.parent), name="", version=run_dir.name, default_hp_metric=False
                ),
            )


def make_cli(args: Sequence[str], run: bool = True) -> CLI:
    """Build (and with ``run`` execute) the CLI from command-line style ``args``."""
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    # compiling the methods' kernels on a machine without a GPU: torch says it found no CUDA
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    return CLI(
        CLModule,
        PermutedMNIST,
        args=expand_argv(args),
        run=run,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        parser_kwargs={"exit_on_error": False},
    )
