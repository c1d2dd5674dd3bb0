"""Issue 21, classes 3 to 6 through the command line: bounded inputs and odd bytes, repair and
isolation, interrupts, full disks, grid options checked before any run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml

import cli
from cl_attractors.commands import experiment
from cl_attractors.errors import MAX_MESSAGE
from cl_attractors.grid.spec import load_spec
from cl_attractors.paths import study_folder
from cl_attractors.tune.storage import open_storage
from tests.helpers import ROOT, small_tmpfs, tiny_args, write_search, write_spec

BOMB = "\n".join(
    [f"a0: &a0 [{', '.join(['x'] * 9)}]"]
    + [f"a{d}: &a{d} [{', '.join([f'*a{d - 1}'] * 9)}]" for d in range(1, 9)]
)
COMMANDS = ("fit", "validate", "tune", "experiment", "report", "merge")


def one_error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and len(err[0]) <= MAX_MESSAGE + 60, err
    return err[0]


# ---- class 4: bounded before expanded, odd bytes ------------------------------------------------
@pytest.mark.parametrize("command", COMMANDS)
def test_an_alias_bomb_is_refused_in_one_line_by_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture, command: str
) -> None:
    (tmp_path / "bomb.yaml").write_text(BOMB)
    argv = [command, "--config", str(tmp_path / "bomb.yaml")]
    if command == "merge":
        argv += ["--from", str(tmp_path)]
    if command == "validate":  # without a checkpoint validate stops before reading any config
        argv += ["--ckpt_path", str(tmp_path / "task_01.ckpt")]
    assert cli.main(argv) == 2
    assert "alias bomb" in one_error_line(capsys)


def test_an_alias_bomb_as_a_command_line_value_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert cli.main(tiny_args(tmp_path / "run", "--model.net.hidden_sizes", BOMB)) == 2
    assert "alias bomb" in one_error_line(capsys)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_nul_byte_in_any_argument_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, command: str
) -> None:
    assert cli.main([command, "--config", f"{tmp_path}/a\x00b.yaml"]) == 2
    assert "NUL byte" in one_error_line(capsys)


def test_a_nul_byte_inside_a_yaml_value_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = write_spec(tmp_path)
    spec.write_text(spec.read_text().replace("out_dir: ", 'out_dir: "x\\0y"\nunused: ', 1))
    assert cli.main(["experiment", "--config", str(spec)]) == 2
    assert "NUL byte" in one_error_line(capsys)


def test_a_huge_value_gives_a_bounded_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(tiny_args(tmp_path / "run", "--data.num_tasks", "9" * 2_000_000)) == 2
    one_error_line(capsys)


def test_workers_are_bounded_before_they_are_allocated(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = load_spec(write_spec(tmp_path, seeds=[0], variants={"v": []}, claims=[]))
    assert experiment.make_runner(spec, spec.runs(), 4000, None, None).workers == 1
    assert cli.main(["experiment", "--config", str(spec.source), "--workers", str(10**9)]) == 2
    assert "--workers 1000000000 is not allowed" in one_error_line(capsys)


def test_an_ascii_locale_does_not_break_a_finished_fit(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "LANG", "LC_ALL", "LC_CTYPE")}
    env.update(LANG="C", LC_ALL="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0", OMP_NUM_THREADS="1")
    run = tmp_path / "run"  # the report prints φ, λ and box lines; escaped, never a crash
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            *tiny_args(run, "--model.method", str(ROOT / "configs/method/sticky.yaml")),
        ],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert json.loads((run / "metrics.json").read_text(encoding="utf-8"))["complete"] is True
    assert "\\u2500" in done.stdout.decode("ascii")  # the box lines, escaped


# ---- class 5: repair and isolation ---------------------------------------------------------------
def test_a_torn_metrics_json_of_a_finished_run_is_repaired_not_failed_forever(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path, seeds=[0], variants={"fast": ["--model.optimizer.init_args.lr", "0.01"]}, claims=[]
    )
    experiment.main(["--config", str(path), "--workers", "1"])
    run = load_spec(path).runs([])[0].run_dir
    whole = json.loads((run / "metrics.json").read_text())
    text = (run / "metrics.json").read_text()
    (run / "metrics.json").write_text(text[: len(text) // 2])  # torn
    started = (run / "run.log").stat().st_mtime
    experiment.main(["--config", str(path), "--workers", "1"])  # no SystemExit: nothing failed
    assert json.loads((run / "metrics.json").read_text()) == whole
    assert (run / "run.log").stat().st_mtime == started  # repaired from its checkpoint, not re-run


def test_a_journal_with_a_torn_last_line_opens_and_takes_new_trials(tmp_path: Path) -> None:
    url = f"journal://{tmp_path / 'study.log'}"
    study = optuna.create_study(study_name="s", storage=open_storage(url, {}))
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=1.0))
    with open(tmp_path / "study.log", "ab") as fh:
        fh.write(b'{"op_code": 4, "worker_id": "x", "tri')  # a worker killed mid-append
    for _ in range(2):  # reopened, written to, reopened
        study = optuna.load_study(study_name="s", storage=open_storage(url, {}))
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=2.0))
    assert len(optuna.load_study(study_name="s", storage=open_storage(url, {})).trials) == 3


def test_in_memory_sqlite_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for url in ("sqlite://", "sqlite:///:memory:"):
        assert cli.main(["tune", "--config", str(write_search(tmp_path)), "--storage", url]) == 2
        assert "keeps the study in memory" in one_error_line(capsys)


def test_studies_sharing_an_out_dir_keep_their_trials_apart() -> None:
    names = ["a", "b", "../../etc", "a/b", "a_b", ".hidden", "", "x" * 300, "é"]
    folders = [study_folder(n) for n in names]
    assert len(set(folders)) == len(names)
    assert all(f and "/" not in f and not f.startswith(".") and len(f) < 100 for f in folders)
    assert study_folder("a") == "a"


def _interrupt(argv: list[str], started: Path, tmp_path: Path) -> tuple[int, str]:
    """Start ``cli.py argv`` (a process of this test), send Ctrl-C once ``started`` exists."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    err = tmp_path / "stderr.txt"
    with open(err, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), *argv], stdout=subprocess.DEVNULL, stderr=fh, env=env
        )
        deadline = time.time() + 240
        while not started.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
    return code, err.read_text(encoding="utf-8")


