"""The input space of the generated bad-input tests (tests/system/test_generated_input.py): for
every user-facing field of `fit`, of a search YAML and of an experiment YAML, the values a user may
give it, valid (cheap to train) or not, as hypothesis strategies."""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from cl_attractors.signatures import init_parameters, init_type_hints
from cl_attractors.train.families import TaskFamily
from tests.helpers import ROOT, subclasses

BIG = "1" + "0" * 30  # not drawn for fields where a huge valid value means a huge amount of work
# values a user may type for any field; whether each is valid depends on the field
ANY_TEXT = ["abc", "[1, 2]", "{a: 1}", "", "null", ".nan", ".inf", "-.inf", "1e300", BIG, "-1", "0"]


def ints(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map(str)


def floats(lo: float, hi: float) -> st.SearchStrategy[str]:
    return st.floats(lo, hi, allow_nan=False).map(repr)


def choice(*values: str) -> st.SearchStrategy[str]:
    return st.sampled_from(values)


BOOL = choice("true", "false")
SEEDS = st.one_of(st.integers(0, 2**63 - 1), st.sampled_from([0, 2**32 - 1, 2**32, 2**63 - 1])).map(str)
STICKY = str(ROOT / "configs/method/sticky.yaml")
EWC = str(ROOT / "configs/method/ewc.yaml")
SI = str(ROOT / "configs/method/si.yaml")
REPLAY = str(ROOT / "configs/method/replay_200.yaml")
AGEM = str(ROOT / "configs/method/agem_200.yaml")
LWF = str(ROOT / "configs/method/lwf.yaml")
META = str(ROOT / "configs/method/metaplasticity.yaml")

# field -> (method config it needs or None, its valid values (cheap to train), drawn with ANY_TEXT)
FIT_FIELDS: dict[str, tuple[str | None, st.SearchStrategy[str]]] = {
    "seed_everything": (None, st.one_of(SEEDS, BOOL)),
    "data.num_tasks": (None, ints(1, 3)),
    "data.epochs_per_task": (None, ints(1, 2)),
    "data.seed": (None, SEEDS),
    "data.split_seed": (None, SEEDS),
    "data.batch_size": (None, ints(1, 64)),
    "data.steps_per_chunk": (None, ints(1, 8)),
    "data.eval_batch_size": (None, ints(1, 64)),
    "data.eval_split": (None, choice("val", "test")),
    "data.train_size": (None, st.one_of(ints(1, 64), st.just("null"))),
    "data.synthetic_size": (None, ints(1, 64)),
    "data.source": (None, choice("synthetic", "embedded", "mnist", "cifar")),
    "model.net.hidden_sizes": (None, st.lists(st.integers(1, 16), max_size=2).map(json.dumps)),
    "model.net.input_size": (None, st.one_of(st.just("784"), ints(1, 1000))),
    "model.net.num_classes": (None, ints(1, 20)),
    "model.log_every_n_steps": (None, ints(1, 100)),
    "model.check_finite_every_n_steps": (None, ints(1, 100)),
    "model.optimizer.init_args.lr": (None, floats(1e-6, 1.0)),
    "model.optimizer.init_args.betas": (
        None,
        st.lists(st.floats(0, 0.999), min_size=2, max_size=2).map(json.dumps),
    ),
    "model.optimizer.init_args.eps": (None, floats(0.0, 1.0)),
    "model.optimizer.init_args.weight_decay": (None, floats(0.0, 1.0)),
    "model.optimizer.init_args.amsgrad": (None, BOOL),
    "model.method.init_args.a1": (STICKY, floats(-1.0, 1.0)),
    "model.method.init_args.mu": (STICKY, floats(-1.0, 1.0)),
    "model.method.init_args.sigma": (STICKY, floats(1e-4, 1.0)),
    "model.method.init_args.gamma": (STICKY, floats(1e-3, 10.0)),
    "model.method.init_args.zeta": (STICKY, floats(0.0, 1e-2)),
    "model.method.init_args.lam": (STICKY, floats(0.0, 10.0)),
    "model.method.init_args.f_min": (STICKY, floats(0.0, 4.0)),
    "model.method.init_args.stats_every": (STICKY, ints(1, 100)),
    "model.method.init_args.apply_to": (STICKY, choice("gradient", "update")),
    "model.method.init_args.compile": (STICKY, choice("false", "auto")),
    "model.method.init_args.layers": (STICKY, choice("[0]", "[1]", "[0, 1]", "null", "[2]")),
    "model.method.init_args.params": (STICKY, choice("all", "weights")),
    "model.method.init_args.fisher_samples": (EWC, ints(1, 64)),
    "model.method.init_args.gamma_online": (EWC, floats(0.0, 1.0)),
    "model.method.init_args.mode": (EWC, choice("separate", "online")),
    "model.method.init_args.seed": (EWC, SEEDS),
    "model.method.init_args.c": (SI, floats(0.0, 10.0)),
    "model.method.init_args.xi": (SI, floats(1e-4, 1.0)),
    "model.method.init_args.memory_size": (REPLAY, ints(1, 128)),
    "model.method.init_args.batch_size": (REPLAY, ints(1, 64)),
    "model.method.init_args.ref_batch_size": (AGEM, ints(1, 64)),
    "model.method.init_args.temperature": (LWF, floats(0.1, 10.0)),
    "model.method.init_args.new_outputs": (LWF, choice("hidden", "zero_target")),
    "model.method.init_args.m": (META, floats(0.0, 100.0)),
    "eval_every_n_steps": (None, choice("2", "4", "null")),
    "tasks.eval_subsample": (None, ints(1, 16)),
    "trainer.accelerator": (None, choice("cpu", "auto", "gpu")),
    "trainer.devices": (None, choice("1", "auto")),  # (2 would start processes running argv)
    "trainer.precision": (None, choice("32-true", "32", "64-true", "16-mixed")),
    "trainer.gradient_clip_val": (None, floats(0.0, 10.0)),
    "trainer.accumulate_grad_batches": (None, ints(1, 3)),
    "trainer.limit_train_batches": (None, choice("1.0", "0.5", "2")),
    "trainer.limit_val_batches": (None, choice("1.0", "0.5", "2")),
    "trainer.max_steps": (None, choice("-1", "3", "100000")),
    "trainer.max_time": (None, choice("null", "00:00:00:01")),
    "trainer.enable_checkpointing": (None, BOOL),
    "trainer.deterministic": (None, BOOL),
    "trainer.log_every_n_steps": (None, ints(1, 100)),
}
WORK_FIELDS = {"data.epochs_per_task"}  # a huge valid value here is days of training, not bad input
# on tiny_args: a fit of a few seconds (2 tasks of 64 synthetic examples, an 8-unit MLP, no heat maps)
TINY_EXTRA = ("--data.synthetic_size", "64", "--model.net.hidden_sizes", "[8]", "--tasks.heatmaps", "false")


def yaml_nest(dotted: str, text: str) -> str:
    """``a.b.c`` and a YAML scalar text as a nested YAML mapping (the file route of a value)."""
    keys = dotted.split(".")
    lines = [f"{'  ' * i}{k}:" for i, k in enumerate(keys[:-1])]
    scalar = text or "''"
    return "\n".join([*lines, f"{'  ' * (len(keys) - 1)}{keys[-1]}: {scalar}"]) + "\n"


@st.composite
def fit_inputs(draw: st.DrawFn) -> tuple[str, str, str]:
    field = draw(st.sampled_from(sorted(FIT_FIELDS)))
    valid = FIT_FIELDS[field][1]
    anything = [t for t in ANY_TEXT if not (field in WORK_FIELDS and t == BIG)]
    return field, draw(st.one_of(valid, st.sampled_from(anything))), draw(st.sampled_from(["typed", "file"]))


# ---- the task families: every constructor argument of every family, found, not listed ----------
FAMILY_NEEDS: dict[str, tuple[str, ...]] = {"DatasetSequence": ("--data.source", "[synthetic, synthetic]")}
"""What a tiny run of a family needs beyond its defaults (a sequence of datasets: a source per task)."""
FAMILY_DATA = ("--data.synthetic_size", "256")  # every class in the 64 validation and test examples


def hint_values(hint: Any, default: Any) -> st.SearchStrategy[str]:
    """Valid, cheap values of a constructor argument from its type hint (as YAML/JSON text); an
    argument whose type is not one of these (a list of families) keeps its default."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        kept = [a for a in args if a is not type(None)]
        none = [st.just("null")] if len(kept) < len(args) else []
        return st.one_of(*(hint_values(a, default) for a in kept), *none)
    if hint is bool:
        return BOOL
    if hint is int:
        return ints(1, 4)
    if hint is float:
        return floats(0.0, 1.0)
    if hint is str and isinstance(default, str):
        return st.just(default)
    if origin is list and args and typing.get_origin(args[0]) is list:  # groups of classes
        return st.lists(st.lists(st.integers(0, 9), min_size=1, max_size=2), min_size=2, max_size=2).map(
            json.dumps
        )
    if origin is list and args and args[0] in (int, float):
        numbers = st.integers(1, 28) if args[0] is int else st.floats(-360, 360)
        return st.lists(numbers, min_size=2, max_size=2).map(json.dumps)
    return st.just("null" if default in (None, inspect.Parameter.empty) else json.dumps(default))


@dataclass(frozen=True)
class FamilyField:
    """One constructor argument of one task family, and how a tiny run selects that family."""

    family: type[TaskFamily]
    arg: str
    values: st.SearchStrategy[str]

    @property
    def field(self) -> str:
        return f"data.family.init_args.{self.arg}"

    def args(self) -> list[str]:
        path = f"{self.family.__module__}.{self.family.__qualname__}"
        return ["--data.family", path, *FAMILY_DATA, *FAMILY_NEEDS.get(self.family.__name__, ())]


def family_fields() -> dict[str, FamilyField]:
    """``Family.arg`` -> its field, for every subclass of TaskFamily in the package."""
    out = {}
    for family in subclasses(TaskFamily):
        hints = init_type_hints(family)
        for arg, param in init_parameters(family).items():
            out[f"{family.__name__}.{arg}"] = FamilyField(
                family, arg, hint_values(hints.get(arg), param.default)
            )
    return out


FAMILY_FIELDS = family_fields()


@st.composite
def family_inputs(draw: st.DrawFn) -> tuple[str, str, str]:
    key = draw(st.sampled_from(sorted(FAMILY_FIELDS)))
    text = draw(st.one_of(FAMILY_FIELDS[key].values, st.sampled_from(ANY_TEXT)))
    return key, text, draw(st.sampled_from(["typed", "file"]))


# ---- tune: the search YAML --------------------------------------------------------------------
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.sampled_from(["abc", None, []]),
)
SEARCH_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "n_trials": st.sampled_from([1, 0, -1, 1.5, math.nan, "abc", None, []]),  # (a huge count is work)
    "sampler.seed": st.one_of(st.integers(0, 2**32 - 1), NUMBERS),
    "sampler.n_startup_trials": st.one_of(st.integers(0, 5), NUMBERS),
    "pruner.n_startup_trials": st.one_of(st.integers(0, 5), NUMBERS),
    "pruner.n_warmup_steps": st.one_of(st.integers(0, 5), NUMBERS),
    "heartbeat.interval": st.one_of(st.integers(1, 60), NUMBERS),
    "heartbeat.grace_period": st.one_of(st.integers(1, 600), NUMBERS),
    "space.a1": st.one_of(st.floats(-1, 1), NUMBERS),
    "space.lam": st.one_of(st.floats(0, 10), NUMBERS),
    "space.a1.low": st.one_of(st.floats(0.01, 0.1), NUMBERS),
    "space.gamma.high": st.one_of(st.floats(1.0, 10.0), NUMBERS),
    "space.zeta.low": st.one_of(st.floats(1e-7, 1e-4), NUMBERS),
    "space.apply_to.choices": st.lists(st.sampled_from(["gradient", "update", "nope", 3, None]), max_size=3),
}
SPACE_DEFAULTS = {
    "a1": {"low": 0.01, "high": 1.0},
    "gamma": {"low": 0.1, "high": 7.0},
    "zeta": {"low": 1e-6, "high": 1e-3},
}


def set_dotted(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[leaf] = value


# ---- experiment: the spec ---------------------------------------------------------------------
SPEC_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "seeds": st.one_of(
        st.lists(st.integers(0, 3), min_size=1, max_size=2, unique=True), st.lists(NUMBERS, max_size=2)
    ),
    "name": st.one_of(st.just("tiny"), st.text(max_size=6)),
    "variant": st.one_of(st.just("fast"), st.text(max_size=6)),
    "lr": st.one_of(st.floats(1e-4, 0.1).map(repr), st.sampled_from(ANY_TEXT)),
    "sweep.values": st.lists(st.one_of(st.floats(0, 1), NUMBERS), max_size=2),
    "claims.better": st.one_of(st.just("fast"), st.text(max_size=4), NUMBERS),
}
