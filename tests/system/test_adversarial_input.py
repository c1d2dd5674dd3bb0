"""Adversarial input (issue 21's classes 3, 4 and 6; the set: ``tests/system/adversarial.py``):
no password reaches a message, bombs, NUL bytes and huge values end in one bounded line, and any
report option value is refused in one line or drawable."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cli
from cl_attractors.errors import MAX_MESSAGE, ConfigError, one_line
from cl_attractors.grid.option_checks import CHECKS, check_claim_values, check_options
from cl_attractors.grid.spec import load_spec
from cl_attractors.tune.storage import open_storage, shown
from tests.helpers import tiny_args, write_spec
from tests.system.adversarial import CASES, fresh

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
    "references": "curves",
}


def test_every_checked_option_has_a_grid_kind_to_try_it_in() -> None:
    """A new report option gets drawn by test 6 only once KIND_OF names a kind it belongs to."""
    assert sorted(CHECKS) == sorted(KIND_OF)


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
