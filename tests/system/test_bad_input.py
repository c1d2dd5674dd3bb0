"""The bad-input table of `fit`: every invalid value of every user-facing field, every malformed
file (YAML, checkpoint, data) ends with one line naming the field or file, exit status 2, before
any training (no outputs written). `{tmp}` stands for the folder of malformed files that
write_bad_files (tests/system/bad_files.py) fills. `tune`, `experiment` and `report`: test_bad_commands.py.

The same tables are the lists in docs/bad_input.md (checked below, so they cannot drift apart).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import cli
from tests.helpers import ROOT, SEQUENCE, tiny_args
from tests.system.bad_files import write_bad_files

IDX = ("--data.source", "mnist", "--data.val_size", "10", "--data.data_dir")

STICKY = ("--model.method", "configs/method/sticky.yaml")
EWC = ("--model.method", "configs/method/ewc.yaml")
SI = ("--model.method", "configs/method/si.yaml")
REPLAY = ("--model.method", "configs/method/replay_200.yaml")
AGEM = ("--model.method", "configs/method/agem_200.yaml")
LWF = ("--model.method", "configs/method/lwf.yaml")
META = ("--model.method", "configs/method/metaplasticity.yaml")
L2 = ("--model.method", "configs/method/l2.yaml")
SPLIT = ("--data.family", "cl_attractors.train.families.Split")
ROTATED = ("--data.family", "cl_attractors.train.families.Rotated")

# (arguments, text the one error line must contain)
FIT_CASES: list[tuple[tuple[str, ...], str]] = [
    # data
    (("--data.source", "cifar"), "data.source='cifar' is not allowed; use one of embedded"),
    (("--data.source", "mnist"), "data.data_dir is required"),
    (("--data.source", "kmnist", "--data.data_dir", "/nonexistent"), "--data.download true"),
    (("--data.source", "embedded", "--data.data_dir", "/nonexistent/mnist.pkl.gz"), "does not exist"),
    (("--data.num_tasks", "0"), "data.num_tasks=0 is not allowed; use an integer >= 1"),
    (("--data.epochs_per_task", "0"), "data.epochs_per_task=0 is not allowed"),
    (
        ("--data.family.shared_fraction", "1.5"),
        "data.family.init_args.shared_fraction=1.5 is not allowed; use a number in [0, 1]",
    ),
    (("--data.family.shared_fraction", "-0.1"), "data.family.init_args.shared_fraction=-0.1 is not allowed"),
    (("--data.batch_size", "0"), "data.batch_size=0 is not allowed; use an integer >= 1"),
    (("--data.steps_per_chunk", "0"), "data.steps_per_chunk=0 is not allowed; use an integer >= 1"),
    (("--data.batch_size", "abc"), "data.batch_size\": Expected a <class 'int'>"),
    (("--data.eval_batch_size", "0"), "data.eval_batch_size=0 is not allowed"),
    (("--data.eval_split", "train"), "data.eval_split"),
    (("--data.train_size", "0"), "data.train_size=0 is not allowed"),
    (("--data.synthetic_size", "0"), "data.synthetic_size=0 is not allowed"),
    (("--data.val_size", "0"), "data.val_size=0 is not allowed"),
    # task families, scenarios and data preparation
    (
        (*SPLIT, "--data.family.groups", "[[0, 1], [1, 2], [3]]"),
        "groups[1]=[1, 2] is not allowed; use groups that do not overlap",
    ),
    (
        (*SPLIT, "--data.family.groups", "[[0, 1], [2, 12], [3]]"),
        "groups[1]=[2, 12] is not allowed; use classes in 0..9",
    ),
    (
        (*SPLIT, "--data.family.groups", "[[0, 1], [2, 3], [4]]", "--data.train_size", "1"),
        "use classes the source has",
    ),
    ((*SPLIT, "--data.family.scenario", "tasks"), "data.family.init_args.scenario='tasks' is not allowed"),
    (
        (*SPLIT, "--data.family.scenario", "task"),
        "model.net has 10 outputs; data.family.init_args.scenario='task' with 3 groups of num_classes=10 "
        "needs 3 heads of 2",
    ),
    (
        (*SPLIT, "--data.num_tasks", "6"),
        "data.num_tasks=6 is not allowed; use at most 5 tasks (groups of data.family.init_args.group_size",
    ),
    (
        (*ROTATED, "--data.family.angles", "[0, .nan, 1]"),
        "data.family.init_args.angles[1]=nan is not allowed",
    ),
    (
        (*ROTATED, "--data.family.angles", "[0, 30]"),
        "data.family.init_args.angles=[0.0, 30.0] is not allowed; use 3 angles",
    ),
    (
        (*ROTATED, "--data.family.image_size", "[20, 20]"),
        "data.family.init_args.image_size=[20, 20] is not allowed",
    ),
    ((*ROTATED, "--data.family.low", "null"), "data.family.init_args.low=None is not allowed; use a number"),
    (
        (*SEQUENCE, "--data.family.classes_per_source", "5"),
        "data.family.init_args.classes_per_source=5 is not allowed; use the classes of each of the 2 sources",
    ),
    (
        ("--config", "configs/model/cnn.yaml", "--model.net.image_size", "[32, 32]"),
        "model.net does not take the inputs",
    ),
    (("--data.protocol", "offline"), "data.protocol='offline' is not allowed; use one of sequential, joint"),
    (("--data.pad", "-1"), "data.pad=-1 is not allowed; use an integer >= 0"),
    (("--data.normalise", "[0.1]"), "data.normalise=[0.1] is not allowed; use [mean, std]"),
    (("--data.merge_val", "true", "--data.eval_split", "val"), "data.merge_val=True is not allowed"),
    (("--data.source", "[synthetic, cifar]"), "data.source=['synthetic', 'cifar'] is not allowed"),
    # model
    (
        ("--model.net.hidden_sizes", "[0]"),
        "model.net.init_args.hidden_sizes[0]=0 is not allowed; use an integer >= 1",
    ),
    (("--model.net.hidden_sizes", "[16, -2]"), "model.net.init_args.hidden_sizes[1]=-2 is not allowed"),
    (("--model.net.input_size", "0"), "model.net.init_args.input_size=0 is not allowed"),
    (("--model.net.num_classes", "0"), "model.net.init_args.num_classes=0 is not allowed"),
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
    (
        (*REPLAY, "--model.method.init_args.memory_size", "0"),
        "method.memory_size=0 is not allowed; use an integer >= 1",
    ),
    (
        (*REPLAY, "--model.method.init_args.memory_size", "100000"),
        "method.memory_size=100000 is not allowed; use at most 768",
    ),
    ((*AGEM, "--model.method.init_args.memory_size", "0"), "method.memory_size=0 is not allowed"),
    ((*AGEM, "--model.method.init_args.ref_batch_size", "0"), "method.ref_batch_size=0 is not allowed"),
    (
        (*LWF, "--model.method.init_args.temperature", "0"),
        "method.temperature=0.0 is not allowed; use a number > 0",
    ),
    ((*LWF, "--model.method.init_args.temperature=-2"), "method.temperature=-2.0 is not allowed"),
    ((*META, "--model.method.init_args.m", "-1"), "method.m=-1.0 is not allowed; use a number >= 0"),
    ((*L2, "--model.method.init_args.lam", "-1"), "method.lam=-1.0 is not allowed"),
    # evaluation during training (tiny_args: chunks of 2 steps, 64 test images a task)
    (("--eval_every_n_steps", "0"), "eval_every_n_steps=0 is not allowed; use a positive integer"),
    (("--eval_every_n_steps", "-4"), "eval_every_n_steps=-4 is not allowed"),
    (("--eval_every_n_steps", "2.5"), "eval_every_n_steps"),
    (
        ("--eval_every_n_steps", "3"),
        "eval_every_n_steps=3 is not allowed; use a multiple of data.steps_per_chunk=2",
    ),
    (
        ("--eval_every_n_steps", "2", "--tasks.eval_subsample", "5000"),
        "tasks.eval_subsample=5000 is not allowed; use an integer in [1, 64]",
    ),
    (("--tasks.eval_subsample", "0"), "tasks.eval_subsample=0 is not allowed"),
    # trainer
    (("--trainer.accelerator", "tpuu"), "accelerator='tpuu'"),
    (("--trainer.precision", "7"), "precision"),
    (("--trainer.log_every_n_steps", "0"), "trainer.log_every_n_steps=0 is not allowed"),
    # command line and paths
    (("--no_such_flag", "1"), "unrecognized arguments: --no_such_flag"),
    (("--config", "configs/nope.yaml"), "--config configs/nope.yaml does not exist"),
    (("--ckpt_path", "/nonexistent.ckpt"), "/nonexistent.ckpt"),
    (("test",), "command 'test' is not allowed; use one of fit, validate"),
    (("predict",), "command 'predict' is not allowed; use one of fit, validate"),
    # malformed YAML ({tmp}: the folder of write_bad_files)
    (("--config", "{tmp}/syntax.yaml"), "syntax.yaml line 2 column 1: expected ',' or ']'"),
    (("--config", "{tmp}/tab.yaml"), "tab.yaml line 2 column 1: found character '\\t'"),
    (("--config", "{tmp}/tag.yaml"), "tag.yaml line 1 column 7: could not determine a constructor"),
    (("--config", "{tmp}/list.yaml"), "list.yaml must hold a mapping (key: value), got a list"),
    (("--config", "{tmp}/defaults_mapping.yaml"), "defaults=[{'a': 'b'}] is not allowed; use a list"),
    (("--config", "{tmp}/data_scalar.yaml"), "data=3 is not allowed; use a mapping of its fields"),
    (("--config", "{tmp}"), "is a directory; give a YAML file"),
    # values from a file get the same checks as typed ones
    (
        ("--model.method", "{tmp}/a1_inf.yaml"),
        "model.method.init_args.a1=inf is not allowed; use a finite number",
    ),
    (("--config", "{tmp}/lr_inf.yaml"), "model.optimizer.init_args.lr=inf is not allowed"),
    ((*STICKY, "--model.method.init_args.a1", ".inf"), "model.method.init_args.a1=inf is not allowed"),
    ((*STICKY, "--model.method.init_args.lam", ".inf"), "model.method.init_args.lam=inf is not allowed"),
    (("--data.family.shared_fraction", ".nan"), "data.family.init_args.shared_fraction=nan is not allowed"),
    (("--model.optimizer.init_args.lr", ".nan"), "model.optimizer.init_args.lr=nan is not allowed"),
    (("--model.optimizer.init_args.lr", "-1"), "model.optimizer.init_args.lr: Invalid learning rate: -1.0"),
    (("--model.optimizer.init_args.lr", "null"), "model.optimizer.init_args.lr=None is not allowed"),
    ((*STICKY, "--model.method.init_args.zeta", "-1e-3"), "method.zeta=-0.001 is not allowed"),
    (("--model.optimizer.init_args.lr", "1e300"), "model.optimizer.init_args.lr=1e+300 is not allowed"),
    (
        (*STICKY, "--model.method.init_args.a1", "null"),
        "model.method.init_args.a1: required (null or missing); give a value",
    ),
    ((*SI, "--model.method.init_args.c", "1e300"), "model.method.init_args.c=1e+300 is not allowed"),
    (
        ("--model.optimizer.init_args.betas", "[2, 0.9]"),
        "model.optimizer.init_args.betas: Invalid beta parameter",
    ),
    (("--model.optimizer.init_args.eps", "-1"), "model.optimizer.init_args.eps: Invalid epsilon value"),
    (("--seed_everything", "4294967296"), "seed_everything=4294967296 is not allowed"),
    (("--data.seed", "-1"), "data.seed=-1 is not allowed; use an integer in [0, 9223372036854775807]"),
    (("--data.seed", "9223372036854775808"), "data.seed=9223372036854775808 is not allowed"),
    ((*EWC, "--model.method.init_args.seed", "9223372036854775808"), "model.method.init_args.seed="),
    # shapes against the data, memory
    (
        ("--model.net.input_size", "100"),
        "model.net.init_args.input_size=100 does not fit data.source='synthetic': its examples have "
        "784 features ([784]); use 784",
    ),
    (
        ("--model.net.num_classes", "5"),
        "model.net has 5 outputs; data.source='synthetic' has labels up to 9: use at least 10",
    ),
    (
        ("--model.net.hidden_sizes", "[1000000000]"),
        "model.net.init_args.hidden_sizes=[1000000000] is not allowed; use a smaller",
    ),
    (("--data.synthetic_size", "100000000000"), "data.synthetic_size=100000000000 is not allowed"),
    (("--data.num_tasks", "100000000"), "data.num_tasks=100000000 is not allowed; use a smaller value"),
    # trainer values Lightning refuses, and those that would cut or skip part of a task
    (("--trainer.devices", "0"), "`Trainer(devices='0')` value is not a valid input"),
    (("--trainer.limit_train_batches", "0"), "trainer.limit_train_batches=0.0 is not allowed"),
    (("--trainer.limit_val_batches", "0.5"), "trainer.limit_val_batches=0.5 is not allowed"),
    (("--trainer.max_steps", "2"), "trainer.max_steps=2 is not allowed; use -1"),
    (("--trainer.max_time", "00:00:01:00"), "trainer.max_time='00:00:01:00' is not allowed"),
    (("--trainer.fast_dev_run", "true"), "trainer.fast_dev_run=True is not allowed"),
    (("--trainer.val_check_interval", "0.5"), "trainer.val_check_interval=0.5 is not allowed"),
    (("--trainer.gradient_clip_val", "1.0"), "trainer.gradient_clip_val=1.0 is not allowed"),
    (("--trainer.accumulate_grad_batches", "2"), "trainer.accumulate_grad_batches=2 is not allowed"),
    (("--trainer.devices", "abc"), "`devices` selected with `CPUAccelerator` should be an int > 0"),
    (("--trainer.devices", "1" + "0" * 30), "cannot fit 'int' into an index-sized integer"),
    (("--trainer.accelerator", "mps"), "trainer (accelerator='mps'"),
    # checkpoints
    (("--ckpt_path", "{tmp}"), "is a directory; give a .ckpt file written by fit"),
    (("--ckpt_path", "{tmp}/random.ckpt"), "random.ckpt is not a readable checkpoint (UnpicklingError"),
    (("--ckpt_path", "{tmp}/empty.ckpt"), "empty.ckpt is not a readable checkpoint (EOFError)"),
    (("--ckpt_path", "{tmp}/truncated.ckpt"), "truncated.ckpt is not a readable checkpoint (RuntimeError"),
    (("--ckpt_path", "{tmp}/foreign.ckpt"), "foreign.ckpt is not a Lightning checkpoint"),
    (
        ("--ckpt_path", "{tmp}/other_model.ckpt"),
        "holds another model than this config's model (net.0.bias is [24] there, [16] here)",
    ),
    # data files
    ((*IDX, "{tmp}/idx_truncated"), "train-images-idx3-ubyte is truncated or too long"),
    ((*IDX, "{tmp}/idx_empty"), "train-images-idx3-ubyte is not an IDX file of unsigned bytes"),
    (
        (*IDX, "{tmp}/idx_label_12"),
        "model.net has 10 outputs; data.source='mnist' has labels up to 12: use at least 13",
    ),
    ((*IDX, "{tmp}/idx_counts"), "differ: 60 images, 50 labels"),
    ((*IDX, "{tmp}/idx_gz_truncated"), "train-images-idx3-ubyte.gz cannot be decompressed"),
]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad_files")
    assert cli.main(tiny_args(folder / "run", "--model.net.hidden_sizes", "[24]", num_tasks=1)) == 0
    return write_bad_files(folder, (folder / "run" / "checkpoints" / "last.ckpt").resolve())


def _case_id(case: tuple[tuple[str, ...], str]) -> str:
    return " ".join(case[0])


@pytest.mark.parametrize("args, expected", FIT_CASES, ids=[_case_id(c) for c in FIT_CASES])
def test_fit_bad_input(
    bad_files: Path, tmp_path: Path, args: tuple[str, ...], expected: str, capsys: pytest.CaptureFixture
) -> None:
    args = tuple(a.replace("{tmp}", str(bad_files)) for a in args)
    argv = tiny_args(tmp_path / "run", *args[args[0] in ("test", "predict") :])
    if args[0] in ("test", "predict"):
        argv[0] = args[0]
    assert cli.main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    assert expected in errors[0]
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_every_case_is_listed_in_the_docs() -> None:
    doc = (ROOT / "docs" / "bad_input.md").read_text()
    missing = [_case_id(c) for c in FIT_CASES if f"`{_case_id(c)}`" not in doc]
    assert not missing, f"add to docs/bad_input.md: {missing}"
