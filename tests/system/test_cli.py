"""The command line: the main job's output, and one-line errors for bad input (exit 2, no traceback)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import cli
from tests.helpers import ROOT, tiny_args


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_fit_prints_the_matrix_and_the_log_directory(tmp_path: Path) -> None:
    out = run_cli(*tiny_args(tmp_path / "run", num_tasks=2))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "accuracy matrix A[i, j] in %" in out.stdout and "final average accuracy" in out.stdout
    assert str(tmp_path / "run") in out.stdout


@pytest.mark.parametrize(
    "override, field",
    [
        (["--data.num_tasks", "0"], "data.num_tasks"),
        (["--data.family.shared_fraction", "1.5"], "data.family.init_args.shared_fraction"),
        (["--data.batch_size", "0"], "data.batch_size"),
        (["--data.source", "cifar"], "data.source"),
        (["--data.source", "mnist"], "data.data_dir"),
        (["--model.net.hidden_sizes", "[0]"], "model.net.init_args.hidden_sizes"),
        (["--data.batch_size", "abc"], "data.batch_size"),
        (["--model.method", "configs/method/does_not_exist.yaml"], "model.method"),
    ],
)
def test_bad_input_gives_one_line_error(
    tmp_path: Path, override: list[str], field: str, capsys: pytest.CaptureFixture
) -> None:
    assert cli.main(tiny_args(tmp_path / "run", *override)) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and field in errors[0], err[-1500:]
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_bad_input_exit_status_and_no_traceback_from_the_shell(tmp_path: Path) -> None:
    out = run_cli(*tiny_args(tmp_path / "run", "--data.num_tasks", "0"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "error: data.num_tasks=0 is not allowed; use an integer >= 1" in out.stderr


def test_help_lists_every_command_and_a_missing_one_is_one_line() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    assert all(f"  {c} " in out.stdout for c in ("fit", "validate", "tune", "experiment", "report"))
    for args in ((), ("test",)):
        bad = run_cli(*args)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: ")


def test_fit_from_another_directory_with_c_and_group_files(tmp_path: Path) -> None:
    """-c, --data FILE, --trainer FILE, --model FILE and the configs' own relative paths (the
    experiment's defaults and its method file) all resolve outside the repository root."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = tiny_args(tmp_path / "run", num_tasks=2)
    args[args.index("--config")] = "-c"
    args[args.index("-c") + 1] = str(ROOT / "configs/experiment/ewc.yaml")
    groups = [
        "--trainer",
        "trainer/default.yaml",
        "--model",
        "model/mlp.yaml",
        "--data",
        "data/synthetic.yaml",
    ]
    groups = [a if a.startswith("--") else str(ROOT / "configs" / a) for a in groups]
    out = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), args[0], *args[1:3], *groups, *args[3:], "--seed", "5"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["model"]["method"]["class_path"] == "cl_attractors.methods.ewc.EWC"
    assert saved["data"]["source"] == "synthetic" and saved["seed"] == 5
    assert not (elsewhere / "runs").exists()  # --run_dir decides where the outputs go


def test_print_config_prints_what_will_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = tiny_args(
        tmp_path / "run",
        "--model.method",
        "EWC",
        "--model.method.init_args.lam",
        "5",
        "--seed",
        "4",
        "--print_config",
        num_tasks=2,
    )
    with pytest.raises(SystemExit) as stop:
        cli.main(args)
    assert stop.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["seed"] == 4 and printed["model"]["method"]["init_args"]["lam"] == 5
    assert printed["model"]["method"]["class_path"] == "cl_attractors.methods.ewc.EWC"
    assert printed["trainer"]["logger"]["init_args"]["version"] == "run"
    assert not (tmp_path / "run").exists()  # printing creates nothing
    assert cli.main([*args[:-1], "--print_config=colour"]) == 2
    assert "error: print_config=colour is not allowed" in capsys.readouterr().err


def test_console_script_is_cli_entry_point(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = scripts["cl-attractors"].split(":")
    assert (module, func) == ("cli", "entry_point")
    monkeypatch.setattr(sys, "argv", ["cl-attractors", "--help"])
    with pytest.raises(SystemExit) as stop:
        cli.entry_point()
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("usage: cl-attractors {fit,")


@pytest.mark.slow
def test_pip_install_gives_the_console_command(tmp_path: Path) -> None:
    """`pip install -e .` in a fresh venv that sees this venv's packages; then `cl-attractors`."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "shared.pth").write_text("\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")
    pip = subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", "--no-deps", "-e", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    out = subprocess.run(
        [str(venv / "bin/cl-attractors"), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "experiment" in out.stdout, out.stderr[-1500:]
