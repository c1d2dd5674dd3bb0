"""One checkpoint per task boundary, kept, and a resume that trusts only checkpoints that load.

``checkpoints/task_03.ckpt`` holds the run right after task 3 (weights, optimizer, the method's
state, A so far), so the weights after any task can be reloaded and analysed; ``last.ckpt`` is a
link to the newest. :class:`~callbacks.task_sequence.TaskSequence` says when to save (after the
method's ``on_task_end``, before metrics.json counts the task), not Lightning's epoch cadence.
``--ckpt_path last`` resumes from the newest task checkpoint that loads, whatever state
``last.ckpt`` is in (missing, dangling, pointing at a truncated file). ``cli.py experiment`` keeps
only a finished run's final checkpoint unless told otherwise
(:func:`cl_attractors.paths.prune_task_checkpoints`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

from cl_attractors.errors import ConfigError
from cl_attractors.io import load_tensors
from cl_attractors.paths import task_checkpoints, task_file


def load_problem(path: Path) -> str | None:
    """Why ``path`` cannot be resumed from (None: it loads and holds a training state)."""
    try:
        with zipfile.ZipFile(path) as archive:  # torch.save's format: every member CRC-checked
            bad = archive.testzip()
        if bad is not None:
            return f"member {bad} is corrupt"
        ckpt = load_tensors(path, mmap=True)  # weights only: a planted pickle runs no code
    except ConfigError as err:
        return f"not a loadable checkpoint ({err})"
    except (OSError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as err:
        return f"not a loadable checkpoint ({type(err).__name__}: {err})"
    if not isinstance(ckpt, dict):
        return "not a training checkpoint (not a mapping)"
    missing = {"state_dict", "loops", "optimizer_states"} - set(ckpt)
    return f"not a training checkpoint (no {', '.join(sorted(missing))})" if missing else None


class TaskCheckpoint(ModelCheckpoint):
    """A checkpoint after every task, kept (``checkpoints/task_XX.ckpt``); ``last.ckpt`` links the newest.

    Lightning's own triggers are off (no top-k, no epoch or step cadence): it saves when told.

    Args:
        dirpath: where to save (default: ``<run dir>/checkpoints``).
    """

    def __init__(self, dirpath: str | None = None) -> None:
        super().__init__(dirpath=dirpath, save_top_k=0, every_n_epochs=0, save_on_train_epoch_end=True)

    def directory(self, trainer: pl.Trainer) -> Path:
        if self.dirpath:
            return Path(self.dirpath)
        return Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"

    def save_task(self, trainer: pl.Trainer, task: int) -> None:
        """Save the run as it is after ``task`` (Lightning writes atomically) and link last.ckpt."""
        path = self.directory(trainer) / task_file(task)
        self._save_checkpoint(trainer, str(path))
        self.best_model_path = str(path)
        self.last_model_path = str(path.with_name(self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION))
        self._link_checkpoint(trainer, str(path), self.last_model_path)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A fresh run must not mix its checkpoints with an earlier run's in the same directory."""
        directory = self.directory(trainer)
        earlier = task_checkpoints(directory)
        if trainer.ckpt_path is None and earlier:
            raise ConfigError(
                f"{directory} holds the checkpoints of an earlier run ({earlier[-1].name} .. "
                f"{earlier[0].name}); resume it with --ckpt_path last, or choose another --run_dir"
            )

    def _find_last_checkpoints(self, trainer: pl.Trainer) -> set[str]:
        """``--ckpt_path last``: the newest task checkpoint that loads (last.ckpt is not trusted)."""
        found = task_checkpoints(self.directory(trainer))
        for path in found:
            problem = load_problem(path)
            if problem is None:
                return {str(path)}
            rank_zero_warn(f"skipping {path}: {problem}")
        if found:
            raise ConfigError(
                f"--ckpt_path last: no checkpoint in {found[0].parent} loads; delete that directory "
                "to start the run afresh"
            )
        return set()
