"""The split scenarios' label and output maps, and the checks of class groups."""

from __future__ import annotations

import pytest
import torch

from cl_attractors.errors import ConfigError
from cl_attractors.train.scenarios import SplitScenario, default_groups


def test_default_groups_are_five_pairs() -> None:
    assert default_groups(10) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert default_groups(5, 2) == [[0, 1], [2, 3], [4]]


def test_task_incremental_heads() -> None:
    s = SplitScenario.build(default_groups(10), "task", 10)
    assert (s.num_outputs, s.heads, s.head_size) == (10, 5, 2)
    assert s.targets(2).tolist() == [-1, -1, -1, -1, 4, 5, -1, -1, -1, -1]
    assert s.output_mask(2, trained=4).nonzero().flatten().tolist() == [4, 5]


def test_domain_incremental_shares_one_head() -> None:
    s = SplitScenario.build(default_groups(10), "domain", 10)
    assert (s.num_outputs, s.heads) == (2, 1)
    assert s.targets(3).tolist() == [-1, -1, -1, -1, -1, -1, 0, 1, -1, -1]
    assert s.output_mask(0, trained=3).all()


def test_class_incremental_counts_the_classes_seen() -> None:
    s = SplitScenario.build([[3, 7], [0, 1, 2]], "class", 10)
    assert (s.num_outputs, s.heads) == (10, 1)
    assert s.targets(1).tolist() == [0, 1, 2, -1, -1, -1, -1, -1, -1, -1]
    assert s.output_mask(0, trained=0).nonzero().flatten().tolist() == [3, 7]
    assert s.output_mask(0, trained=1).nonzero().flatten().tolist() == [0, 1, 2, 3, 7]


def test_every_target_is_an_output_that_counts() -> None:
    for scenario in ("task", "domain", "class"):
        s = SplitScenario.build([[0, 1, 2], [5, 6], [9]], scenario, 10)
        for t, group in enumerate(s.groups):
            targets = s.targets(t)[list(group)]
            assert s.output_mask(t, trained=t)[targets].all() and len(set(targets.tolist())) == len(group)
            assert int(targets.max()) < s.num_outputs
        assert (s.targets(0) >= 0).sum() == 3 and torch.is_tensor(s.targets(0))


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([[0, 1], [1, 2]], r"groups\[1\]=\[1, 2\] is not allowed; use groups that do not overlap \(class 1"),
        ([[0, 10]], r"groups\[0\]=\[0, 10\] is not allowed; use classes in 0..9 \(the source has 10\)"),
        ([[0], []], r"groups\[1\]=\[\] is not allowed"),
        ([], r"groups=\[\] is not allowed"),
        ([[0, True]], r"groups\[0\]=\[0, True\] is not allowed"),
    ],
)
def test_bad_groups_name_the_field(groups: list[list[int]], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^data\.family\.init_args\." + message):
        SplitScenario.build(groups, "class", 10)


def test_bad_scenario_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"^data\.family\.init_args\.scenario='tasks' is not allowed"):
        SplitScenario.build(default_groups(10), "tasks", 10)
