"""The bad-input table of `fit`: every invalid value of every user-facing field ends with one line
naming the field and what is allowed, exit status 2, before any training (no outputs written).

The same table is the list in docs/bad_input.md (checked below, so the two cannot drift apart).
`tune` and `experiment` inputs are covered by tests/contracts/test_tune.py and
tests/system/test_experiment.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import cli
from tests.helpers import ROOT, tiny_args

STICKY = ("--model.method", "configs/method/sticky.yaml")
EWC = ("--model.method", "configs/method/ewc.yaml")
SI = ("--model.method", "configs/method/si.yaml")

# (arguments, text the one error line must contain)
FIT_CASES: list[tuple[tuple[str, ...], str]] = [
    # data
    (("--data.source", "cifar"), "data.source='cifar' is not allowed; use one of embedded"),
    (("--data.source", "mnist"), "data.data_dir is required"),
    (("--data.source", "kmnist", "--data.data_dir", "/nonexistent"), "--data.download true"),
    (("--data.source", "embedded", "--data.data_dir", "/nonexistent/mnist.pkl.gz"), "does not exist"),
    (("--data.num_tasks", "0"), "data.num_tasks=0 is not allowed; use an integer >= 1"),
    (("--data.epochs_per_task", "0"), "data.epochs_per_task=0 is not allowed"),
    (("--data.shared_fraction", "1.5"), "data.shared_fraction=1.5 is not allowed; use a number in [0, 1]"),
    (("--data.shared_fraction", "-0.1"), "data.shared_fraction=-0.1 is not allowed"),
    (("--data.batch_size", "0"), "data.batch_size=0 is not allowed; use an integer >= 1"),
    (("--data.steps_per_batch", "0"), "data.steps_per_batch=0 is not allowed; use an integer >= 1"),
    (("--data.batch_size", "abc"), "data.batch_size\": Expected a <class 'int'>"),
    (("--data.eval_batch_size", "0"), "data.eval_batch_size=0 is not allowed"),
    (("--data.eval_split", "train"), "data.eval_split"),
    (("--data.train_size", "0"), "data.train_size=0 is not allowed"),
    (("--data.synthetic_size", "0"), "data.synthetic_size=0 is not allowed"),
    # model
    (("--model.hidden_sizes", "[0]"), "model.hidden_sizes[0]=0 is not allowed; use an integer >= 1"),
    (("--model.hidden_sizes", "[16, -2]"), "model.hidden_sizes[1]=-2 is not allowed"),
    (("--model.input_size", "0"), "model.input_size=0 is not allowed"),
    (("--model.num_classes", "0"), "model.num_classes=0 is not allowed"),
    (("--model.check_finite_every_n_steps", "0"), "model.check_finite_every_n_steps=0 is not allowed"),
    (("--model.optimizer.class_path", "torch.optim.Nope"), "model.optimizer"),
    (("--model.method", "configs/method/nope.yaml"), "model.method"),
    # methods
    ((*STICKY, "--model.method.init_args.gamma", "0"), "method.gamma=0.0 is not allowed; use a number > 0"),
    ((*STICKY, "--model.method.init_args.lam", "-1"), "method.lam=-1.0 is not allowed"),
    ((*STICKY, "--model.method.init_args.sigma", "0"), "method.sigma=0.0 is not allowed"),
    ((*STICKY, "--model.method.init_args.zeta=-1e-3"), "method.zeta=-0.001 is not allowed"),
    (
        (*STICKY, "--model.method.init_args.f_min", "5"),
        "method.f_min=5.0 is not allowed; use a number in [0, lam",
    ),
    (
        (*STICKY, "--model.method.init_args.compile", "maybe"),
        "method.compile='maybe' is not allowed; use true, false or 'auto'",
    ),
    ((*STICKY, "--model.method.init_args.apply_to", "weights"), "apply_to"),
    ((*STICKY, "--model.method.init_args.params", "biases"), "params"),
    ((*STICKY, "--model.method.init_args.layers", "[5]"), "method.layers=[5] is not allowed"),
    ((*EWC, "--model.method.init_args.lam", "-1"), "method.lam=-1.0 is not allowed"),
    ((*EWC, "--model.method.init_args.fisher", "exact"), "fisher"),
    ((*EWC, "--model.method.init_args.fisher_samples", "0"), "method.fisher_samples=0 is not allowed"),
    ((*EWC, "--model.method.init_args.mode", "sum"), "mode"),
    ((*SI, "--model.method.init_args.c", "-1"), "method.c=-1.0 is not allowed"),
    ((*SI, "--model.method.init_args.xi", "0"), "method.xi=0.0 is not allowed"),
    # trainer
    (("--trainer.accelerator", "tpuu"), "accelerator='tpuu'"),
    (("--trainer.precision", "7"), "precision"),
    (("--trainer.log_every_n_steps", "0"), "trainer.log_every_n_steps=0 is not allowed"),
    # command line and paths
    (("--no_such_flag", "1"), "unrecognized arguments: --no_such_flag"),
    (("--config", "configs/nope.yaml"), "--config configs/nope.yaml does not exist"),
    (("--ckpt_path", "/nonexistent.ckpt"), "/nonexistent.ckpt"),
]


def _case_id(case: tuple[tuple[str, ...], str]) -> str:
    return " ".join(case[0])


@pytest.mark.parametrize("args, expected", FIT_CASES, ids=[_case_id(c) for c in FIT_CASES])
def test_fit_bad_input(
    tmp_path: Path, args: tuple[str, ...], expected: str, capsys: pytest.CaptureFixture
) -> None:
    assert cli.main(tiny_args(tmp_path / "run", *args)) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    assert expected in errors[0]
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_every_case_is_listed_in_the_docs() -> None:
    doc = (ROOT / "docs" / "bad_input.md").read_text()
    missing = [_case_id(c) for c in FIT_CASES if f"`{_case_id(c)}`" not in doc]
    assert not missing, f"add to docs/bad_input.md: {missing}"
