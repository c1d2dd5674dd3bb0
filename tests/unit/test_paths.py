"""Config composition: paths relative to the config file, group files, ``defaults``, one seed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cl_attractors.errors import ConfigError
from cl_attractors.grid.spec import load_spec
from cl_attractors.paths import (
    prune_task_checkpoints,
    resolve_args,
    resolve_relative,
    task_checkpoints,
    task_file,
)
from cl_attractors.train.compose import expand_argv, expand_defaults
from tests.helpers import ROOT


def _write(path: Path, content: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def _merged(args: list[str]) -> dict:
    """The mappings of the inline ``--config`` arguments, applied in order (shallow per group)."""
    out: dict = {}
    for flag, value in zip(args[::2], args[1::2]):
        assert flag == "--config"
        for key, val in yaml.safe_load(value).items():
            out[key] = {**out[key], **val} if isinstance(val, dict) and key in out else val
    return out


def test_a_relative_path_is_read_from_the_config_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "configs" / "method").mkdir(parents=True)
    (tmp_path / "configs" / "method" / "m.yaml").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert resolve_relative("../method/m.yaml", "configs/grid/g.yaml") == "configs/method/m.yaml"
    monkeypatch.chdir(ROOT)  # from elsewhere, relative to where the config file is
    assert resolve_relative("../method/m.yaml", tmp_path / "configs/grid/g.yaml") == str(
        tmp_path / "configs/method/m.yaml"
    )
    assert resolve_relative("/abs/x.yaml", "configs/grid/g.yaml") == "/abs/x.yaml"
    # a name only the working directory has (configs written before the rule) is kept
    assert resolve_relative("configs/method/ewc.yaml", "configs/grid/fig2.yaml") == "configs/method/ewc.yaml"
    # neither has it: the config-relative name, for the error message
    assert resolve_relative("nope.yaml", "configs/grid/g.yaml") == "configs/grid/nope.yaml"


def test_resolve_args_touches_config_files_and_data_dirs_only() -> None:
    args = [
        "--config",
        "../experiment/a.yaml",
        "--model.method",
        "EWC",
        "--model.method=m.yaml",
        "--data.data_dir",
        "mnist",
        "--data.num_tasks",
        3,
        "--data.data_dir=raw",
    ]
    assert resolve_args(args, "/c/grid/g.yaml") == [
        "--config",
        "/c/experiment/a.yaml",
        "--model.method",
        "EWC",
        "--model.method=/c/grid/m.yaml",
        "--data.data_dir",
        "/c/grid/mnist",
        "--data.num_tasks",
        "3",
        "--data.data_dir=/c/grid/raw",
    ]


def test_defaults_method_and_data_dir_resolve_relative_to_their_file(tmp_path: Path) -> None:
    _write(tmp_path / "data" / "d.yaml", {"data": {"source": "mnist", "data_dir": "../raw"}})
    _write(tmp_path / "exp" / "base.yaml", {"defaults": ["../data/d.yaml"], "seed": 4})
    top = _write(tmp_path / "exp" / "e.yaml", {"defaults": ["base.yaml"], "model": {"method": "../m/x.yaml"}})
    merged = _merged(expand_defaults(top))
    assert merged["data"] == {"source": "mnist", "data_dir": str(tmp_path / "raw")}
    assert merged["model"]["method"] == str(tmp_path / "m" / "x.yaml") and merged["seed"] == 4


def test_a_group_file_holds_a_fragment_or_the_groups_own_arguments(tmp_path: Path) -> None:
    wrapped = _write(tmp_path / "wrapped.yaml", {"data": {"source": "synthetic"}})
    plain = _write(tmp_path / "plain.yaml", {"source": "synthetic", "num_tasks": 4})
    assert _merged(expand_argv(["--data", str(wrapped)])) == {"data": {"source": "synthetic"}}
    assert _merged(expand_argv([f"--data={plain}"])) == {"data": {"source": "synthetic", "num_tasks": 4}}
    assert expand_argv(["--data.num_tasks", "2"]) == ["--data.num_tasks", "2"]  # not a file: untouched


def test_one_seed_old_flags_and_saved_configs_are_read_as_seed(tmp_path: Path) -> None:
    assert expand_argv(["--data.seed", "3", "--seed_everything=3", "--seed", "4"]) == [
        *("--seed", "3", "--seed", "3", "--seed", "4")
    ]
    saved = _write(tmp_path / "old.yaml", {"seed_everything": 7, "data": {"seed": 7, "num_tasks": 2}})
    assert _merged(expand_argv(["-c", str(saved)])) == {"data": {"num_tasks": 2}, "seed": 7}
    clash = _write(tmp_path / "clash.yaml", {"seed_everything": 1, "data": {"seed": 2}})
    with pytest.raises(ConfigError, match=r"seed_everything=1, data.seed=2 differ"):
        expand_argv(["--config", str(clash)])


@pytest.mark.parametrize(
    "content, message",
    [
        ({"defaults": "x.yaml"}, "defaults='x.yaml' is not allowed"),
        ({"defaults": ["self.yaml"]}, "'defaults' form a cycle"),
        ({"defaults": ["missing.yaml"]}, "missing.yaml does not exist"),
    ],
)
def test_bad_defaults_are_one_line_errors(tmp_path: Path, content: dict, message: str) -> None:
    path = _write(tmp_path / "self.yaml", content)
    with pytest.raises(ConfigError, match=message) as err:
        expand_defaults(path)
    assert "\n" not in str(err.value)


def test_grid_specs_resolve_their_paths_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tuned = ROOT / "results" / "tune"  # written by the searches: may not exist yet
    for path in sorted((ROOT / "configs" / "grid").glob("*.yaml")):
        spec = load_spec(path)
        named = [spec.base, spec.report.method_config]
        named += [a for args in spec.variants.values() for a in args if a.endswith(".yaml")]
        named = [Path(p) for p in named if p is not None]
        assert all(p.is_file() or p.is_relative_to(tuned) for p in named), (path.name, named)


def test_pruning_keeps_the_newest_task_checkpoint_and_the_one_last_names(tmp_path: Path) -> None:
    ckpts = tmp_path / "checkpoints"
    assert prune_task_checkpoints(tmp_path) == 0  # no checkpoints: nothing to do
    ckpts.mkdir()
    for task in range(4):
        (ckpts / task_file(task)).write_bytes(b"x" * (task + 1))
    (ckpts / "last.ckpt").symlink_to("task_03.ckpt")
    (ckpts / "notes.txt").write_text("kept")
    assert [p.name for p in task_checkpoints(ckpts)] == [
        "task_03.ckpt",
        "task_02.ckpt",
        "task_01.ckpt",
        "task_00.ckpt",
    ]
    assert prune_task_checkpoints(tmp_path) == 1 + 2 + 3
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "notes.txt", "task_03.ckpt"]
    assert (ckpts / "last.ckpt").read_bytes() == b"xxxx"

    for task in range(3):
        (ckpts / task_file(task)).write_bytes(b"y")
    (ckpts / "last.ckpt").unlink()
    (ckpts / "last.ckpt").symlink_to("task_01.ckpt")  # last names an older one: both kept
    assert prune_task_checkpoints(tmp_path) == 2
    assert [p.name for p in task_checkpoints(ckpts)] == ["task_03.ckpt", "task_01.ckpt"]
