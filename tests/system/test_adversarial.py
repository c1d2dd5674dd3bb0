"""A fresh adversarial set for issue 21: cases drawn per class, beyond the ones the issue names.

Each test draws its cases (hypothesis, derandomized so CI sees the same ones; widen
``ADVERSARIAL_EXAMPLES`` locally to explore) and states the class's promise for every one:

1. a file that would run code when unpickled never does (every payload, container and format);
2. ``merge`` never copies a link out of the run, a loop or a special file, and a tree it accepts
   is copied with every link inside the copy;
3. no password, in any URL form, reaches a message;
4. bombs, NUL bytes and huge values end with one bounded line, exit 2;
5. a torn ``metrics.json`` or journal tail is repaired to what it was;
6. any report option value is refused in one line naming it, or accepted by the report's checks.

Run ``pytest tests/system/test_adversarial.py -q`` and count: the number of examples per test is
:data:`EXAMPLES` (and the parametrized cases); every one must hold.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import optuna
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cli
from callbacks.task_checkpoint import load_problem
from cl_attractors.errors import MAX_MESSAGE, ConfigError, one_line
from cl_attractors.grid.options import CHECKS, check_claim_values, check_options
from cl_attractors.grid.spec import load_spec
from cl_attractors.io import load_tensors, read_yaml
from cl_attractors.repair import repair_outputs
from cl_attractors.train.guard import AtomicCheckpointIO
from cl_attractors.transfer import check_tree, copy_inside
from cl_attractors.tune.storage import open_storage, shown
from tests.helpers import tiny_args, write_spec


def fresh(tmp_path: Path) -> Path:
    """A new folder per drawn example (hypothesis runs many in one test's tmp_path)."""
    return Path(tempfile.mkdtemp(dir=tmp_path))


EXAMPLES = int(os.environ.get("ADVERSARIAL_EXAMPLES", "25"))
CASES = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


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


# ---- 3. secrets ---------------------------------------------------------------------------------
SECRET = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=6,
    max_size=30,
).map(lambda s: "Z" + s)


@CASES
@given(
    SECRET,
    st.sampled_from(
        ["postgresql+psycopg2", "postgresql", "mysql+pymysql", "sqlite", "oracle", "journal", "nope"]
    ),
    st.sampled_from(["127.0.0.1:1", "127.0.0.1:abc", "127.0.0.1", "[::1]:1", "h:"]),
    st.sampled_from(["userinfo", "encoded", "query", "query_encoded_key", "both"]),
)
def test_3_no_storage_password_reaches_a_message(pw: str, scheme: str, host: str, form: str) -> None:
    enc = quote(pw, safe="")
    url = {
        "userinfo": f"{scheme}://u:{pw}@{host}/db",
        "encoded": f"{scheme}://u:{enc}@{host}/db",
        "query": f"{scheme}://{host}/db?password={enc}",
        "query_encoded_key": f"{scheme}://{host}/db?pass%77ord={enc}",
        "both": f"{scheme}://u:{enc}@{host}/db?sslpassword={enc}",
    }[form]
    texts = [shown(url)]
    try:
        open_storage(url, {})
    except ConfigError as err:
        texts.append(one_line(err))
    except Exception as err:  # a traceback would be a failure of class 3 too
        pytest.fail(f"{type(err).__name__} for {shown(url)}")
    for text in texts:
        assert enc not in text and (form != "userinfo" or pw not in text), text


# ---- 4. bombs, NUL bytes, huge values -----------------------------------------------------------
@CASES
@given(
    st.integers(3, 30),
    st.integers(5, 12),
    st.sampled_from(["list", "map", "merge"]),
    st.sampled_from(["fit", "tune", "experiment", "report", "merge"]),
)
def test_4_bombs_are_one_bounded_line(
    tmp_path: Path, width: int, depth: int, shape: str, command: str
) -> None:
    while width**depth < 10**6:  # past the bound: a bomb, not a big config
        depth += 1
    lines = ["a0: &a0 [x, y]" if shape != "map" else "a0: &a0 {x: 1, y: 2}"]
    for d in range(1, depth):
        refs = [f"*a{d - 1}"] * width
        if shape == "list":
            lines.append(f"a{d}: &a{d} [{', '.join(refs)}]")
        elif shape == "map":
            lines.append(f"a{d}: &a{d} {{{', '.join(f'k{j}: {r}' for j, r in enumerate(refs))}}}")
        else:
            lines.append(f"a{d}: &a{d} [{', '.join(refs)}, {{<<: *a0}}]")
    path = fresh(tmp_path) / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    argv = [command, "--config", str(path)] + (["--from", str(tmp_path)] if command == "merge" else [])
    assert cli.main(argv) == 2


