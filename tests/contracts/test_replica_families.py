"""The replica engine on every task family and protocol: a replica's accuracy matrix is its single
run's (float64, the tiny synthetic protocol of test_replicas.py), and a group refuses what its
runs' fits refuse."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cl_attractors.errors import ConfigError
from cl_attractors.replicas.group import run_group
from cl_attractors.train.cli import make_cli
from tests.contracts.test_replicas import args, matrix
from tests.helpers import ROOT, SEQUENCE

SPLIT = ("--data.family", "cl_attractors.train.families.Split", "--data.family.init_args.groups")
TASK_HEADS = (
    *SPLIT,
    "[[0, 1], [2, 3], [4, 5]]",
    "--data.family.init_args.scenario",
    "task",
    "--model.net.init_args.heads",
    "3",
    "--model.net.init_args.num_classes",
    "2",
    "--trainer.reload_dataloaders_every_n_epochs",
    "1",
)
CLASS = (*SPLIT, "[[0, 1], [2, 3], [4, 5]]", "--trainer.reload_dataloaders_every_n_epochs", "1")
FAMILIES = {
    "rotated": ("--data.family", "cl_attractors.train.families.Rotated"),
    "split_class": CLASS,
    "split_class_ewc_true": (  # the true Fisher sums over the classes seen so far
        *CLASS,
        "--model.method",
        str(ROOT / "configs/method/ewc.yaml"),
        "--model.method.init_args.fisher",
        "true",
        "--model.method.init_args.fisher_samples",
        "64",
    ),
    "split_task_heads_ewc": (
        *TASK_HEADS,
        "--model.method",
        str(ROOT / "configs/method/ewc.yaml"),
        "--model.method.init_args.fisher_samples",
        "64",
    ),
    "split_task_heads_mas": (
        *TASK_HEADS,
        "--model.method",
        str(ROOT / "configs/method/mas.yaml"),
        "--model.method.init_args.samples",
        "64",
    ),
    "split_domain_kept_optimizer": (
        *SPLIT,
        "[[0, 1], [2, 3], [4, 5]]",
        "--data.family.init_args.scenario",
        "domain",
        "--model.net.init_args.num_classes",
        "2",
        "--tasks.reset_optimizer",
        "false",
        "--trainer.reload_dataloaders_every_n_epochs",
        "1",
    ),
    "joint_split_class": (*SPLIT, "[[0, 1], [2, 3], [4, 5]]", "--data.protocol", "joint"),
    "independent_rotated": (
        "--data.family",
        "cl_attractors.train.families.Rotated",
        "--data.protocol",
        "independent",
    ),
    "sequence": SEQUENCE,
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_replica_of_any_family_and_protocol_is_its_single_run(tmp_path: Path, family: str) -> None:
    """Each replica serves its own family's tasks (its own seed's draws), masks and protocol."""
    extra = FAMILIES[family]
    vanilla = "configs/method/vanilla.yaml"
    make_cli(args(tmp_path / "alone", 1, vanilla, *extra))
    failures = run_group(
        [args(tmp_path / "r1", 1, vanilla, *extra), args(tmp_path / "r2", 2, vanilla, *extra)]
    )
    assert failures == [None, None]
    alone = matrix(tmp_path / "alone")
    assert (matrix(tmp_path / "r1") - alone).abs().max() <= 1e-9
    assert not torch.equal(matrix(tmp_path / "r2"), alone)


def test_a_group_refuses_what_its_single_runs_refuse(tmp_path: Path) -> None:
    """A read-out the family cannot use, and runs that disagree on the optimizer reset: one line."""
    task = (*SPLIT, "[[0, 1], [2, 3], [4, 5]]", "--data.family.init_args.scenario", "task")
    with pytest.raises(
        ConfigError, match=r"^model\.net has 10 outputs; data\.family\.init_args\.scenario='task'"
    ):
        run_group([args(tmp_path / "a1", 1, "configs/method/vanilla.yaml", *task)] * 1)
    keep = ("--tasks.reset_optimizer", "false")
    with pytest.raises(
        ConfigError, match=r"^tasks\.reset_optimizer differs between the runs of one replica group"
    ):
        run_group([args(tmp_path / "b1", 1), args(tmp_path / "b2", 2, "configs/method/vanilla.yaml", *keep)])
