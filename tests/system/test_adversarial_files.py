"""Adversarial files (issue 21's classes 1, 2 and 5; the set: ``tests/system/adversarial.py``):
a planted file never runs code, ``merge`` never copies a link that leaves the run, and a torn
``metrics.json`` or journal is repaired to what it was."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import cli
from callbacks.task_checkpoint import load_problem
from cl_attractors.errors import ConfigError, one_line
from cl_attractors.io import load_tensors, read_yaml
from cl_attractors.repair import repair_outputs
from cl_attractors.train.guard import AtomicCheckpointIO
from cl_attractors.transfer import check_tree, copy_inside
from cl_attractors.tune.storage import open_storage
from tests.helpers import tiny_args
from tests.system.adversarial import CASES, fresh


# ---- 1. files that would run code ---------------------------------------------------------------
class Payload:
    """Unpickling calls ``func(*args)``; each writes or would write the marker."""

    def __init__(self, func: Any, args: tuple) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return (self.func, self.args)


def payload(kind: str, marker: Path) -> Payload:
    return {
        "write_text": Payload(Path.write_text, (marker, "ran")),
        "os_system": Payload(os.system, (f"touch {marker}",)),
        "exec": Payload(exec, (f"open({str(marker)!r}, 'w').write('ran')",)),
        "eval": Payload(eval, (f"open({str(marker)!r}, 'w').write('ran')",)),
        "subprocess": Payload(subprocess.call, (["touch", str(marker)],)),
        "open": Payload(open, (str(marker), "w")),  # creating the file is enough
    }[kind]


def container(kind: str, evil: Any) -> Any:
    state = {"net.0.weight": torch.zeros(2, 2)}
    return {
        "bare": evil,
        "in_state_dict": {"state_dict": {**state, "x": evil}, "loops": {}, "optimizer_states": []},
        "in_callbacks": {"state_dict": state, "loops": {}, "optimizer_states": [], "callbacks": {"T": evil}},
        "in_list": [torch.ones(1), [evil]],
        "hyper_parameters": {"state_dict": state, "hyper_parameters": {"lr": evil}},
    }[kind]


def save(obj: Any, path: Path, fmt: str) -> Path:
    if fmt == "zip":
        torch.save(obj, path)
    elif fmt == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=int(fmt[-1])))
    return path


PAYLOADS = ["write_text", "os_system", "exec", "eval", "subprocess", "open"]
CONTAINERS = ["bare", "in_state_dict", "in_callbacks", "in_list", "hyper_parameters"]
FORMATS = ["zip", "legacy", "pickle0", "pickle2", "pickle5"]


@CASES
@given(st.sampled_from(PAYLOADS), st.sampled_from(CONTAINERS), st.sampled_from(FORMATS))
def test_1_no_planted_file_runs_code_in_any_reader(tmp_path: Path, kind: str, where: str, fmt: str) -> None:
    case = fresh(tmp_path)
    marker, run = case / "marker", case / "run"
    (run / "checkpoints").mkdir(parents=True)
    path = save(container(where, payload(kind, marker)), run / "checkpoints" / "task_05.ckpt", fmt)
    with pytest.raises(ConfigError):
        load_tensors(path)
    assert load_problem(path) is not None
    with pytest.raises(ConfigError):
        AtomicCheckpointIO().load_checkpoint(path)
    assert repair_outputs(run) is False
    assert not marker.exists()


@pytest.mark.parametrize(
    "text",
    [
        "!!python/object/apply:os.system ['touch {m}']",
        "!!python/object/new:os.system ['touch {m}']",
        "!!python/name:os.system",
        "a: !!python/object/apply:subprocess.call [[touch, {m}]]",
        "!!binary aGVsbG8=\n",
        "- !!python/module:os",
    ],
)
def test_1_yaml_tags_never_run_code(tmp_path: Path, text: str) -> None:
    marker = tmp_path / "marker"
    (tmp_path / "x.yaml").write_text(text.format(m=marker))
    try:
        read_yaml(tmp_path / "x.yaml", "--config")
    except ConfigError as err:
        assert "\n" not in one_line(err)
    assert not marker.exists()


# ---- 2. merge: links, loops, special files ------------------------------------------------------
LINKS = [
    "file_inside",
    "dir_inside",
    "abs_outside",
    "rel_escape",
    "chain_out",
    "loop",
    "self",
    "dangling",
    "fifo",
]


def make_tree(root: Path, outside: Path, kinds: list[str]) -> None:
    (root / "checkpoints").mkdir(parents=True)
    (root / "metrics.json").write_text("{}")
    (root / "checkpoints" / "task_01.ckpt").write_bytes(b"w")
    for i, kind in enumerate(kinds):
        link = root / ("checkpoints" if i % 2 else ".") / f"l{i}"
        target = {
            "file_inside": "task_01.ckpt" if i % 2 else "metrics.json",
            "dir_inside": ".",
            "abs_outside": str(outside),
            "rel_escape": "../" * 4 + "etc/passwd",
            "chain_out": f"l{i}_hop",
            "loop": f"l{i}",
            "self": ".",
            "dangling": "missing",
        }.get(kind)
        if kind == "fifo":
            os.mkfifo(link)
            continue
        if kind == "chain_out":
            link.with_name(f"l{i}_hop").symlink_to(outside)
        link.symlink_to(target)  # type: ignore[arg-type]


@CASES
@given(st.lists(st.sampled_from(LINKS), min_size=1, max_size=4))
def test_2_merge_copies_only_links_that_stay_inside(tmp_path: Path, kinds: list[str]) -> None:
    case = fresh(tmp_path)
    outside = case / "secret.txt"
    outside.write_text("private")
    src, dst = case / "src", case / "dst"
    make_tree(src, outside, kinds)
    if set(kinds) <= {"file_inside"}:
        copy_inside(src, dst)
        for path in dst.rglob("*"):
            if path.is_symlink():
                assert dst.resolve() in path.resolve().parents and path.resolve().is_file()
        return
    with pytest.raises(ConfigError) as err:
        copy_inside(src, dst)
    assert "\n" not in one_line(err.value) and not dst.exists()
    with pytest.raises(ConfigError):
        check_tree(src)


# ---- 5. repair ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("adv") / "run"
    assert cli.main(tiny_args(run, num_tasks=2)) == 0
    return run


@CASES
@given(st.floats(0.0, 0.99), st.sampled_from(["cut", "garbage", "empty", "missing", "incomplete"]))
def test_5_a_torn_metrics_json_is_repaired_to_what_it_was(
    finished: Path, tmp_path: Path, cut: float, how: str
) -> None:
    run = fresh(tmp_path) / "run"
    shutil.copytree(finished, run, symlinks=True)
    whole = (run / "metrics.json").read_text()
    path = run / "metrics.json"
    if how == "cut":
        path.write_text(whole[: int(len(whole) * cut)])
    elif how == "garbage":
        path.write_bytes(os.urandom(int(200 * cut) + 1))
    elif how == "empty":
        path.write_text("")
    elif how == "missing":
        path.unlink()
    else:
        path.write_text(json.dumps({**json.loads(whole), "complete": False}))
    repair_outputs(run)
    assert json.loads(path.read_text()) == json.loads(whole)


@CASES
@given(st.integers(1, 200), st.binary(min_size=1, max_size=60).filter(lambda b: b"\n" not in b))
def test_5_a_journal_with_any_torn_tail_opens_and_grows(tmp_path: Path, n: int, tail: bytes) -> None:
    log = fresh(tmp_path) / "study.log"
    url = f"journal://{log}"
    study = optuna.create_study(study_name="s", storage=open_storage(url, {}))
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=1.0))
    with open(log, "ab") as fh:
        fh.write(tail[: max(1, n % len(tail) + 1)])
    study = optuna.load_study(study_name="s", storage=open_storage(url, {}))
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=2.0))
    assert [t.value for t in optuna.load_study(study_name="s", storage=open_storage(url, {})).trials] == [
        1.0,
        2.0,
    ]
