"""``cli.py merge``: a grid's finished runs brought home from another machine's out_dir."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import cli
from cl_attractors.commands.merge import check_copy
from cl_attractors.grid.spec import ExperimentSpec, Run, load_spec
from cl_attractors.io import matrix_to_csv
from cl_attractors.report.provenance import load_invocations
from tests.helpers import ROOT, metrics_json, write_spec

FINISHED_AT = 1_790_000_000.0  # the other machine's finish time, kept by the copy


def _there(spec: ExperimentSpec, root: Path) -> list[Run]:
    """The grid's runs as the other machine made them, under its own out_dir ``root``."""
    return dataclasses.replace(spec, out_dir=root).runs([])


def _finish(run: Run, acc: float) -> None:
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / "experiment_args.json").write_text(json.dumps(list(run.args)))
    (run.run_dir / "metrics.json").write_text(
        json.dumps(metrics_json([0.9, acc], [None, acc], [0.9, 0.9], -0.1))
    )
    matrix = torch.tensor([[0.9, 0.9], [0.1, 0.9]])
    (run.run_dir / "accuracy_matrix.csv").write_text(matrix_to_csv(matrix))
    (run.run_dir / "config.yaml").write_text("seed: 0\n")
    (run.run_dir / ".lock").write_text("")
    os.utime(run.run_dir / "metrics.json", (FINISHED_AT, FINISHED_AT))


def _acc(run_dir: Path) -> float:
    return json.loads((run_dir / "metrics.json").read_text())["avg_acc_seen"][-1]


