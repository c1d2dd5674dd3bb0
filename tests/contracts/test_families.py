"""The rotated, split and dataset-sequence families, the once-per-task data cache and the joint and
independent reference protocols, on tiny synthetic data (no fit unless the test says so)."""

from __future__ import annotations

import pytest
import torch

from cl_attractors.errors import ConfigError
from cl_attractors.train.data import TaskData
from cl_attractors.train.families import Rotated, Split, TaskFamily
from cl_attractors.train.networks import MLP
from cl_attractors.train.protocols import joint_slice, reinitialise
from cl_attractors.train.sequence import DatasetSequence
from cl_attractors.train.transforms import rotate


def data(family: TaskFamily, **kwargs: object) -> TaskData:
    args: dict = {"source": "synthetic", "synthetic_size": 200, "num_tasks": 3, "batch_size": 16}
    dm = TaskData(family=family, **{**args, **kwargs})
    dm.setup()
    return dm


class Counting(Rotated):
    """A rotated family that counts its transforms."""

    calls = 0

    def inputs(self, x: torch.Tensor, task: int) -> torch.Tensor:
        Counting.calls += 1
        return super().inputs(x, task)


def test_rotation_is_paid_once_per_task_and_split() -> None:
    Counting.calls = 0
    dm = data(Counting(angles=[0.0, 30.0, 60.0]))
    for epoch in range(3):
        batches = list(dm.train_batches(1, epoch))
    assert Counting.calls == 1
    x_base, _ = dm.loaded().split("train")
    order = dm.shuffle_order(1, 2, len(x_base))
    assert torch.equal(batches[0][0], rotate(x_base, (28, 28), 30.0)[order[:16]])
    for _ in range(2):
        [list(dm.eval_batches(t)) for t in range(3)]
    assert Counting.calls == 1 + 3
    assert dm.sample(1, 5, torch.Generator().manual_seed(0))[0].shape == (5, 784) and Counting.calls == 4


def test_rotated_angles_given_or_drawn_from_the_seed() -> None:
    drawn = [data(Rotated(high=90.0), seed=s).family.state_dict()["angles"] for s in (1, 1, 2)]
    assert torch.equal(drawn[0], drawn[1]) and not torch.equal(drawn[0], drawn[2])
    assert drawn[0][0] == 0 and bool((drawn[0] < 90).all())
    with pytest.raises(
        ConfigError, match=r"^data\.family\.init_args\.angles=\[10\.0\] is not allowed; use 3 angles"
    ):
        data(Rotated(angles=[10.0]))
    with pytest.raises(ConfigError, match=r"^data\.family\.init_args\.angles\[1\]=nan is not allowed"):
        Rotated(angles=[0.0, float("nan"), 1.0])
    with pytest.raises(ConfigError, match=r"^data\.family\.init_args\.image_size=\[20, 20\] is not allowed"):
        data(Rotated(image_size=[20, 20]))


@pytest.mark.parametrize(
    ("scenario", "targets", "outputs"),
    [("task", {2, 3}, [2, 3]), ("domain", {0, 1}, [0, 1]), ("class", {2, 3}, [0, 1, 2, 3])],
)
def test_split_tasks_hold_their_classes_in_each_scenario(scenario: str, targets: set, outputs: list) -> None:
    dm = data(Split(scenario, groups=[[0, 1], [2, 3], [4, 5]]))
    x, y = dm.task_data("train", 1)
    _, base = dm.task_split("train", 1)
    assert set(base.tolist()) == {2, 3} and set(y.tolist()) == targets and len(x) == len(y)
    assert dm.family.output_mask(1, 1).nonzero().flatten().tolist() == outputs


def test_split_refuses_what_it_cannot_do() -> None:
    with pytest.raises(
        ConfigError, match=r"^data\.num_tasks=3 is not allowed; use 5, one task per class group"
    ):
        data(Split("class", groups=[[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]))
    with pytest.raises(ConfigError, match=r"^data\.num_tasks=6 is not allowed; use at most 5 tasks \(groups"):
        data(Split("class"), num_tasks=6)
    assert data(Split("domain"), num_tasks=4).family.split.groups[-1] == (6, 7)
    with pytest.raises(ConfigError, match=r"groups\[1\]=\[2, 12\] is not allowed; use classes in 0\.\.9"):
        Split("class", groups=[[0, 1], [2, 12], [3]])
    family = Split("task", groups=[[0, 1], [2, 3], [4, 5]])
    with pytest.raises(
        ConfigError, match=r"^model\.net has 2 outputs; .*task. with 3 groups of num_classes=10 needs 3"
    ):
        family.check_outputs(2, 1, "data.source='synthetic'")
    family.check_outputs(6, 5, "data.source='synthetic'")


def test_a_class_the_source_lacks_is_named() -> None:
    with pytest.raises(ConfigError, match=r"groups\[1\]=\[2, 3\] is not allowed; use classes the source has"):
        data(Split("class", groups=[[0, 1], [2, 3], [4]]), train_size=1).task_split("train", 1)


def test_a_sequence_of_datasets_shifts_labels_and_transforms_each() -> None:
    family = DatasetSequence("domain", families=[Rotated(angles=[0.0]), Rotated(angles=[90.0])])
    dm = data(family, source=["synthetic", "synthetic"], num_tasks=2)
    _, base = dm.task_split("train", 1)
    assert int(base.min()) >= 10 and len(dm.loaded().y_train) == 400
    x, y = dm.task_data("train", 1)
    assert int(y.max()) <= 9 and torch.equal(x, rotate(dm.task_split("train", 1)[0], (28, 28), 90.0))
    with pytest.raises(ConfigError, match=r"^data\.source=\['synthetic', 'cifar'\] is not allowed"):
        data(family, source=["synthetic", "cifar"], num_tasks=2)


def test_joint_slices_cover_every_example_once_per_pass() -> None:
    slots = [joint_slice(103, 4, epoch, seed=3) for epoch in range(8)]
    for first in (0, 4):
        assert sorted(torch.cat(slots[first : first + 4]).tolist()) == list(range(103))
    assert not torch.equal(torch.cat(slots[:4]), torch.cat(slots[4:]))
    dm = data(Split("class", groups=[[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]), protocol="joint")
    served = sum(b.size for b in (dm.train_batches(t, 0) for t in range(3)))
    assert served == len(dm.joint_data()[1]) == len(dm.loaded().y_train)
    assert dm.output_mask(0, 0, training=True) is None  # a joint run trains every class at once
    assert dm.output_mask(0, 0) is not None  # its evaluation: the classes seen by then


def test_independent_draws_a_fresh_seeded_network() -> None:
    net = MLP(8, [4], 2)
    before = [p.clone() for p in net.parameters()]
    reinitialise(net, seed=1, task=2)
    first = [p.clone() for p in net.parameters()]
    reinitialise(net, seed=1, task=2)
    assert all(torch.equal(a, b) for a, b in zip(first, net.parameters()))
    assert not any(torch.equal(a, b) for a, b in zip(before, first))
    state = torch.random.get_rng_state()
    reinitialise(net, seed=1, task=3)
    assert torch.equal(state, torch.random.get_rng_state())
