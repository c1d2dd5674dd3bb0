"""The bad-input table of `tune`, `experiment` and `report`: a malformed or refused search YAML,
experiment spec or option ends with one line naming the field or file, exit status 2, before any
trial or run (nothing trained). Each case is a change to tests/helpers.py's tiny search or spec
(or a whole file's text); the table is also the list in docs/bad_input.md."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

import cli
from cl_attractors.grid import runner
from tests.helpers import ROOT, fit_args, write_search, write_spec

FAST = {"fast": ["--model.optimizer.init_args.lr", "0.01"]}
RANGE = {"lam": {"low": 4.0, "high": 10.0}}

# (id, command, changes of the tiny search/spec or {"text": whole file}, extra arguments, error text)
CASES: list[tuple[str, str, dict[str, Any], list[str], str]] = [
    ("tune: a YAML syntax error", "tune", {"text": "space: {a1: [1\n"}, [], "line 2 column 1"),
    ("tune: a tab", "tune", {"text": "space:\n\ta1: 1\n"}, [], "found character '\\t'"),
    ("tune: a python tag", "tune", {"text": "fit: !!python/name:os.system\n"}, [], "could not determine"),
    ("tune: a list", "tune", {"text": "- 1\n"}, [], "must hold a mapping (key: value), got a list"),
    ("tune: fit: [{a: 1}]", "tune", {"fit": [{"a": 1}]}, [], "search.fit=[{'a': 1}] is not allowed"),
    ("tune: sampler: [1]", "tune", {"sampler": [1]}, [], "search.sampler=[1] is not allowed; use a mapping"),
    (
        "tune: sampler: {seed: 2**32}",
        "tune",
        {"sampler": {"seed": 2**32}},
        [],
        "search.sampler.seed=4294967296",
    ),
    ("tune: space: {a1: .inf}", "tune", {"space": {"a1": math.inf, **RANGE}}, [], "search.space.a1=inf"),
    (
        "tune: space: {a1: abc}",
        "tune",
        {"space": {"a1": "abc", **RANGE}},
        [],
        "model.method.a1: Expected a <class 'float'>. Got value: abc (a fixed value of search.space)",
    ),
    (
        "tune: space: {lam: {low: -2, high: 5, log: false}}",
        "tune",
        {"space": {"lam": {"low": -2.0, "high": 5.0, "log": False}}},
        [],
        "search.space.lam.low=-2.0 is refused by StickyGradient: method.lam=-2.0 is not allowed",
    ),
    (
        "tune: space: {apply_to: {choices: [gradient, nope]}}",
        "tune",
        {"space": {"apply_to": {"choices": ["gradient", "nope"]}}},
        [],
        "search.space.apply_to.choices[1]='nope' is refused by StickyGradient",
    ),
    (
        "tune: fit lr .nan",
        "tune",
        {"fit": fit_args("--model.optimizer.init_args.lr", ".nan")},
        [],
        "model.optimizer.init_args.lr=nan is not allowed",
    ),
    ("tune: --n_jobs abc", "tune", {}, ["--n_jobs", "abc"], "tune: argument --n_jobs: invalid int value"),
    ("experiment: a YAML syntax error", "experiment", {"text": "name: [x\n"}, [], "(not valid YAML)"),
    ("experiment: a tab", "experiment", {"text": "name:\tx\nvariants:\n\ta: []\n"}, [], "found character"),
    ("experiment: a list", "experiment", {"text": "- 1\n"}, [], "must hold a mapping"),
    ("experiment: claims: [x]", "experiment", {"claims": ["x"]}, [], "claims[0]='x' is not allowed"),
    (
        "experiment: claims: [{type: nope}]",
        "experiment",
        {"claims": [{"text": "t", "type": "nope"}]},
        [],
        "claims[0].type='nope' is not allowed; use one of gap, best, beats_all, benefit_until, modes, "
        "crossing",
    ),
    (
        "experiment: claims: [{type: gap}]",
        "experiment",
        {"claims": [{"text": "t", "type": "gap"}]},
        [],
        "claims[0] (type gap) lacks better, worse",
    ),
    (
        "experiment: claims: [{type: gap, better: zzz, worse: fast}]",
        "experiment",
        {"claims": [{"text": "t", "type": "gap", "better": "zzz", "worse": "fast"}]},
        [],
        "claims[0].better='zzz' is not allowed; use a variant of the grid: fast",
    ),
    (
        "experiment: variants: {../e: []}",
        "experiment",
        {"variants": {"../e": []}},
        [],
        "'../e' is not allowed",
    ),
    ("experiment: name: ../e", "experiment", {"name": "../e"}, [], "the grid's name '../e' is not allowed"),
    ("experiment: seeds: [2**32]", "experiment", {"seeds": [2**32]}, [], "seeds=[4294967296] is not allowed"),
    (
        "experiment: sweep values [.nan]",
        "experiment",
        {"sweep": {"flag": "--data.family.shared_fraction", "values": [math.nan]}},
        [],
        "sweep=",
    ),
    (
        "experiment: variant lr .nan",
        "experiment",
        {"variants": {"a": ["--model.optimizer.init_args.lr", ".nan"]}},
        [],
        "float32's range) (in the fit arguments of variants.a)",
    ),
    (
        "experiment: variant --no_such 1",
        "experiment",
        {"variants": {"a": ["--no_such", "1"]}},
        [],
        "unrecognized arguments: --no_such 1 (in the fit arguments of variants.a)",
    ),
    (
        "experiment: xlable: x (a typo)",
        "experiment",
        {"kind": "shared", "xlable": "x"},
        [],
        "xlable='x' is not a key of a 'shared' grid; use one of name, kind,",
    ),
    ("experiment: --workers abc", "experiment", {}, ["--workers", "abc"], "argument --workers: invalid int"),
    ("report: a YAML syntax error", "report", {"text": "name: [x\n"}, [], "(not valid YAML)"),
    ("report: claims: [x]", "report", {"claims": ["x"]}, [], "claims[0]='x' is not allowed"),
    (
        "experiment: references: {nope: fast}",
        "experiment",
        {"references": {"nope": "fast"}},
        [],
        "references.nope: 'nope' is not a variant of the grid; use one of fast",
    ),
    (
        "report: references: {fast: nope}",
        "report",
        {"references": {"fast": "nope"}},
        [],
        "references.fast='nope' is not a variant of the grid; use one of fast",
    ),
    (
        "experiment: references: [fast]",
        "experiment",
        {"references": ["fast"]},
        [],
        "references=['fast'] is not allowed; use a mapping variant: its reference variant",
    ),
]


def _config(tmp_path: Path, command: str, changes: dict[str, Any]) -> Path:
    if "text" in changes:
        path = tmp_path / "config.yaml"
        path.write_text(changes["text"])
        return path
    if command == "tune":
        return write_search(tmp_path, **changes)
    return write_spec(tmp_path, **{"seeds": [0], "variants": FAST, "claims": [], **changes})


@pytest.mark.parametrize(
    ("name", "command", "changes", "extra", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_is_one_line_before_any_trial_or_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    name: str,
    command: str,
    changes: dict[str, Any],
    extra: list[str],
    expected: str,
) -> None:
    monkeypatch.setattr(runner.GridRunner, "run", lambda *a, **k: pytest.fail("a run started"))
    assert cli.main([command, "--config", str(_config(tmp_path, command, changes)), *extra]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], errors
    assert not list(tmp_path.rglob("metrics.json"))


def test_every_case_is_listed_in_the_docs() -> None:
    doc = (ROOT / "docs" / "bad_input.md").read_text()
    missing = [c[0] for c in CASES if f"`{c[0]}`" not in doc]
    assert not missing, f"add to docs/bad_input.md: {missing}"
