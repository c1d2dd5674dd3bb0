"""Task families: what task ``t`` does to the base dataset (``data.family``, by ``class_path``).

A family turns the source's base examples into task ``t``'s: which examples belong to it, how its
inputs and labels are made from them, and which of the network's outputs count for it. Its random
state is derived from the run's seed in :meth:`TaskFamily.setup`, so a run is reproducible from its
config alone. No Lightning here: the datamodule holds the family and applies it per batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from cl_attractors.errors import require


class TaskFamily(ABC):
    """A sequence of tasks made from one base dataset.

    Subclasses implement :meth:`inputs` (and :meth:`setup` when they draw anything); the other
    hooks default to "every example, labels as they are, every output counts" (domain-incremental).
    """

    def setup(self, num_tasks: int, num_features: int, seed: int) -> None:  # noqa: B027 (optional hook)
        """Derive the family's random state from ``seed`` (called once the data is loaded)."""

    def examples(self, y: Tensor, task: int) -> Tensor | None:
        """Indices of the base examples (labels ``y``) that belong to ``task``; None: all of them."""
        return None

    @abstractmethod
    def inputs(self, x: Tensor, task: int) -> Tensor:
        """Task ``task``'s inputs made from a batch of base inputs ``x`` ``[n, features]``."""

    def labels(self, y: Tensor, task: int) -> Tensor:
        """Task ``task``'s labels made from a batch of base labels ``y``."""
        return y

    def output_mask(self, task: int) -> Tensor | None:
        """Which network outputs count for ``task`` (bool ``[outputs]``; the others are masked out of
        the loss and the prediction); None: all (permuted: one shared head)."""
        return None

    def state_dict(self) -> dict[str, Tensor]:
        """The drawn state: saved in checkpoints (a resume must draw the same) and written once into
        the run directory as ``<name>.pt``."""
        return {}


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


class Permuted(TaskFamily):
    """Permuted tasks (the paper's Sec. 3.1): task ``t`` applies a seeded pixel permutation to every
    example; labels and outputs are shared by all tasks.

    Args:
        shared_fraction: fraction of pixel positions left in place in every task (paper Sec. 3.4).
        identity_first: task 0 is the unpermuted dataset.
    """

    def __init__(self, shared_fraction: float = 0.0, identity_first: bool = False) -> None:
        ok = isinstance(shared_fraction, int | float) and 0.0 <= shared_fraction <= 1.0
        require(ok, "data.family.init_args.shared_fraction", shared_fraction, "a number in [0, 1]")
        self.shared_fraction, self.identity_first = shared_fraction, identity_first
        self.permutations = torch.empty(0, 0, dtype=torch.long)

    def setup(self, num_tasks: int, num_features: int, seed: int) -> None:
        self.permutations = make_permutations(
            num_tasks, num_features, seed, self.identity_first, self.shared_fraction
        )

    def inputs(self, x: Tensor, task: int) -> Tensor:
        return x.index_select(1, self.permutations[task])

    def state_dict(self) -> dict[str, Tensor]:
        return {"permutations": self.permutations}