@CASES
@given(
    st.sampled_from(["fit", "validate", "tune", "experiment", "report", "merge"]),
    st.lists(st.text(max_size=20), min_size=1, max_size=4),
    st.integers(0, 3),
)
def test_4_a_nul_byte_anywhere_is_one_line(command: str, args: list[str], at: int) -> None:
    args = list(args)
    i = at % len(args)
    args[i] = args[i][: len(args[i]) // 2] + "\x00" + args[i][len(args[i]) // 2 :]
    assert cli.main([command, *args]) == 2


@CASES
@given(
    st.sampled_from(["--data.num_tasks", "--seed", "--model.net.hidden_sizes", "--run_dir", "--no_such"]),
    st.integers(10**4, 10**6),
)
def test_4_huge_values_give_bounded_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture, flag: str, size: int
) -> None:
    value = f"[{'9' * size}]" if flag == "--model.net.hidden_sizes" else "9" * size
    assert cli.main(tiny_args(fresh(tmp_path) / "r", flag, value)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and len(err[0]) <= MAX_MESSAGE + 60


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


# ---- 6. report options ---------------------------------------------------------------------------
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.one_of(st.floats(-2, 2), st.integers(-3, 3), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.one_of(st.integers(-2, 5), st.text(max_size=3)), max_size=3),
)
KIND_OF = {
    "x_range": "weights",
    "bin_width": "weights",
    "min_abs": "weights",
    "modes": "weights",
    "yscale": "weights",
    "mass_ranges": "weights",
    "points": "plasticity",
    "params": "plasticity",
    "expect": "plasticity",
    "metric": "shared",
    "xlabel": "shared",
    "baseline": "sensitivity",
    "marks": "sensitivity",
    "xlabels": "sensitivity",
    "metrics": "shared",
    "tolerance": "stability",
    "labels": "curves",
    "title": "curves",
    "notes": "curves",
    "summary": "curves",
}


@CASES
@given(st.sampled_from(sorted(CHECKS)), ODD)
def test_6_any_option_value_is_refused_in_one_line_or_drawable(tmp_path: Path, key: str, value: Any) -> None:
    spec_path = write_spec(fresh(tmp_path), kind=KIND_OF[key], claims=[], **{key: value})
    try:
        spec = load_spec(spec_path)
        check_options(spec)
    except ConfigError as err:
        line = one_line(err)
        assert "\n" not in line and len(line) <= MAX_MESSAGE + 60
        return
    check, _ = CHECKS[key]
    assert check(value)  # accepted only when the table says the report can draw it


@CASES
@given(
    st.one_of(st.text(max_size=3), st.lists(st.sampled_from(["fast", "slow", ""]), max_size=3)),
    st.one_of(st.text(max_size=3), st.lists(st.sampled_from(["fast", "slow", ""]), max_size=3)),
    st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-5, 5)),
)
def test_6_claims_never_drop_silently(better: Any, worse: Any, tol: Any) -> None:
    claim: dict[str, Any] = {"text": "t", "type": "gap", "better": better, "worse": worse}
    if tol is not None:
        claim["tol"] = tol
    try:
        check_claim_values([claim])
    except ConfigError as err:
        assert "\n" not in one_line(err)
        return
    pairs = [
        (b, w)
        for b in (better if isinstance(better, list) else [better])
        for w in (worse if isinstance(worse, list) else [worse])
    ]
    assert pairs and any(b != w for b, w in pairs) and "" not in (better, worse)
