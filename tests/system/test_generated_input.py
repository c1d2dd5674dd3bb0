"""Generated bad input: hypothesis draws a user-facing field and a value for it (valid, boundary, or
invalid: wrong type, NaN, inf, huge, negative, empty), given on the command line or in a YAML file.

The property, whatever was drawn: the command either works (a tiny fit on synthetic data finishes
all its tasks; a study runs its trial; a grid runs its fit), or ends with exactly one line
``error: ...`` naming the field, exit status 2 and no traceback. A value that trains but makes the
loss diverge may also end with the one ``training diverged`` line (it cannot be refused up front).

Each example runs in a forked child of this process (the imports are shared, the state is not)
with a time limit. The example counts keep the file at about a minute on a small shared machine;
hypothesis draws other examples on every run (its database replays the ones that failed). The
fields and their values: tests/system/input_space.py.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import optuna
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import cli
from cl_attractors.grid import runner
from tests.helpers import TINY, fit_args, tiny_args, write_search
from tests.system.input_space import (
    FAMILY_FIELDS,
    FIT_FIELDS,
    SEARCH_FIELDS,
    SPACE_DEFAULTS,
    SPEC_FIELDS,
    TINY_EXTRA,
    family_inputs,
    fit_inputs,
    set_dotted,
    yaml_nest,
)

TIME_LIMIT_S = 240
FAST = settings(  # no shrinking: an example is already small (a field, a value, a route) and slow
    deadline=None,
    derandomize=True,  # CI sees the same examples every run; widen max_examples locally to explore
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def run_forked(argv: list[str], workdir: Path) -> tuple[int, str]:
    """``cli.main(argv)`` in a forked child: (exit status, its stderr); an exception that escapes
    is printed with its traceback, as Python would."""
    err = workdir / "stderr.txt"
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            sys.stdout = open(os.devnull, "w", encoding="utf-8")  # the child exits below
            code = cli.main(argv)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code if isinstance(code, int) else 1)
    deadline = time.time() + TIME_LIMIT_S
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"{argv} ran over {TIME_LIMIT_S} s")
        time.sleep(0.05)
    return os.waitstatus_to_exitcode(done[1]), err.read_text(errors="replace")


def assert_kept_the_promise(code: int, err: str, names: tuple[str, ...]) -> bool:
    """Exit 0 (returns True), or one ``error:`` line naming one of ``names`` (or the divergence
    line), exit 2, no traceback (returns False)."""
    assert "Traceback" not in err, err[-3000:]
    if code == 0:
        return True
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, (code, err[-3000:])
    assert "training diverged" in errors[0] or any(n in errors[0] for n in names), errors[0]
    return False


@settings(FAST, max_examples=10)
@given(drawn=fit_inputs())
def test_fit_any_value_of_any_field_works_or_is_one_line(tmp_path_factory: Any, drawn: tuple) -> None:
    field, text, route = drawn
    work = tmp_path_factory.mktemp("fit")
    method = FIT_FIELDS[field][0]
    argv = tiny_args(work / "run", *TINY_EXTRA, num_tasks=2) + (["--model.method", method] if method else [])
    if route == "typed":
        argv += [f"--{field}", text]
    elif field.startswith("model.method."):  # a method file holding the value
        base = yaml.safe_load(Path(method).read_text(encoding="utf-8"))
        (work / "m.yaml").write_text(
            yaml.safe_dump({"class_path": base["class_path"]}) + yaml_nest(field[13:], text)
        )
        argv += ["--model.method", str(work / "m.yaml")]
    else:
        (work / "c.yaml").write_text(yaml_nest(field, text))
        argv += ["--config", str(work / "c.yaml")]
    code, err = run_forked(argv, work)
    if assert_kept_the_promise(code, err, (field.split(".")[-1],)):
        assert json.loads((work / "run" / "metrics.json").read_text())["complete"] is True


@settings(FAST, max_examples=8)
@given(drawn=family_inputs())
def test_fit_any_value_of_any_family_argument_works_or_is_one_line(
    tmp_path_factory: Any, drawn: tuple
) -> None:
    """Every task family's constructor arguments (found in the package), on the command line or in
    a YAML file."""
    key, text, route = drawn
    family = FAMILY_FIELDS[key]
    work = tmp_path_factory.mktemp("family")
    argv = tiny_args(work / "run", *TINY_EXTRA, num_tasks=2) + family.args()
    if route == "typed":
        argv += [f"--{family.field}", text]
    else:
        (work / "c.yaml").write_text(yaml_nest(family.field, text))
        argv += ["--config", str(work / "c.yaml")]
    code, err = run_forked(argv, work)
    if assert_kept_the_promise(code, err, (family.arg,)):
        assert json.loads((work / "run" / "metrics.json").read_text())["complete"] is True


def test_every_family_runs_tiny_with_its_defaults(tmp_path: Path) -> None:
    """The baseline the drawn values change: each family (found, not listed) trains with its
    defaults and what FAMILY_NEEDS gives it."""
    families = {f.family: f for f in FAMILY_FIELDS.values()}
    assert {c.__name__ for c in families} >= {"Permuted", "Rotated", "Split", "DatasetSequence"}
    for cls, family in families.items():
        run = tmp_path / cls.__name__
        code, err = run_forked(tiny_args(run, *TINY_EXTRA, num_tasks=2) + family.args(), tmp_path)
        assert code == 0, err[-3000:]
        assert json.loads((run / "metrics.json").read_text())["complete"] is True


@settings(FAST, max_examples=4)
@given(field=st.sampled_from(sorted(SEARCH_FIELDS)), data=st.data())
def test_tune_any_search_value_works_or_is_one_line(
    tmp_path_factory: Any, field: str, data: st.DataObject
) -> None:
    value = data.draw(SEARCH_FIELDS[field])
    work = tmp_path_factory.mktemp("tune")
    search: dict[str, Any] = {"sampler": {"seed": 0}, "pruner": {"type": "median"}, "n_trials": 1}
    search["space"] = {"a1": dict(SPACE_DEFAULTS["a1"])}
    if field.startswith("space.") and field.count(".") == 2:
        name = field.split(".")[1]
        search["space"][name] = dict(SPACE_DEFAULTS.get(name, {}))
    set_dotted(search, field, value)
    fit = fit_args("--data.synthetic_size", "64", "--model.net.hidden_sizes", "[8]", num_tasks=1)
    path = write_search(work, fit=fit, **search)
    code, err = run_forked(["tune", "--config", str(path)], work)
    leaf = field.split(".")[1] if "." in field else field  # the parameter, or the key
    names = (f"search.{field}", f"search.{field.rsplit('.', 1)[0]}", leaf)
    if assert_kept_the_promise(code, err, names):
        study = optuna.load_study(study_name="search", storage=f"sqlite:///{work / 'study' / 'study.db'}")
        for trial in study.trials:
            reason = trial.user_attrs.get("fail_reason", "")
            assert trial.state != optuna.trial.TrialState.FAIL or "training diverged" in reason, reason


def in_process_runs(self: runner.GridRunner, runs: list, desc: str = "") -> list[runner.Outcome]:
    """The grid's fits run in this (forked) process instead of worker processes."""
    return [runner.Outcome(r, cli.main(r.command())) for r in runs]


