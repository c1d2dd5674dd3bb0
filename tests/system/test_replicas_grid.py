"""``experiment --replicas``: a grid's runs trained as replica groups, then reported like any grid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cli
from cl_attractors.commands import experiment
from cl_attractors.errors import ConfigError
from cl_attractors.grid import runner
from cl_attractors.grid.replicas import ReplicaRunner, group_key, pack
from cl_attractors.grid.runner import Outcome
from cl_attractors.grid.spec import Run, load_spec
from tests.helpers import TINY, write_spec


def test_a_grid_runs_as_replica_groups_and_a_rerun_skips_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    monkeypatch.setattr(runner.GridRunner, "run", lambda *a, **k: pytest.fail("the pool ran"))
    path = write_spec(tmp_path, overrides=TINY, seeds=[0, 1, 2], claims=[])
    assert cli.main(["experiment", "--config", str(path), "--replicas", "2", "--workers", "1"]) == 0
    runs = load_spec(path).runs()
    assert len(runs) == 6 and all(r.complete for r in runs)
    groups = sorted((tmp_path / "runs" / "groups").glob("*.json"))
    members = [json.loads(g.read_text()) for g in groups]
    assert sorted(len(m) for m in members) == [1, 1, 2, 2]  # 3 seeds of each variant, 2 per group
    for m in members:  # never two variants in one group
        assert len({tuple(a[a.index("--model.optimizer.init_args.lr") + 1] for a in m)}) == 1
    for run in runs:
        assert {p.name for p in (run.run_dir / "checkpoints").iterdir()} >= {"last.ckpt", "task_01.ckpt"}
        assert (run.run_dir / "config.yaml").is_file() and (run.run_dir / "accuracy_matrix.csv").is_file()
        log = (run.run_dir / "run.log").read_text().splitlines()  # the group's command, then a line per task
        assert log[0].startswith("python cli.py replicas --runs") and [line[:8] for line in log[2:]] == [
            "task 1/2",
            "task 2/2",
        ]
    capsys.readouterr()
    assert cli.main(["experiment", "--config", str(path), "--replicas", "2", "--workers", "1"]) == 0
    assert "6 already complete, 0 to run" in capsys.readouterr().err


def test_groups_are_one_variant_and_one_resume_point(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, overrides=TINY, seeds=[0, 1, 2, 3]))
    runs = spec.runs()
    (runs[1].run_dir / "checkpoints").mkdir(parents=True)
    (runs[1].run_dir / "checkpoints" / "task_00.ckpt").write_bytes(b"")
    groups = pack(runs, 3)
    assert [[(r.variant, r.seed) for r in g] for g in groups] == [
        [("fast", 0), ("fast", 2), ("fast", 3)],
        [("fast", 1)],
        [("slow", 0), ("slow", 1), ("slow", 2)],
        [("slow", 3)],
    ]
    assert group_key(runs[0]) == group_key(runs[2]) != group_key(runs[4])


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", ""])
def test_bad_replicas_is_one_line_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setattr(ReplicaRunner, "run", lambda *a, **k: pytest.fail("a group started"))
    path = write_spec(tmp_path, overrides=TINY)
    assert cli.main(["experiment", "--config", str(path), "--replicas", value]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --replicas {value} is not allowed; use a positive integer or auto"


def test_a_group_too_big_for_the_memory_is_refused(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, overrides=TINY))
    todo = spec.runs()
    with pytest.raises(ConfigError, match=r"^--replicas 5 is not allowed; a group of 5 does not fit"):
        experiment.make_runner(spec, todo, 1, None, None, 5, lambda args: 4)
    assert experiment.make_runner(spec, todo, 1, None, None, "auto", lambda args: 4).replicas == 4  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="--replicas with --scheduler is not allowed"):
        experiment.make_runner(spec, todo, None, None, "tcp://h:8786", 2, None)


def test_a_split_family_runs_as_replica_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each replica serves its own family's tasks (tasks of different sizes, class-incremental masks,
    a joint reference run): the grid finishes as groups (their equality with single runs:
    tests/contracts/test_replicas.py)."""
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    monkeypatch.setattr(runner.GridRunner, "run", lambda *a, **k: pytest.fail("the pool ran"))
    split = ["--data.family", "cl_attractors.train.families.Split", "--data.family.init_args.groups"]
    split += ["[[0, 1], [2, 3]]", "--trainer.reload_dataloaders_every_n_epochs", "1"]
    variants = {"class": [], "joint": ["--data.protocol", "joint"]}
    path = write_spec(tmp_path, overrides=[*TINY, *split], variants=variants, claims=[])
    assert cli.main(["experiment", "--config", str(path), "--replicas", "2", "--workers", "1"]) == 0
    runs = load_spec(path).runs()
    assert len(runs) == 4 and all(r.complete for r in runs)
    assert len(list((tmp_path / "runs" / "groups").glob("*.json"))) == 2


def test_variants_without_a_replica_form_train_alone_beside_the_groups(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mixed grid (LwF has no replica form, a CNN cannot be stacked) is one command: those
    variants' runs are fits of their own in the same slots, said before any run."""
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    variants = {
        "plain": [],
        "lwf": ["--model.method", "configs/method/lwf.yaml"],
        "cnn": ["--config", "configs/model/cnn.yaml", "--model.net.init_args.channels", "[2]"],
    }
    path = write_spec(tmp_path, overrides=TINY, variants=variants, claims=[])
    assert cli.main(["experiment", "--config", str(path), "--replicas", "2", "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert "one fit per process for the variants without a replica form: cnn, lwf" in err
    runs = load_spec(path).runs()
    assert len(runs) == 6 and all(r.complete for r in runs)
    groups = [json.loads(g.read_text()) for g in (tmp_path / "runs" / "groups").glob("*.json")]
    assert len(groups) == 1 and len(groups[0]) == 2  # the two seeds of "plain"
    for run in runs:
        first = (run.run_dir / "run.log").read_text().splitlines()[0]
        command = "python cli.py replicas" if run.variant == "plain" else "python cli.py fit"
        assert first.startswith(command), (run.variant, first)


def test_groups_and_single_fits_start_seed_by_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupted grid leaves whole seeds: the single fits of a seed are not left for the end."""
    started: list[list[tuple[str, int]]] = []

    def record(self: ReplicaRunner, group: list[Run]) -> list[Outcome]:
        started.append([(r.variant, r.seed) for r in group])
        return [Outcome(r, 0) for r in group]

    monkeypatch.setattr(ReplicaRunner, "_execute", record)
    runs = load_spec(write_spec(tmp_path, overrides=TINY, seeds=[0, 1, 2])).runs()
    ReplicaRunner([None], 2, tmp_path / "groups", {"slow"}).run(sorted(runs, key=lambda r: r.seed))
    assert started == [
        [("fast", 0), ("fast", 1)],
        [("slow", 0)],
        [("slow", 1)],
        [("fast", 2)],
        [("slow", 2)],
    ]


def test_group_size_leaves_out_the_variants_without_a_replica_form(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, overrides=TINY))
    todo = spec.runs()
    sizes = {"fast": 0, "slow": 6}
    sizer = lambda args: sizes["fast" if "0.01" in args else "slow"]  # noqa: E731
    assert experiment.group_size("auto", todo, sizer) == (6, {"fast"})
    assert experiment.group_size(3, todo, lambda args: 0) == (3, {"fast", "slow"})
