"""The pure parts of the grid backends: GPU slots, scheduler addresses, worker probe verdicts."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from cl_attractors.commands import experiment as command
from cl_attractors.errors import ConfigError
from cl_attractors.grid import cluster
from cl_attractors.grid.runner import gpu_slots, worker_env


@pytest.mark.parametrize(
    ("gpus", "workers", "per_gpu", "slots"),
    [
        (None, 3, 1, [None, None, None]),
        ([], 2, 4, [None, None]),
        ([0, 1], 0, 1, [0, 1]),
        ([0, 1], 0, 3, [0, 1, 0, 1, 0, 1]),  # K per GPU, dealt in turn: few runs still spread
        ([5], 0, 4, [5, 5, 5, 5]),
        ([0, 1, 2], 4, 1, [0, 1, 2, 0]),  # --workers N on GPUs: round robin
    ],
)
def test_gpu_slots(gpus: list[int] | None, workers: int, per_gpu: int, slots: list[int | None]) -> None:
    assert gpu_slots(gpus, workers, per_gpu) == slots


def test_a_slot_sees_only_its_gpu_and_one_thread() -> None:
    env = worker_env(3)
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and env["OMP_NUM_THREADS"] == "1"
    assert worker_env(None).get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")


def test_local_slots_from_the_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(command, "default_workers", lambda: (2, [0, 1]))
    assert command.local_slots(None, None) == [0, 1]
    assert command.local_slots(None, 2) == [0, 1, 0, 1]
    assert command.local_slots(3, None) == [0, 1, 0]
    for workers, per_gpu, message in [
        (None, 0, "--workers-per-gpu 0 is not allowed"),
        (2, 2, "--workers with --workers-per-gpu is not allowed"),
        (0, None, "--workers 0 is not allowed"),
    ]:
        with pytest.raises(ConfigError, match=message):
            command.local_slots(workers, per_gpu)
    monkeypatch.setattr(command, "default_workers", lambda: (2, None))
    assert command.local_slots(None, None) == [None, None]
    with pytest.raises(ConfigError, match="no GPU is visible; use --workers N"):
        command.local_slots(None, 2)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        ("10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        ("tls://node:8786", "tls://node:8786"),
    ],
)
def test_good_addresses(address: str, expected: str) -> None:
    assert cluster.check_address(address) == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://node:8786", "scheme 'http' is not allowed"),
        ("slurm://node:8786", "scheme 'slurm' is not allowed"),
        ("tcp://node", "has no port"),
        ("tcp://node:port", "has no port"),
    ],
)
def test_bad_addresses(address: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cluster.check_address(address)


def _result(tmp_path: Path, write: bool = True, **changes: object) -> dict[str, object]:
    result: dict[str, object] = {"lacking": [], "missing": [], "file": ".probe-x-host-1", "error": ""}
    if write:
        (tmp_path / ".probe-x-host-1").write_text("x")
    result.update(changes)
    return result


def test_worker_probe_verdicts(tmp_path: Path) -> None:
    w = "tcp://10.0.0.7:4000"
    assert cluster.worker_problem(w, _result(tmp_path), tmp_path) is None
    cases = [
        (ModuleNotFoundError("No module named 'cl_attractors'"), "cannot import cl_attractors"),
        (RuntimeError("boom"), "failed the start-up probe (boom)"),
        (_result(tmp_path, lacking=["lightning"]), "cannot import lightning; install requirements.txt"),
        (_result(tmp_path, missing=["/repo/configs/x.yaml"]), "cannot see /repo/configs/x.yaml"),
        (_result(tmp_path, error="Permission denied"), "cannot write out_dir"),
        (_result(tmp_path, write=False, file=".probe-y"), "is not shared"),  # written on its own disk
    ]
    for result, message in cases:
        problem = cluster.worker_problem(w, result, tmp_path)
        assert problem is not None and message in problem and w in problem and "\n" not in problem


def test_the_probe_writes_under_out_dir(tmp_path: Path) -> None:
    result = cluster.probe([str(tmp_path), str(tmp_path / "nope.yaml")], str(tmp_path / "runs"), ".probe-t")
    assert result["missing"] == [str(tmp_path / "nope.yaml")] and result["lacking"] == []
    assert (tmp_path / "runs" / str(result["file"])).read_text() == ".probe-t"
    assert "cannot see" in str(cluster.worker_problem("w", result, tmp_path / "runs"))


def test_ctrl_c_is_deferred_to_the_runner_and_the_handler_restored() -> None:
    before = signal.getsignal(signal.SIGINT)
    with cluster.deferred_interrupt() as interrupted:
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt here, wherever this thread is
        assert interrupted.wait(5)
    assert signal.getsignal(signal.SIGINT) is before