@settings(FAST, max_examples=4)
@given(field=st.sampled_from(sorted(SPEC_FIELDS)), data=st.data())
def test_experiment_any_spec_value_works_or_is_one_line(
    tmp_path_factory: Any, monkeypatch: Any, field: str, data: st.DataObject
) -> None:
    value = data.draw(SPEC_FIELDS[field])
    work = tmp_path_factory.mktemp("grid")
    monkeypatch.setattr(runner.GridRunner, "run", in_process_runs)
    spec: dict[str, Any] = {"name": "tiny", "base": "configs/experiment/vanilla.yaml", "seeds": [0]}
    spec.update(variants={"fast": []}, claims=[], overrides=[*TINY, *TINY_EXTRA])
    spec.update(out_dir=str(work / "runs"), results_dir=str(work / "results"))
    if field == "variant":
        spec["variants"] = {value: []}
    elif field == "lr":
        spec["variants"] = {"fast": ["--model.optimizer.init_args.lr", value]}
    elif field == "sweep.values":
        spec["sweep"] = {"flag": "--data.family.shared_fraction", "values": value}
    elif field == "claims.better":
        spec["claims"] = [{"text": "t", "type": "best", "variant": value}]
    else:
        spec[field] = value
    path = work / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, err = run_forked(["experiment", "--config", str(path), "--workers", "1"], work)
    named = {"sweep.values": ("sweep", "shared_fraction"), "claims.better": ("claims[0]",)}
    assert_kept_the_promise(code, err, named.get(field, (field,)))
