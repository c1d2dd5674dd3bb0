"""Checks of a parsed ``fit``/``validate`` config, run right after parsing and before any object is
built, so that a value is checked the same way whether it came from a YAML file or the command line.

Each failure is one :class:`ConfigError` line naming the field: a NaN or infinite number anywhere,
a seed out of the range the random generators take, a trainer setting that would end a task early
or evaluate part of a task (the accuracy matrix needs whole tasks), the settings Lightning refuses only
once training started (clipping, accumulation), or sizes whose tensors cannot fit in memory
(checked before allocating them).
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import typing
from typing import Any

from cl_attractors.errors import ConfigError, require, require_finite, require_seed
from cl_attractors.signatures import init_type_hints

SEED_MAX = 2**32 - 1  # Lightning's seed_everything (numpy's range)
BYTES_PER_PARAMETER = 16  # float32 weights, their gradients and Adam's two moments
WHOLE = "each task is trained and evaluated whole (fewer examples: data.train_size)"
ONCE = "the task sequence evaluates every task once, after each task"
MANUAL = "the module steps the optimizer itself, which Lightning's clipping and accumulation do not support"
# trainer settings the task sequence needs as they are: the values allowed, and why
FIXED_TRAINER: dict[str, tuple[tuple[Any, ...], str]] = {
    "limit_train_batches": ((None, 1.0), WHOLE),
    "limit_val_batches": ((None, 1.0), WHOLE),
    "fast_dev_run": ((False, 0), WHOLE),
    "overfit_batches": ((0, 0.0), WHOLE),
    "min_epochs": ((None,), WHOLE),
    "min_steps": ((None,), WHOLE),
    "max_steps": ((-1,), WHOLE),  # the task sequence sets the epochs; a step or time limit stops mid-task
    "max_time": ((None,), WHOLE),
    "val_check_interval": ((None, 1.0), ONCE),
    "gradient_clip_val": ((None, 0, 0.0), MANUAL),
    "accumulate_grad_batches": ((1,), MANUAL),
}


def check_config(cfg: dict[str, Any]) -> None:
    """Every check of this module on the parsed config of one subcommand (a plain mapping)."""
    for section in ("model", "data", "trainer"):
        value = cfg.get(section)
        require(value is None or isinstance(value, dict), section, value, "a mapping of its fields")
    require_finite(cfg, "")
    for field in ("model.method", "model.optimizer"):
        check_nulls(cfg, field)
    check_seeds(cfg)
    check_trainer(cfg.get("trainer") or {})
    check_memory(cfg, available_bytes())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_nulls(cfg: dict[str, Any], field: str) -> None:
    """Refuse ``null`` for an ``init_args`` entry of the class configured at ``field`` whose type
    does not admit None (the parser lets a null through to a subclass's arguments)."""
    section: Any = cfg
    for key in field.split("."):
        section = section.get(key) if isinstance(section, dict) else None
    if not isinstance(section, dict) or not isinstance(section.get("class_path"), str):
        return
    module, _, name = section["class_path"].rpartition(".")
    try:
        hints = init_type_hints(getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError, NameError, TypeError):  # the parser names a bad class
        return
    for arg, value in (section.get("init_args") or {}).items():
        hint = hints.get(arg)
        if value is None and hint is not None and hint is not Any and type(None) not in typing.get_args(hint):
            require(
                False, f"{field}.init_args.{arg}", value, f"a {getattr(hint, '__name__', hint)}, not null"
            )


def check_seeds(cfg: dict[str, Any], field: str = "") -> None:
    """``seed_everything`` in Lightning's range; every other field named ``seed`` or ``*_seed``
    (data, methods) an integer in [0, 2**63 - 1], so that seed arithmetic stays in the range of
    ``torch.Generator.manual_seed``."""
    for key, value in cfg.items():
        name = f"{field}.{key}" if field else str(key)
        if isinstance(value, dict):
            check_seeds(value, name)
        elif name == "seed_everything":
            require(
                isinstance(value, bool) or value is None or (_is_int(value) and 0 <= value <= SEED_MAX),
                name,
                value,
                f"true, false or an integer in [0, {SEED_MAX}]",
            )
        elif key == "seed" or str(key).endswith("_seed"):
            require_seed(value, name)


def check_trainer(trainer: dict[str, Any]) -> None:
    """Refuse trainer settings that would train or evaluate part of a task, evaluate mid-task, or
    that Lightning refuses with the module's manual optimization (only once training started)."""
    every = trainer.get("log_every_n_steps", 50)
    ok = every is None or (_is_int(every) and every >= 1)
    require(ok, "trainer.log_every_n_steps", every, "an integer >= 1 (optimizer steps)")
    for name, (allowed, why) in FIXED_TRAINER.items():
        value = trainer.get(name, allowed[0])
        if not any(value == ok and type(value) is type(ok) for ok in allowed):
            require(
                False, f"trainer.{name}", value, f"{' or '.join(json.dumps(ok) for ok in allowed)}: {why}"
            )


def available_bytes() -> int:
    """Memory this process can still have: ``MemAvailable`` of /proc/meminfo, else physical RAM."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def network_parameters(sizes: list[int]) -> int:
    """Weights and biases of the MLP ``sizes[0] - ... - sizes[-1]``."""
    return sum((a + 1) * b for a, b in itertools.pairwise(sizes))


def check_memory(cfg: dict[str, Any], available: int) -> None:
    """Refuse, before allocating, sizes whose tensors alone exceed the available memory: an MLP's
    (``model.net.init_args``: input_size, hidden_sizes, num_classes), A's, the synthetic images."""
    model, data = cfg.get("model") or {}, cfg.get("data") or {}
    net: dict[str, Any] = model["net"] if isinstance(model.get("net"), dict) else {}
    args = net.get("init_args") or {}
    hidden = args.get("hidden_sizes") or []
    sizes = [args.get("input_size"), *hidden, args.get("num_classes")]
    if isinstance(hidden, list) and all(_is_int(s) and s >= 1 for s in sizes):
        need = BYTES_PER_PARAMETER * network_parameters(sizes)
        widest = max(range(len(sizes)), key=lambda i: sizes[i])
        field = "input_size" if widest == 0 else "num_classes" if widest == len(sizes) - 1 else "hidden_sizes"
        value = sizes[widest] if field != "hidden_sizes" else hidden
        what = "the network (weights, gradients, Adam's moments)"
        _fits(need, available, f"model.net.init_args.{field}", value, what)
    tasks = data.get("num_tasks", 10)
    if _is_int(tasks) and tasks >= 1:  # the accuracy matrices (float64)
        _fits(16 * tasks * tasks, available, "data.num_tasks", tasks, "the accuracy matrices")
    n = data.get("synthetic_size", 0)
    if data.get("source") == "synthetic" and _is_int(n) and n >= 1:
        _fits(4 * 785 * (n + 2 * max(1, n // 4)), available, "data.synthetic_size", n, "the synthetic images")


def _fits(need: int, available: int, field: str, value: Any, what: str) -> None:
    if need > available:
        raise ConfigError(
            f"{field}={value!r} is not allowed; use a smaller value: {what} need {_gib(need)}, "
            f"more than the {_gib(available)} of memory available"
        )