def test_merge_copies_the_finished_runs_missing_here_with_their_times_and_records(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = write_spec(tmp_path, claims=[])
    spec = load_spec(config)
    there = tmp_path / "elsewhere" / "runs"
    for run in _there(spec, there):
        _finish(run, 0.7)
    record = {"id": "gpu-1", "command": "python cli.py experiment ...", "started_s": FINISHED_AT - 60}
    (there / "tiny.invocations.json").write_text(json.dumps([record]))
    here = {(r.variant, r.seed): r for r in spec.runs([])}
    _finish(here["fast", 0], 0.8)  # finished here already: kept as it is
    unfinished = here["slow", 1].run_dir
    (unfinished / "checkpoints").mkdir(parents=True)
    (unfinished / "metrics.json").write_text(json.dumps({"complete": False}))

    assert cli.main(["merge", "--config", str(config), "--from", str(there)]) == 0
    assert "tiny: 3 finished runs merged from" in capsys.readouterr().out
    assert _acc(here["fast", 0].run_dir) == 0.8 and _acc(unfinished) == 0.7
    assert not (unfinished / "checkpoints").exists() and not (unfinished / ".lock").exists()
    merged = here["fast", 1].run_dir
    assert (merged / "metrics.json").stat().st_mtime == FINISHED_AT  # counted in gpu-1's window
    assert json.loads((merged / "experiment_args.json").read_text()) == list(here["fast", 1].args)
    assert [r["id"] for r in load_invocations(spec)] == ["gpu-1"]

    assert cli.main(["merge", "--config", str(config), "--from", str(there)]) == 0  # again: nothing new
    out = capsys.readouterr().out
    assert "0 finished runs merged" in out and "(4 already finished here" in out and "; 0 invocation" in out
    assert len(load_invocations(spec)) == 1


def test_merge_refuses_runs_of_other_fit_arguments_and_a_missing_source(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = write_spec(tmp_path, claims=[])
    spec = load_spec(config)
    there = tmp_path / "elsewhere"
    assert cli.main(["merge", "--config", str(config), "--from", str(there)]) == 2
    assert capsys.readouterr().err.strip().endswith("is not a directory; give the other machine's out_dir")
    spec.out_dir.mkdir(parents=True)
    assert cli.main(["merge", "--config", str(config), "--from", str(spec.out_dir)]) == 2
    assert "is this grid's own out_dir" in capsys.readouterr().err
    runs = _there(spec, there)
    for run in runs:
        _finish(run, 0.7)
    other = [*runs[-1].args, "--data.seed", "5"]
    (runs[-1].run_dir / "experiment_args.json").write_text(json.dumps(other))
    assert cli.main(["merge", "--config", str(config), "--from", str(there)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "was made with other fit arguments" in err
    assert not list(spec.out_dir.rglob("metrics.json"))  # checked before anything was copied


# ---- the copy is not trusted (issue 21, class 2) ------------------------------------------------
def _grid(tmp_path: Path) -> tuple[Path, ExperimentSpec, Path, list[Run]]:
    config = write_spec(
        tmp_path, claims=[], seeds=[0], variants={"fast": ["--model.optimizer.init_args.lr", "0.01"]}
    )
    spec = load_spec(config)
    there = tmp_path / "elsewhere" / "runs"
    runs = _there(spec, there)
    for run in runs:
        _finish(run, 0.7)
    return config, spec, there, runs


def _unfinished_here(spec: ExperimentSpec) -> Path:
    here = spec.runs([])[0].run_dir
    (here / "checkpoints").mkdir(parents=True)
    (here / "checkpoints" / "task_00.ckpt").write_bytes(b"local work")
    (here / "metrics.json").write_text(json.dumps({"complete": False, "tasks_done": 1}))
    return here


@pytest.mark.parametrize("kind", ["outside_file", "loop", "dangling", "outside_dir", "fifo"])
def test_merge_refuses_links_out_of_the_run_and_special_files_before_copying(
    tmp_path: Path, capsys: pytest.CaptureFixture, kind: str
) -> None:
    config, spec, there, runs = _grid(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("private key")
    bad = runs[0].run_dir / "checkpoints" / "last.ckpt"
    bad.parent.mkdir()
    if kind == "outside_file":
        bad.symlink_to(secret)
    elif kind == "loop":
        bad.symlink_to(bad.parent)  # a folder link: a loop when followed
    elif kind == "dangling":
        bad.symlink_to(bad.parent / "missing.ckpt")
    elif kind == "outside_dir":
        bad.symlink_to(tmp_path)
    else:
        os.mkfifo(bad)
    here = _unfinished_here(spec)
    assert cli.main(["merge", "--config", str(config), "--from", str(there)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(bad) in err
    assert (here / "checkpoints" / "task_00.ckpt").read_bytes() == b"local work"  # untouched
    assert not any(
        "private key" in p.read_text(errors="replace") for p in spec.out_dir.rglob("*") if p.is_file()
    )
    assert [p.name for p in here.parent.iterdir()] == [here.name]  # no staging left


def test_merge_copies_a_link_inside_the_run_as_a_link(tmp_path: Path) -> None:
    config, spec, there, runs = _grid(tmp_path)
    ckpts = runs[0].run_dir / "checkpoints"
    ckpts.mkdir()
    (ckpts / "task_01.ckpt").write_bytes(b"weights")
    (ckpts / "last.ckpt").symlink_to("task_01.ckpt")
    assert cli.main(["merge", "--config", str(config), "--from", str(there)]) == 0
    last = spec.runs([])[0].run_dir / "checkpoints" / "last.ckpt"
    assert last.is_symlink() and os.readlink(last) == "task_01.ckpt" and last.read_bytes() == b"weights"


@pytest.mark.parametrize("torn", ["accuracy_matrix.csv", "config.yaml", "metrics.json"])
def test_merge_verifies_the_copy_and_keeps_local_work_when_it_is_not_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture, torn: str
) -> None:
    config, spec, there, runs = _grid(tmp_path)
    path = runs[0].run_dir / torn
    if torn == "metrics.json":
        path.write_text(path.read_text().replace('"complete": true', '"complete": true, "num_tasks": 3'))
    else:
        path.unlink()
    here = _unfinished_here(spec)
    code = cli.main(["merge", "--config", str(config), "--from", str(there)])
    assert code == 2 and "is not a whole finished run" in capsys.readouterr().err
    assert (here / "checkpoints" / "task_00.ckpt").read_bytes() == b"local work"
    assert json.loads((here / "metrics.json").read_text())["complete"] is False


@pytest.mark.parametrize("lock", [".fit.lock", ".lock"])
def test_merge_never_replaces_a_run_a_fit_or_grid_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture, lock: str
) -> None:
    config, spec, there, _ = _grid(tmp_path)
    here = _unfinished_here(spec)
    holder = start_holder(here / lock)
    try:
        assert cli.main(["merge", "--config", str(config), "--from", str(there)]) == 0
        assert "1 running here" in capsys.readouterr().out
        assert (here / "checkpoints" / "task_00.ckpt").read_bytes() == b"local work"
    finally:
        holder.kill()
        holder.wait()


def start_holder(path: Path) -> subprocess.Popen:
    """A process holding ``path``'s flock, as a fit (RunDirLock) or a grid runner does."""
    code = (
        "import fcntl, sys, time\n"
        f"h = open({str(path)!r}, 'a')\n"
        "fcntl.flock(h, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_merge_killed_at_any_moment_leaves_the_local_run_or_the_merged_run_whole(tmp_path: Path) -> None:
    """Kills of a merge process (started here) at spread moments while it copies a large run."""
    config, spec, there, runs = _grid(tmp_path)
    (runs[0].run_dir / "big.bin").write_bytes(os.urandom(64 * 2**20))
    here = _unfinished_here(spec)
    outcomes = set()
    for delay in [0.3, 0.6, 0.9, 1.2, 1.5, 1.8, 2.4, 3.0]:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), "merge", "--config", str(config), "--from", str(there)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.kill()
        proc.wait()
        if json.loads((here / "metrics.json").read_text()).get("complete"):
            check_copy(here, here)  # merged: whole
            assert (here / "big.bin").stat().st_size == 64 * 2**20
            outcomes.add("merged")
            break
        assert (here / "checkpoints" / "task_00.ckpt").read_bytes() == b"local work"  # untouched
        outcomes.add("local")
    assert cli.main(["merge", "--config", str(config), "--from", str(there)]) == 0
    check_copy(here, here)
    assert not [p for p in here.parent.iterdir() if p.name != here.name]  # no staging left behind
    assert "local" in outcomes  # at least one kill landed mid-copy