def test_ctrl_c_exits_130_and_says_so_for_fit_tune_and_experiment(tmp_path: Path) -> None:
    long = ["--data.num_tasks", "20", "--data.synthetic_size", "2048"]
    fit = tiny_args(tmp_path / "fit", *long)
    code, err = _interrupt(fit, tmp_path / "fit" / "checkpoints" / "task_00.ckpt", tmp_path)
    assert code == 130 and "interrupted" in err.splitlines()[-1]
    search = write_search(tmp_path, n_trials=50)
    raw = yaml.safe_load(search.read_text())
    search.write_text(yaml.safe_dump({**raw, "fit": [*raw["fit"], *long]}))
    code, err = _interrupt(["tune", "--config", str(search)], tmp_path / "study" / "study.db", tmp_path)
    assert code == 130 and "interrupted" in err.strip().splitlines()[-1]
    spec = write_spec(tmp_path, seeds=[0], variants={"v": long}, claims=[])
    run = load_spec(spec).runs([])[0].run_dir
    code, err = _interrupt(["experiment", "--config", str(spec)], run / "run.log", tmp_path)
    assert code == 130 and "interrupted" in err.strip().splitlines()[-1]


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 250 KiB tmpfs: a study's database fits, its trials' outputs soon do not (root only)."""
    with small_tmpfs(tmp_path, "250k") as mount:
        yield mount


def test_ctrl_c_inside_an_import_is_an_interruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A Ctrl-C that lands while a C extension is imported (matplotlib's Agg backend, first drawn
    at a task's end) surfaces as ``ImportError: initialization failed`` from the KeyboardInterrupt
    (seen under load in the test above): still 130 and "interrupted", no traceback."""

    def imports_when_interrupted(argv: list[str]) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as err:
            raise ImportError("initialization failed") from err

    monkeypatch.setattr(cli, "_fit", imports_when_interrupted)
    assert cli.main(tiny_args(tmp_path / "run")) == 130
    assert capsys.readouterr().err.startswith("interrupted: ")

    def fails_to_import(argv: list[str]) -> None:
        raise ImportError("no module named x")

    monkeypatch.setattr(cli, "_fit", fails_to_import)
    with pytest.raises(ImportError):  # an ImportError of its own stays a bug, traceback and all
        cli.main(tiny_args(tmp_path / "run"))


