"""Task families: what task ``t`` does to the base dataset (``data.family``, by ``class_path``).

A family turns the source's base examples into task ``t``'s: which examples belong to it, how its
inputs and labels are made from them, and which of the network's outputs count for it. Its random
state is derived from the run's seed in :meth:`TaskFamily.setup`, so a run is reproducible from its
config alone. No Lightning here: the datamodule holds the family and applies it once per task and split.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from cl_attractors.errors import ConfigError, require, require_finite
from cl_attractors.train.scenarios import SplitScenario, default_groups
from cl_attractors.train.transforms import draw_angles, rotate


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

    def output_mask(self, task: int, trained: int) -> Tensor | None:
        """Which network outputs count for ``task``'s examples while ``trained`` is the newest task
        trained (``trained == task`` in training; class-incremental learning counts every class seen
        so far): bool ``[outputs]``, the others are masked out of the loss and the prediction; None:
        all (permuted: one shared head)."""
        return None

    def check_outputs(self, outputs: int, top: int, source: str) -> None:
        """Refuse, before training, a network whose ``outputs`` cannot serve this family's labels
        (``top``: the largest label of any task); one line naming the field to change."""
        if outputs <= top:
            raise ConfigError(
                f"model.net has {outputs} outputs; {source} has labels up to {top}: "
                f"use at least {top + 1} (model.net.init_args.num_classes for an MLP)"
            )

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


FIELD = "data.family.init_args"
MAX_CLASSES = 100_000  # classes of a source (a read-out, not a memory test)


def positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_classes(value: object, field: str) -> None:
    """A count of classes: an integer in ``[1, MAX_CLASSES]`` (one line naming ``field``)."""
    ok = positive(value) and value <= MAX_CLASSES  # type: ignore[operator]
    require(ok, f"{FIELD}.{field}", value, f"an integer in [1, {MAX_CLASSES}]")


def check_read_out(split: SplitScenario, outputs: int, what: str) -> None:
    """Refuse a network of ``outputs`` outputs that ``split``'s scenario cannot use (``what``
    names the family's arguments that made the groups)."""
    if outputs == split.num_outputs:
        return
    if split.scenario == "task":
        shape, fix = (
            f"{split.heads} heads of {split.head_size}",
            f"heads {split.heads} and num_classes {split.head_size}",
        )
    else:
        shape, fix = f"{split.num_outputs} outputs", f"num_classes {split.num_outputs}"
    raise ConfigError(
        f"model.net has {outputs} outputs; {FIELD}.scenario={split.scenario!r} with {what} needs "
        f"{shape}: use model.net.init_args.{fix}"
    )


def image_shape(image_size: list[int] | None, num_features: int) -> tuple[int, int]:
    """``image_size``, or the square whose side is ``sqrt(num_features)``."""
    if image_size is not None:
        ok = len(image_size) == 2 and all(map(positive, image_size))
        ok = ok and image_size[0] * image_size[1] == num_features
        require(
            ok, f"{FIELD}.image_size", image_size, f"[height, width] of the source's {num_features} pixels"
        )
        return image_size[0], image_size[1]
    side = math.isqrt(num_features)
    require(
        side * side == num_features,
        f"{FIELD}.image_size",
        None,
        f"[height, width] ({num_features} is not square)",
    )
    return side, side


