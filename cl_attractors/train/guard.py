"""The guards of a ``fit``/``validate`` run, each at the point where its input enters.

* after parsing (``parse_arguments``): :mod:`cl_attractors.train.checks` (values, seeds, whole
  tasks, memory), ``test``/``predict`` refused (the app has no test or predict step: ``validate``
  evaluates), and ``--ckpt_path`` read once and checked (readable, a Lightning checkpoint);
* building the objects (``instantiate_classes``, ``instantiate_trainer``): the constructors'
  refusals become one-line ConfigErrors, the checkpoint's tensors are checked against the built
  model (the module saves no hyperparameters, so Lightning never replaces the config's model by a
  checkpoint's), and the optimizer is built once so that its own checks (lr, betas, eps) run;
* the run: :class:`RunGuard` (a callback the parser adds, like the task sequence) takes one lock
  per ``--run_dir``, checks the data against the network, and makes a fit that a callback stopped
  before its last task an error, not a success; the trainer's checkpoint IO
  (:class:`AtomicCheckpointIO`, a ``plugins`` entry) writes atomically: a full disk leaves no
  partial file.
"""

from __future__ import annotations

import fcntl
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningCLI

from callbacks.task_sequence import TaskSequence
from cl_attractors.errors import ConfigError, one_line
from cl_attractors.io import load_tensors, save_tensor
from cl_attractors.methods.base import DataFacts
from cl_attractors.train.checks import check_config

LOCK_FILE = ".fit.lock"
SPECIAL_CKPT = ("best", "hpc", "registry")
SUBCOMMANDS = ("fit", "validate")
UNSUPPORTED = ("test", "predict")
# what a constructor raises when it refuses a value
REFUSALS = (MisconfigurationException, ValueError, TypeError, OverflowError)
# words of torch.optim's refusals -> the argument they are about
OPTIMIZER_WORDS = {
    "learning rate": "lr",
    "epsilon": "eps",
    "beta": "betas",
    "weight_decay": "weight_decay",
    "momentum": "momentum",
    "dampening": "dampening",
}


@contextmanager
def lightning_refusals(where: str = "", kinds: tuple[type[Exception], ...] = REFUSALS) -> Iterator[None]:
    """Turn a value refused while building the configured objects (``kinds``) into a one-line
    ConfigError, prefixed by ``where`` when the refusal does not name its field."""
    try:
        yield
    except ConfigError:
        raise
    except kinds as err:
        raise ConfigError(f"{where}{one_line(err)}") from None


# ---- checkpoints ----------------------------------------------------------------------------
def resolve_ckpt_path(value: str | None, run_dir: str | None) -> Path | None:
    """The checkpoint file ``--ckpt_path`` names, or None (none given, or one Lightning resolves:
    ``last`` without a last checkpoint in ``run_dir``, ``best``, ...)."""
    if value is None or value in SPECIAL_CKPT:
        return None
    if value == "last":
        last = Path(run_dir) / "checkpoints" / "last.ckpt" if run_dir else None
        return last if last is not None and last.is_file() else None
    return Path(value)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (tensors and plain data only: no code runs), or a ConfigError."""
    if path.is_dir():
        raise ConfigError(f"--ckpt_path {path} is a directory; give a .ckpt file written by fit")
    if not path.is_file():
        raise ConfigError(f"--ckpt_path {path} does not exist")
    try:
        ckpt = load_tensors(path, "--ckpt_path")
    except ConfigError as err:
        raise ConfigError(f"{err}; give a .ckpt file written by fit") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ConfigError(f"--ckpt_path {path} is not a Lightning checkpoint (it has no state_dict)")
    return ckpt


def check_state_fits(ckpt: dict[str, Any], model: torch.nn.Module, path: Path) -> None:
    """Refuse a checkpoint whose tensors are not this model's (another network or method)."""

    def shapes(state: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in state.items() if torch.is_tensor(v)}

    theirs, ours = shapes(ckpt["state_dict"]), shapes(model.state_dict())
    if theirs == ours:
        return
    if ours.keys() - theirs.keys():
        detail = f"it lacks {sorted(ours.keys() - theirs.keys())[0]}"
    elif theirs.keys() - ours.keys():
        detail = f"it has {sorted(theirs.keys() - ours.keys())[0]}, which this model has not"
    else:
        key = next(k for k in sorted(ours) if ours[k] != theirs[k])
        detail = f"{key} is {list(theirs[key])} there, {list(ours[key])} here"
    raise ConfigError(
        f"--ckpt_path {path} holds another model than this config's model ({detail}); "
        "resume with the run's own config.yaml (model.method included)"
    )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file next to the target, then renamed (Lightning's own
    writer stages in the system temp dir and copies across file systems: a full disk left a
    partial checkpoint), and read back weights-only whatever the caller or the environment
    (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``) asks: a resume never runs a checkpoint's code."""

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return dict(load_tensors(Path(path)))

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            super().save_checkpoint(checkpoint, path, storage_options)
        else:
            save_tensor(Path(path), checkpoint)


# ---- the optimizer, the data ------------------------------------------------------------------
def check_optimizer(model: Any, init_args: dict[str, Any]) -> None:
    """Build the configured optimizer once: its own checks (lr, betas, eps, ...) run now. The
    error names the argument its message is about, else all of them."""
    try:
        model.optimizer_factory(model.parameters())
    except (ValueError, TypeError) as err:
        text = one_line(err)
        arg = next((a for word, a in OPTIMIZER_WORDS.items() if word in text.lower()), None)
        raise ConfigError(
            f"model.optimizer.init_args{'.' + arg if arg else f'={init_args}'}: {text}"
        ) from None


