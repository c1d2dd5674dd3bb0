"""The LightningCLI of cl-attractors: ``fit`` and ``validate`` with one ``--seed`` and ``--run_dir``.

The command line is first rewritten by :mod:`cl_attractors.train.compose` (``defaults`` lists,
group files, file-relative paths, seed aliases). Methods are selectable by class name
(``--model.method EWC``) because every module of :mod:`cl_attractors.methods` is imported here.
The schedule is linked where Lightning expects it: ``trainer.max_epochs`` and
``trainer.check_val_every_n_epoch`` are computed from ``data.num_tasks`` and
``data.epochs_per_task``. ``--print_config`` prints the configuration that will run.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from jsonargparse import Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import SaveConfigCallback

import cl_attractors.methods
from callbacks.task_sequence import TaskSequence
from callbacks.terminal import quiet_lightning
from cl_attractors.errors import ConfigError
from cl_attractors.io import ensure_writable, safe_yaml
from cl_attractors.schedule import max_epochs
from cl_attractors.train.compose import expand_argv
from cl_attractors.train.data import TaskData
from cl_attractors.train.guard import GuardedCLI, RunGuard, lightning_refusals
from cl_attractors.train.module import CLModule
from cl_attractors.train.resume import check_resume, resume_args

PRINT_FLAGS = {"skip_default", "skip_unset"}


def import_methods() -> None:
    """Import every method module, so that jsonargparse finds each CLMethod subclass by name."""
    for info in pkgutil.iter_modules(cl_attractors.methods.__path__):
        importlib.import_module(f"cl_attractors.methods.{info.name}")


def split_print_config(args: Sequence[str]) -> tuple[list[str], set[str] | None]:
    """``args`` without ``--print_config[=flags]``, and its flags (None: not asked for)."""
    rest, flags = [], None
    for arg in args:
        if arg == "--print_config" or arg.startswith("--print_config="):
            flags = {f for f in arg.partition("=")[2].split(",") if f}
            if flags - PRINT_FLAGS:
                raise ConfigError(
                    f"print_config={arg.partition('=')[2]} is not allowed; use flags among "
                    f"{', '.join(sorted(PRINT_FLAGS))}"
                )
        else:
            rest.append(arg)
    return rest, flags


class CLI(GuardedCLI):
    """LightningCLI with the task-sequence callback always on, ``--seed`` and ``--run_dir`` (and
    the guards of :mod:`cl_attractors.train.guard`; only fit and validate: the task sequence
    evaluates every task on data.eval_split inside fit)."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_lightning_class_args(RunGuard, "guard")
        parser.add_lightning_class_args(TaskSequence, "tasks")
        parser.link_arguments(("data.num_tasks", "data.epochs_per_task"), "trainer.max_epochs", max_epochs)
        parser.link_arguments("data.epochs_per_task", "trainer.check_val_every_n_epoch")
        parser.add_argument(
            "--seed",
            type=int,
            default=0,
            help="seed of the run: the task permutations and shuffles (data.seed) and the "
            "initialisation (seed_everything)",
        )
        parser.link_arguments("seed", "seed_everything", apply_on="parse")
        parser.link_arguments("seed", "data.seed", apply_on="parse")
        parser.add_argument(
            "--run_dir",
            type=str | None,
            default=None,
            help="write logs, outputs and checkpoints exactly here (resume: "
            "same --run_dir with --ckpt_path last)",
        )
        parser.link_arguments("run_dir", "guard.run_dir", apply_on="parse")
        parser.add_argument(
            "--eval_every_n_steps",
            type=int | None,
            default=None,
            help="also evaluate every task seen so far every this many optimizer steps on a fixed "
            "subsample of its test images (tasks.eval_subsample); writes eval_curve.csv (off by default)",
        )
        parser.link_arguments("eval_every_n_steps", "tasks.eval_every_n_steps", apply_on="parse")

    def parse_arguments(self, parser: Any, args: Any) -> None:
        args, print_flags = split_print_config(args)
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        cfg = self.config[subcommand] if subcommand else self.config
        derive(cfg, subcommand)
        printer = self._subcommand_parsers[subcommand] if subcommand else parser
        if subcommand == "fit" and cfg.get("ckpt_path") and cfg.get("run_dir"):
            check_resume(cfg.run_dir, safe_yaml(printer.dump(cfg, skip_none=False), "the resumed config"))
        if print_flags is not None:
            sys.stdout.write(
                printer.dump(
                    cfg,
                    skip_unset="skip_unset" in print_flags,
                    skip_default="skip_default" in print_flags,
                )
            )
            raise SystemExit(0)

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        if cfg.get("run_dir"):
            ensure_writable(Path(cfg.run_dir))


def derive(cfg: Namespace, subcommand: str | None = "fit") -> None:
    """The values set from others: the task checkpoints (a ``trainer.callbacks`` list in a YAML
    replaces the default list: they are put back, or resume would have nothing to resume from;
    not with ``trainer.enable_checkpointing false``, as tune's trials run), the task progress bar
    (without one, a plain line per task) and the logger of ``run_dir`` (``validate`` logs
    nothing: it leaves the run's files alone)."""
    callbacks = cfg.trainer.get("callbacks") or []
    wanted = cfg.trainer.get("enable_checkpointing") is not False
    if wanted and not any("TaskCheckpoint" in c.class_path for c in callbacks):
        ckpt = Namespace(
            class_path="callbacks.task_checkpoint.TaskCheckpoint", init_args=Namespace(dirpath=None)
        )
        cfg.trainer.callbacks = [ckpt, *callbacks]
    callbacks = cfg.trainer.get("callbacks") or []
    if not any(c.class_path.endswith(("ProgressBar", "TaskLines")) for c in callbacks):
        shown = "TaskLines" if cfg.trainer.get("enable_progress_bar") is False else "TaskProgressBar"
        line = Namespace(class_path=f"callbacks.terminal.{shown}", init_args=Namespace())
        cfg.trainer.callbacks = [*callbacks, line]
    if subcommand == "validate":
        cfg.trainer.logger = False
    elif cfg.get("run_dir"):
        run_dir = Path(cfg.run_dir)
        cfg.trainer.logger = Namespace(
            class_path="lightning.pytorch.loggers.TensorBoardLogger",
            init_args=Namespace(
                save_dir=str(run_dir.parent), name="", version=run_dir.name, default_hp_metric=False
            ),
        )


def make_cli(args: Sequence[str], run: bool = True, callbacks: Sequence[pl.Callback] = ()) -> CLI:
    """Build (and with ``run`` execute) the CLI from command-line style ``args``; ``callbacks`` are
    added to the configured ones (LightningCLI's persistent ``trainer_defaults`` callbacks)."""
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    quiet_lightning()
    # compiling the methods' kernels on a machine without a GPU: torch says it found no CUDA
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    import_methods()
    args = resume_args(args)  # `fit --run_dir R --ckpt_path last`: R's own config
    validate = bool(args) and args[0] == "validate"  # writes nothing into the checkpoint's run
    # Lightning checks some settings only when the fit starts: a refusal, not a bug
    with lightning_refusals("trainer: ", (MisconfigurationException,)):
        return CLI(
            CLModule,
            TaskData,
            args=expand_argv(args),
            run=run,
            save_config_callback=None if validate else SaveConfigCallback,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_kwargs={"exit_on_error": False},
            trainer_defaults={"callbacks": list(callbacks)} if callbacks else None,
        )