def test_tune_on_a_full_disk_is_one_line(full_disk: Path, tmp_path: Path) -> None:
    search = write_search(tmp_path, out_dir=str(full_disk / "study"), n_trials=4)
    done = subprocess.run(  # a process of its own: its open database is closed before the unmount
        [sys.executable, str(ROOT / "cli.py"), "tune", "--config", str(search)],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        timeout=300,
    )
    err = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert err.startswith("error: ") and ("disk is full" in err or "No space" in err), err


# ---- class 6: grid options before any run --------------------------------------------------------
BAD_OPTIONS = [
    ("weights", {"bin_width": 0}),
    ("weights", {"bin_width": -0.1}),
    ("weights", {"bin_width": 1e-12}),
    ("weights", {"x_range": [0.5, -0.5]}),
    ("weights", {"x_range": [0.1]}),
    ("weights", {"modes": {"smooth_bins": -1}}),
    ("weights", {"yscale": "cubic"}),
    ("curves", {"labels": ["a", "b"]}),
    ("plasticity", {"points": 1}),
    ("plasticity", {"points": 10**12}),
    ("plasticity", {"x_range": [1, 1]}),
    ("shared", {"metric": "loss"}),
]


@pytest.mark.parametrize(("kind", "options"), BAD_OPTIONS)
def test_kind_options_are_refused_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture, kind: str, options: dict
) -> None:
    extra = {"method_config": str(ROOT / "configs/method/sticky.yaml")} if kind == "plasticity" else {}
    spec = write_spec(tmp_path, kind=kind, claims=[], **extra, **options)
    assert cli.main(["experiment", "--config", str(spec)]) == 2
    line = one_error_line(capsys)
    assert f"{next(iter(options))}=" in line
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("metrics.json"))


@pytest.mark.parametrize(
    "claim",
    [
        {"better": "fast", "worse": "fast"},
        {"better": ["fast"], "worse": ["fast"]},
        {"better": [], "worse": "slow"},
        {"better": "fast", "worse": "slow", "tol": -1},
    ],
)
def test_claims_that_would_be_dropped_or_break_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture, claim: dict
) -> None:
    spec = write_spec(tmp_path, claims=[{"text": "t", "type": "gap", **claim}])
    assert cli.main(["experiment", "--config", str(spec)]) == 2
    one_error_line(capsys)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("metrics.json"))


def test_trainer_callbacks_in_a_yaml_keep_the_task_checkpoints(tmp_path: Path) -> None:
    (tmp_path / "cb.yaml").write_text(
        "trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.LearningRateMonitor\n"
    )
    assert cli.main(tiny_args(tmp_path / "run", "--trainer", str(tmp_path / "cb.yaml"), num_tasks=2)) == 0
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "last.ckpt",
        "task_00.ckpt",
        "task_01.ckpt",
    ]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://u:Pa55@word@127.0.0.1:1/db",
        "postgresql+psycopg2://u:Pa55:w/rd@127.0.0.1:abc/db",
        "postgresql+psycopg2://127.0.0.1:1/db?password=Pa55word",
        "postgresql+psycopg2://127.0.0.1:1/db?sslpassword=Pa55word&user=u",
        "mysql+pymysql://u:Pa55word@127.0.0.1:1/db",
        "nope://u:Pa55word@h/db",
    ],
)
def test_tune_never_prints_a_storage_password(
    tmp_path: Path, capsys: pytest.CaptureFixture, url: str
) -> None:
    assert cli.main(["tune", "--config", str(write_search(tmp_path)), "--storage", url]) == 2
    out, err = capsys.readouterr()
    assert "Pa55" not in out + err and err.count("\n") == 1, err


def test_tune_refuses_a_thread_count_beyond_the_cap(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["tune", "--config", str(write_search(tmp_path)), "--n_jobs", str(10**9)]) == 2
    assert "search.n_jobs=1000000000 is not allowed" in one_error_line(capsys)