class Rotated(TaskFamily):
    """Rotated tasks: task ``t`` turns every image ``angles[t]`` degrees counter-clockwise
    (bilinear, black corners: :func:`~cl_attractors.train.transforms.rotate`); labels and outputs
    are shared by all tasks (domain-incremental).

    Args:
        angles: one angle per task, in degrees; null: drawn uniformly in ``[low, high)`` from the
            run's seed.
        low: the smallest drawn angle.
        high: the bound of the drawn angles.
        first_upright: with drawn angles, task 0 is not turned.
        image_size: ``[height, width]``; null: the square the source's pixels make (28 x 28).
    """

    def __init__(
        self,
        angles: list[float] | None = None,
        low: float = 0.0,
        high: float = 180.0,
        first_upright: bool = True,
        image_size: list[int] | None = None,
    ) -> None:
        for name, value in (("low", low), ("high", high)):
            require(number(value), f"{FIELD}.{name}", value, "a number (degrees)")
        require_finite({"angles": angles, "low": low, "high": high}, FIELD)
        require(low <= high, f"{FIELD}.high", high, f"a number >= low ({low})")
        self.given, self.low, self.high, self.first_upright = angles, low, high, first_upright
        self.image_size = image_size
        self.angles = torch.empty(0, dtype=torch.float64)
        self.shape = (0, 0)

    def setup(self, num_tasks: int, num_features: int, seed: int) -> None:
        self.shape = image_shape(self.image_size, num_features)
        if self.given is None:
            self.angles = torch.tensor(draw_angles(num_tasks, seed, self.low, self.high, self.first_upright))
            return
        given = list(self.given)
        require(
            len(given) == num_tasks,
            f"{FIELD}.angles",
            given,
            f"{num_tasks} angles, one per task (data.num_tasks)",
        )
        self.angles = torch.tensor(given, dtype=torch.float64)

    def inputs(self, x: Tensor, task: int) -> Tensor:
        return rotate(x, self.shape, float(self.angles[task]))

    def state_dict(self) -> dict[str, Tensor]:
        return {"angles": self.angles}


class Split(TaskFamily):
    """Split tasks: task ``t`` holds the images of the classes ``groups[t]``, learnt in one of
    three scenarios (:mod:`cl_attractors.train.scenarios`): ``task`` (a head per task, the task
    given at test), ``domain`` (one shared head: the position of the class in its group) or
    ``class`` (one head over every class seen).

    Args:
        scenario: ``task``, ``domain`` or ``class``.
        groups: the classes of each task, one group per task; null: the first ``data.num_tasks``
            groups of ``group_size`` consecutive classes (five pairs for split MNIST).
        group_size: classes per task when ``groups`` is null.
        num_classes: the classes of the source.
    """

    def __init__(
        self,
        scenario: str = "class",
        groups: list[list[int]] | None = None,
        group_size: int = 2,
        num_classes: int = 10,
    ) -> None:
        check_classes(num_classes, "num_classes")
        require(positive(group_size), f"{FIELD}.group_size", group_size, "an integer >= 1")
        self.scenario, self.group_size, self.num_classes = scenario, group_size, num_classes
        self.groups = groups
        self.scenario_map = None if groups is None else SplitScenario.build(groups, scenario, num_classes)

    @property
    def split(self) -> SplitScenario:
        if self.scenario_map is None:
            raise RuntimeError("Split.setup has not run: its default groups depend on data.num_tasks")
        return self.scenario_map

    def setup(self, num_tasks: int, num_features: int, seed: int) -> None:
        if self.groups is None:
            size, classes = self.group_size, self.num_classes
            fits = f"at most {classes // size} tasks (groups of {FIELD}.group_size={size} in "
            fits += f"num_classes={classes})"
            require(num_tasks * size <= classes, "data.num_tasks", num_tasks, fits)
            groups = default_groups(classes, size)[:num_tasks]
            self.scenario_map = SplitScenario.build(groups, self.scenario, classes)
        tasks = len(self.split.groups)
        require(num_tasks == tasks, "data.num_tasks", num_tasks, f"{tasks}, one task per class group")
        self.members = [torch.tensor(g) for g in self.split.groups]

    def examples(self, y: Tensor, task: int) -> Tensor:
        members = self.members[task].to(y.device)
        found = torch.isin(members, y)
        absent = members[~found].tolist()
        require(
            not absent,
            f"{FIELD}.groups[{task}]",
            list(self.split.groups[task]),
            f"classes the source has (none of {absent})",
        )
        return torch.isin(y, members).nonzero().flatten()

    def inputs(self, x: Tensor, task: int) -> Tensor:
        return x

    def labels(self, y: Tensor, task: int) -> Tensor:
        return self.split.targets(task).to(y.device)[y]

    def output_mask(self, task: int, trained: int) -> Tensor:
        return self.split.output_mask(task, trained)

    def check_outputs(self, outputs: int, top: int, source: str) -> None:
        s = self.split
        check_read_out(s, outputs, f"{len(s.groups)} groups of num_classes={s.num_classes}")
