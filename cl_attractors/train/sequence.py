"""A sequence of datasets as a task family (``data.source`` a list of sources)."""

from __future__ import annotations

import torch
from torch import Tensor

from cl_attractors.errors import require
from cl_attractors.train.families import FIELD, Split, TaskFamily, check_classes, check_read_out
from cl_attractors.train.scenarios import SCENARIOS


class DatasetSequence(TaskFamily):
    """A sequence of datasets (``data.source`` a list, e.g. ``[embedded, fashion_mnist]``): task
    ``t`` is source ``t``'s images, each turned by its own task transform (``families[t]``'s task
    0, e.g. a permutation or a rotation), learnt in a scenario: ``domain`` (one shared head, the
    class within its dataset), ``class`` (one head over every dataset's classes) or ``task`` (a
    head per dataset).

    Args:
        scenario: ``domain``, ``class`` or ``task``.
        classes_per_source: the classes of each source (the datamodule shifts source ``k``'s labels
            by ``k`` times this).
        families: one family per source whose task 0 transforms that source's images (null: as
            they are).
    """

    def __init__(
        self, scenario: str = "domain", classes_per_source: int = 10, families: list[TaskFamily] | None = None
    ) -> None:
        check_classes(classes_per_source, "classes_per_source")
        require(scenario in SCENARIOS, f"{FIELD}.scenario", scenario, f"one of {', '.join(SCENARIOS)}")
        self.scenario, self.classes = scenario, classes_per_source
        self.families = list(families or [])
        self.inner: Split | None = None

    def setup(self, num_tasks: int, num_features: int, seed: int) -> None:
        n, c = num_tasks, self.classes
        require(
            not self.families or len(self.families) == n,
            f"{FIELD}.families",
            len(self.families),
            f"{n} families, one per source (data.num_tasks)",
        )
        self.inner = Split(
            self.scenario, [list(range(t * c, (t + 1) * c)) for t in range(n)], num_classes=n * c
        )
        self.inner.setup(n, num_features, seed)
        for t, family in enumerate(self.families):
            family.setup(1, num_features, seed + t)

    def _split(self) -> Split:
        if self.inner is None:
            raise RuntimeError("DatasetSequence.setup has not run")
        return self.inner

    def examples(self, y: Tensor, task: int) -> Tensor:
        """Source ``task``'s examples (its labels shifted past the sources before it), each source
        of ``classes_per_source`` classes: refused otherwise, naming the argument."""
        n, c = len(self._split().split.groups), self.classes
        own = torch.arange(task * c, (task + 1) * c, device=y.device)
        top = int(y.max()) if len(y) else -1
        source = f"the classes of each of the {n} sources of data.source (labels 0..{top} in all)"
        require(top < n * c and bool(torch.isin(own, y).all()), f"{FIELD}.classes_per_source", c, source)
        return torch.isin(y, own).nonzero().flatten()

    def inputs(self, x: Tensor, task: int) -> Tensor:
        return self.families[task].inputs(x, 0) if self.families else x

    def labels(self, y: Tensor, task: int) -> Tensor:
        return self._split().labels(y, task)

    def output_mask(self, task: int, trained: int) -> Tensor:
        return self._split().output_mask(task, trained)

    def check_outputs(self, outputs: int, top: int, source: str) -> None:
        split = self._split().split
        check_read_out(split, outputs, f"{len(split.groups)} sources of classes_per_source={self.classes}")

    def state_dict(self) -> dict[str, Tensor]:
        return {
            f"{t}.{k}": v for t, family in enumerate(self.families) for k, v in family.state_dict().items()
        }
