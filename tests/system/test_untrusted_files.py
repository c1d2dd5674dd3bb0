"""Planted files never run code (issue 21, class 1): a task checkpoint or ``last.ckpt`` whose
unpickling would write a marker file, met by ``fit --ckpt_path last``, ``validate`` and an
``experiment`` resume (its fits are subprocesses), and by Lightning's own resume reading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cli
from cl_attractors.commands import experiment
from cl_attractors.grid.spec import load_spec
from tests.helpers import tiny_args, write_spec
from tests.unit.test_safe_loading import plant


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("fit") / "run"
    assert cli.main(tiny_args(run, num_tasks=2)) == 0
    return run


def _copy(finished: Path, tmp_path: Path) -> Path:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run, symlinks=True, ignore=shutil.ignore_patterns(".fit.lock"))
    return run


def test_fit_resume_skips_a_planted_newest_task_checkpoint(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run, marker = _copy(finished, tmp_path), tmp_path / "marker"
    (run / "checkpoints" / "last.ckpt").unlink()
    plant(run / "checkpoints" / "task_07.ckpt", marker)
    code = cli.main(tiny_args(run, "--ckpt_path", "last", num_tasks=2))
    assert not marker.exists()
    assert code == 0, capsys.readouterr().err


def test_fit_refuses_a_planted_last_checkpoint_in_one_line(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run, marker = _copy(finished, tmp_path), tmp_path / "marker"
    last = run / "checkpoints" / "last.ckpt"
    last.unlink()
    plant(last, marker)
    assert cli.main(tiny_args(run, "--ckpt_path", "last", num_tasks=2)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert not marker.exists()
    assert len(err) == 1 and "is not a readable checkpoint" in err[0] and "Traceback" not in err[0]


def test_validate_never_runs_a_planted_checkpoint(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run, marker = _copy(finished, tmp_path), tmp_path / "marker"
    plant(run / "checkpoints" / "task_07.ckpt", marker)
    plant(run / "planted.ckpt", marker)
    config = str(run / "config.yaml")
    assert cli.main(["validate", "--config", config, "--ckpt_path", "last", "--run_dir", str(run)]) == 0
    assert (run / "validation" / "last.test.json").is_file()  # beside the run, never in the cwd
    assert cli.main(["validate", "--config", config, "--ckpt_path", str(run / "planted.ckpt")]) == 2
    assert not marker.exists()


def test_lightning_resume_reads_weights_only_even_if_the_environment_asks_otherwise(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lightning reads the chosen checkpoint a second time (its own resume): through
    AtomicCheckpointIO, weights-only, whatever TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD says."""
    from cl_attractors.errors import ConfigError
    from cl_attractors.train.guard import AtomicCheckpointIO

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "marker"
    with pytest.raises(ConfigError):
        AtomicCheckpointIO().load_checkpoint(plant(tmp_path / "x.ckpt", marker), weights_only=False)
    assert not marker.exists()
    assert "state_dict" in AtomicCheckpointIO().load_checkpoint(finished / "checkpoints" / "last.ckpt")


def test_experiment_resume_never_runs_a_planted_checkpoint(tmp_path: Path) -> None:
    path = write_spec(tmp_path, seeds=[0], variants={"fast": ["--model.optimizer.init_args.lr", "0.01"]})
    experiment.main(["--config", str(path), "--workers", "1"])
    run = load_spec(path).runs([])[0].run_dir
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "complete": False}))
    marker = tmp_path / "marker"
    plant(run / "checkpoints" / "task_07.ckpt", marker)
    experiment.main(["--config", str(path), "--workers", "1"])
    assert not marker.exists()
    assert json.loads((run / "metrics.json").read_text())["complete"] is True
