"""Split tasks and the three scenarios of van de Ven & Tolias (2019) and Hsu et al. (2018), as
pure maps of labels and outputs.

A split family gives task ``t`` the images of the classes ``groups[t]``. The scenario says what the
network must output for them:

* ``task`` (task-incremental): a head of ``k`` outputs per task (``k`` = the largest group),
  stacked into one output layer of ``len(groups) * k``; the target of class ``groups[t][j]`` is
  output ``t * k + j``, and only task ``t``'s head counts, in training and at test (the task id is
  given).
* ``domain`` (domain-incremental): one shared head of ``k`` outputs; the target is ``j``, the
  position of the class in its group (split MNIST in pairs: even or odd).
* ``class`` (class-incremental): one head over every class of the source; the target is the class
  itself; the outputs that count are those of every class seen so far (the current task's
  included), in training and at test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from cl_attractors.errors import require

Scenario = Literal["task", "domain", "class"]
SCENARIOS: tuple[str, ...] = ("task", "domain", "class")


def default_groups(num_classes: int, size: int = 2) -> list[list[int]]:
    """Consecutive classes in groups of ``size``: ``[[0, 1], [2, 3], ...]`` (five pairs for 10)."""
    return [list(range(i, min(i + size, num_classes))) for i in range(0, num_classes, size)]


def check_groups(groups: object, num_classes: int, field: str) -> list[list[int]]:
    """``groups`` as a list of non-empty lists of distinct classes in ``0..num_classes-1`` that
    no two groups share; a :class:`ConfigError` naming ``field`` (and the group) otherwise."""
    allowed = f"a list of non-empty lists of classes in 0..{num_classes - 1}, no class twice"
    require(isinstance(groups, list | tuple) and len(groups) > 0, field, groups, allowed)
    assert isinstance(groups, list | tuple)
    seen: set[int] = set()
    out: list[list[int]] = []
    for t, group in enumerate(groups):
        name = f"{field}[{t}]"
        require(isinstance(group, list | tuple) and len(group) > 0, name, group, allowed)
        assert isinstance(group, list | tuple)
        for c in group:
            ok = isinstance(c, int) and not isinstance(c, bool) and 0 <= c < num_classes
            require(ok, name, list(group), f"classes in 0..{num_classes - 1} (the source has {num_classes})")
            require(c not in seen, name, list(group), f"groups that do not overlap (class {c} is in two)")
            seen.add(c)
        out.append([int(c) for c in group])
    return out


@dataclass(frozen=True)
class SplitScenario:
    """The label and output maps of a split into ``groups`` in a ``scenario``."""

    groups: tuple[tuple[int, ...], ...]
    scenario: Scenario
    num_classes: int

    @classmethod
    def build(cls, groups: list[list[int]], scenario: str, num_classes: int) -> SplitScenario:
        """Checked groups and scenario (fields ``data.family.init_args.groups`` / ``.scenario``)."""
        field = "data.family.init_args"
        require(scenario in SCENARIOS, f"{field}.scenario", scenario, f"one of {', '.join(SCENARIOS)}")
        checked = check_groups(groups, num_classes, f"{field}.groups")
        return cls(tuple(tuple(g) for g in checked), scenario, num_classes)  # type: ignore[arg-type]

    @property
    def head_size(self) -> int:
        """Outputs of one head: the largest group."""
        return max(len(g) for g in self.groups)

    @property
    def num_outputs(self) -> int:
        """Outputs the network needs: ``tasks * k`` (task), ``k`` (domain), the classes (class)."""
        if self.scenario == "task":
            return len(self.groups) * self.head_size
        return self.head_size if self.scenario == "domain" else self.num_classes

    @property
    def heads(self) -> int:
        """Heads of the network: one per task in the task scenario, else one."""
        return len(self.groups) if self.scenario == "task" else 1

    def targets(self, task: int) -> Tensor:
        """``[num_classes]`` int64: the target of each class of task ``task``, -1 elsewhere."""
        out = torch.full((self.num_classes,), -1, dtype=torch.int64)
        for j, c in enumerate(self.groups[task]):
            out[c] = {"task": task * self.head_size + j, "domain": j, "class": c}[self.scenario]
        return out

    def output_mask(self, task: int, trained: int) -> Tensor:
        """``[num_outputs]`` bool: the outputs that count for task ``task``'s images when the
        newest task trained is ``trained`` (``trained = task`` while training on it)."""
        mask = torch.zeros(self.num_outputs, dtype=torch.bool)
        if self.scenario == "task":
            mask[task * self.head_size : (task + 1) * self.head_size] = True
        elif self.scenario == "domain":
            mask[:] = True
        else:
            for group in self.groups[: trained + 1]:
                mask[list(group)] = True
        return mask
