"""The experiment runner: CI maths, aggregation, claims, bad input, and a tiny parallel grid."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

import cli
from cl_attractors.commands import experiment
from cl_attractors.grid import runner
from cl_attractors.grid.checks import validate
from cl_attractors.grid.spec import ConfigError, load_spec
from cl_attractors.train.cli import make_cli
from tests.helpers import metrics_json, write_spec

# ---- the command ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "argv", "message"),
    [
        ({"variants": {}}, [], "grid is empty"),
        ({}, ["--variants", "medium"], "not a variant"),
        (
            {"variants": {"ewc": ["--model.method", "configs/method/nope.yaml"]}},
            [],
            "nope.yaml does not exist",
        ),
        ({"seeds": [1, 1]}, [], "seeds must be unique"),
        ({"kind": "bars"}, [], "kind='bars' is not allowed"),
    ],
)
def test_bad_input_is_one_line_before_any_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    changes: dict,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.setattr(runner.GridRunner, "run", lambda *a, **k: pytest.fail("a run started"))
    path = write_spec(tmp_path, **changes)
    assert cli.main(["experiment", "--config", str(path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_runs_go_seed_by_seed_so_an_interrupted_grid_leaves_whole_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[tuple[str, int]] = []

    def record(self: runner.GridRunner, runs: list, desc: str = "") -> list:
        order.extend((r.variant, r.seed) for r in runs)
        return []

    monkeypatch.setattr(runner.GridRunner, "run", record)
    spec = load_spec(write_spec(tmp_path, seeds=[3, 1]))
    experiment.run_experiment(spec, [], workers=1)
    assert order == [("fast", 3), ("slow", 3), ("fast", 1), ("slow", 1)]


def test_unwritable_out_dir(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    spec = load_spec(write_spec(tmp_path, out_dir=str(tmp_path / "file" / "runs")))
    with pytest.raises(ConfigError, match="out_dir=.* is not writable"):
        validate(spec)


def _mtimes(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in root.glob("*/seed_*/metrics.json")}


class _Killed(Exception):
    pass


class _KillAtSecondTask(Callback):
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.current_epoch == 1:
            raise _Killed


def _kill_after_first_task(run_dir: Path) -> None:
    """Redo ``run_dir``'s fit in-process and stop it after task 0's checkpoint, as a kill would."""
    args = json.loads((run_dir / experiment.ARGS_FILE).read_text())
    shutil.rmtree(run_dir)
    cli_ = make_cli(args[1:], run=False)
    cli_.trainer.callbacks.append(_KillAtSecondTask())
    with pytest.raises(_Killed):
        cli_.trainer.fit(cli_.model, datamodule=cli_.datamodule)


def test_grid_runs_resumes_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    path = write_spec(tmp_path)
    runs, results = tmp_path / "runs", tmp_path / "results"
    experiment.main(["--config", str(path), "--workers", "2"])
    dirs = sorted(p.parent.relative_to(runs).as_posix() for p in runs.glob("*/seed_*/metrics.json"))
    assert dirs == ["fast/seed_0", "fast/seed_1", "slow/seed_0", "slow/seed_1"]
    for d in dirs:
        assert json.loads((runs / d / "metrics.json").read_text())["complete"] is True
        assert (runs / d / "checkpoints" / "last.ckpt").is_file() and list((runs / d).glob("events.*"))
        assert [c.name for c in (runs / d / "checkpoints").glob("task_*")] == ["task_01.ckpt"]  # final only
        assert "--data.seed" in (runs / d / "run.log").read_text().splitlines()[0]
    perms = [torch.load(runs / f"fast/seed_{s}/permutations.pt") for s in (0, 1)]
    assert not torch.equal(perms[0], perms[1])  # new permutations per seed
    assert torch.equal(perms[0], torch.load(runs / "slow/seed_0/permutations.pt"))
    for name in ("aggregate.json", "curves.csv", "final.csv", "table.md", "results.md", "tiny.png"):
        assert (results / name).stat().st_size > 0
    assert (runs / "aggregate.json").is_file()
    agg = json.loads((results / "aggregate.json").read_text())
    assert agg["variants"]["fast"]["final"]["final_avg_acc"]["n"] == 2
    assert "fast beats slow" in (results / "results.md").read_text()

    before = _mtimes(runs)
    experiment.main(["--config", str(path), "--workers", "2"])  # re-invocation: nothing re-runs
    assert _mtimes(runs) == before
    assert "0 to run" in capsys.readouterr().err

    killed = runs / "slow" / "seed_1"  # a run killed after task 0
    uninterrupted = json.loads((killed / "metrics.json").read_text())
    _kill_after_first_task(killed)
    assert json.loads((killed / "metrics.json").read_text())["tasks_done"] == 1
    before = _mtimes(runs)
    experiment.main(["--config", str(path), "--workers", "2"])
    after = _mtimes(runs)
    assert [k for k in after if after[k] != before[k]] == [str(killed / "metrics.json")]
    assert "--ckpt_path last" in (killed / "run.log").read_text().splitlines()[0]
    assert json.loads((killed / "metrics.json").read_text()) == uninterrupted
    assert [c.name for c in (killed / "checkpoints").glob("task_*")] == ["task_01.ckpt"]

    # report: from saved results only, training made impossible
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("report started a process"))
    monkeypatch.setattr("cl_attractors.train.cli.make_cli", lambda *a, **k: pytest.fail("report trained"))
    for f in results.iterdir():
        f.unlink()
    experiment.report_main(["--config", str(path)])
    assert {p.name for p in results.iterdir()} >= {"aggregate.json", "curves.csv", "results.md", "tiny.png"}
    again = json.loads((results / "aggregate.json").read_text())
    recorded = again.pop("provenance")
    assert again == {k: v for k, v in agg.items() if k != "provenance"}
    assert [r["command"] for r in recorded["invocations"]] == [
        f"python cli.py experiment --config {path} --workers 2"
    ] * 3
    assert [r["runs_made"] for r in recorded["invocations"]] == [3, 0, 1] and recorded["outside"] == 0
    assert all(r["wall_s"] >= 0 and r["seeds"] == [0, 1] for r in recorded["invocations"])
    assert f"python cli.py experiment --config {path} --workers 2" in (results / "results.md").read_text()

    weights = write_spec(
        tmp_path,
        name="tinyw",
        kind="weights",
        results_dir=str(tmp_path / "w"),
        yscale="log",
        claims=[{"text": "one mode", "type": "modes", "variant": "fast", "paper": [0.0], "tol": 0.5}],
    )
    experiment.report_main(["--config", str(weights)])
    w = tmp_path / "w"
    assert (w / "tinyw.png").is_file() and (w / "tinyw_hist.csv").is_file()
    assert set(json.loads((w / "tinyw_modes.json").read_text())["modes"]) == {"fast", "slow"}
    text = (w / "results.md").read_text()
    assert "one mode" in text and "Weight shape beside retention" in text and "seeds 0, 1" in text


def test_failed_run_is_reported_and_others_finish(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_spec(
        tmp_path, variants={"broken": ["--model.net.hidden_sizes", "[0]"]}, seeds=[0], claims=[]
    )
    with pytest.raises(SystemExit) as exit_info:
        experiment.main(["--config", str(path), "--workers", "1"])
    assert exit_info.value.code == 1
    log = (tmp_path / "runs" / "broken" / "seed_0" / "run.log").read_text()
    assert "hidden_sizes[0]=0 is not allowed" in log
    err = capsys.readouterr().err
    assert "FAILED" in err and "1 failed" in err
    assert (tmp_path / "results" / "results.md").is_file()


def test_fig1b_plasticity_is_a_pure_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("fig1b started a process"))
    experiment.main(["--config", "configs/grid/fig1b.yaml", "--results_dir", str(tmp_path)])
    data = json.loads((tmp_path / "fig1b.json").read_text())
    assert data["argmin_w"] == pytest.approx(data["params"]["a1"], abs=1e-3) and data["f_min"] < 1e-3
    assert (tmp_path / "fig1b.png").stat().st_size > 0 and (tmp_path / "fig1b.csv").is_file()
    assert "**holds**" in (tmp_path / "results.md").read_text()


def test_shared_sweep_report_from_saved_metrics(tmp_path: Path) -> None:
    """Fig. 4-style sweep rendered from metrics.json files alone (sticky helps until 0.5 here)."""
    path = write_spec(
        tmp_path,
        name="sweep",
        kind="shared",
        seeds=[0, 1, 2],
        variants={"control": [], "sticky": ["--model.optimizer.init_args.lr", "0.01"]},
        sweep={"flag": "--data.family.shared_fraction", "values": [0.0, 0.5]},
        claims=[
            {
                "text": "until 0.5",
                "type": "benefit_until",
                "better": "sticky",
                "worse": "control",
                "paper": 0.5,
            }
        ],
    )
    for x, gain in ((0.0, 0.1), (0.5, -0.02)):
        for s in range(3):
            for group, acc in (("control", 0.6 + 0.01 * s), ("sticky", 0.6 + gain + 0.012 * s)):
                run = tmp_path / "runs" / f"{group}_shared_fraction{x}" / f"seed_{s}"
                run.mkdir(parents=True)
                (run / "metrics.json").write_text(
                    json.dumps(metrics_json([0.9, acc], [None, acc], [0.9, 0.9], -0.1))
                )
    experiment.report_main(["--config", str(path)])
    results = tmp_path / "results"
    agg = json.loads((results / "aggregate.json").read_text())
    assert agg["variants"]["sticky_shared_fraction0.0"]["x"] == 0.0
    assert agg["variants"]["sticky_shared_fraction0.0"]["final"]["final_avg_acc"]["mean"] == pytest.approx(
        0.712
    )
    assert (results / "sweep.png").stat().st_size > 0
    assert "benefit first lost at 0.5" in (results / "results.md").read_text()
    assert "**holds**" in (results / "results.md").read_text()


def test_run_held_by_another_process_is_waited_for_not_started_twice_nor_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = write_spec(tmp_path, seeds=[0], variants={"fast": []}, claims=[])
    run_dir = tmp_path / "runs" / "fast" / "seed_0"
    run_dir.mkdir(parents=True)
    held = open(run_dir / ".lock", "w", encoding="utf-8")  # the other process (released by the timer)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def other_process_finishes() -> None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics_json([0.9], [None], [0.9], 0.0)))
        held.close()

    timer = threading.Timer(2.0, other_process_finishes)
    timer.start()
    try:
        experiment.main(["--config", str(path)])  # no SystemExit: nothing failed
    finally:
        timer.join()
    assert "1 runs finished, 0 failed" in capsys.readouterr().err
    assert not (run_dir / "run.log").exists()


def test_a_grid_keeps_every_task_checkpoint_when_told(tmp_path: Path) -> None:
    path = write_spec(tmp_path, seeds=[0], variants={"fast": []}, claims=[])
    experiment.main(["--config", str(path), "--workers", "1", "--keep_task_checkpoints"])
    ckpts = tmp_path / "runs" / "fast" / "seed_0" / "checkpoints"
    assert sorted(c.name for c in ckpts.glob("task_*")) == ["task_00.ckpt", "task_01.ckpt"]
    experiment.main(["--config", str(path), "--workers", "1"])  # without it: finished runs pruned
    assert [c.name for c in ckpts.glob("task_*")] == ["task_01.ckpt"]
    assert (ckpts / "last.ckpt").resolve() == ckpts / "task_01.ckpt"