def check_data_fits(datamodule: Any, model: Any) -> None:
    """The network against the loaded data: it takes the task's inputs, and has an output for every
    label (a one-line ConfigError naming ``model.net`` otherwise)."""
    source = datamodule.source
    x, _ = datamodule.sample(0, 1, torch.Generator().manual_seed(0))
    features, wanted = math.prod(x.shape[1:]), getattr(model.net, "input_size", None)
    if isinstance(wanted, int) and wanted != features:
        raise ConfigError(
            f"model.net.init_args.input_size={wanted} does not fit data.source={source!r}: its "
            f"examples have {features} features ({list(x.shape[1:])}); use {features}"
        )
    try:
        with torch.no_grad():
            outputs = model.net(x).shape[-1]
    except RuntimeError as err:
        raise ConfigError(
            f"model.net does not take the inputs of data.source={source!r} ({list(x.shape[1:])} per "
            f"example): {one_line(err)}"
        ) from None
    family = datamodule.family
    top = max(
        int(family.labels(y, t).max())
        for t in range(datamodule.num_tasks)
        for y in (datamodule.task_split(split, t)[1] for split in ("train", "val", "test"))
        if len(y)
    )
    family.check_outputs(outputs, top, f"data.source={source!r}")


def check_method_fits(datamodule: Any, model: Any) -> None:
    """The method against the task sequence (``CLMethod.check_data``: a memory larger than the
    data)."""
    dm = datamodule
    sizes = tuple(len(dm.task_split("train", t)[1]) for t in range(dm.num_tasks))
    model.method.check_data(DataFacts(sizes))


# ---- the run ----------------------------------------------------------------------------------
class RunDirLock:
    """An exclusive lock on ``run_dir`` (``flock`` on ``run_dir/.fit.lock``, freed when the
    process ends, however it ends)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.handle: Any = None

    def acquire(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.run_dir / LOCK_FILE, "a+", encoding="utf-8")  # held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise ConfigError(
                f"--run_dir {self.run_dir} is in use by another process (pid {holder}); "
                "wait for it to end or use another --run_dir"
            ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


class RunGuard(pl.Callback):
    """Locks ``run_dir``, checks the data against the network, and makes a fit that ended before
    its last task an error (the command line adds it and links ``--run_dir`` to it).

    Args:
        run_dir: the run's directory (None: no lock).
    """

    def __init__(self, run_dir: str | None = None) -> None:
        self.lock = RunDirLock(Path(run_dir)) if run_dir else None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.lock is not None:
            self.lock.acquire()
        check_data_fits(trainer.datamodule, pl_module)
        check_method_fits(trainer.datamodule, pl_module)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.lock is not None:
            self.lock.release()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, err: BaseException) -> None:
        if self.lock is not None:
            self.lock.release()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seq = next((c for c in trainer.callbacks if isinstance(c, TaskSequence)), None)
        if seq is None or seq.A is None or seq.tasks_done >= seq.A.shape[0]:
            return
        raise ConfigError(
            f"the run stopped after {seq.tasks_done} of {seq.A.shape[0]} tasks: a callback stopped the "
            "trainer (trainer.should_stop) before the last task; metrics.json says complete: false"
        )


# ---- the LightningCLI hooks -------------------------------------------------------------------
class GuardedCLI(LightningCLI):
    """LightningCLI with the guards above at its entry points; only ``fit`` and ``validate``."""

    checkpoint: dict[str, Any] | None = None
    checkpoint_path: Path | None = None

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {k: v for k, v in LightningCLI.subcommands().items() if k in SUBCOMMANDS}

    def _command_config(self) -> Any:
        sub = self.config.get("subcommand")
        return self.config[sub] if sub else self.config

    def parse_arguments(self, parser: Any, args: Any) -> None:
        if args and isinstance(args[0], str) and args[0] in UNSUPPORTED:
            raise ConfigError(
                f"subcommand {args[0]!r} is not supported; use fit (trains the tasks and fills A) or "
                "validate (evaluates every task: validate --config RUN/config.yaml --ckpt_path CKPT "
                "--data.eval_split test)"
            )
        super().parse_arguments(parser, args)
        cfg = self._command_config()
        check_config(cfg.as_dict())
        path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.get("run_dir"))
        if path is not None:
            self.checkpoint, self.checkpoint_path = read_checkpoint(path), path

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        cfg = self._command_config().trainer
        shown = ", ".join(f"{k}={cfg.get(k)!r}" for k in ("accelerator", "devices", "strategy", "precision"))
        if not cfg.get("plugins"):  # atomic checkpoint writes, unless the config names its own IO
            kwargs.setdefault("plugins", [AtomicCheckpointIO()])
        with lightning_refusals(f"trainer ({shown}): "):
            return super().instantiate_trainer(**kwargs)

    def instantiate_classes(self) -> None:
        with lightning_refusals():
            super().instantiate_classes()
        if self.checkpoint is not None and self.checkpoint_path is not None:
            check_state_fits(self.checkpoint, self.model, self.checkpoint_path)
            self.checkpoint = None  # Lightning reads the file again when it resumes
        optimizer = self._command_config().model.get("optimizer")
        check_optimizer(self.model, optimizer.get("init_args", {}).as_dict() if optimizer else {})
