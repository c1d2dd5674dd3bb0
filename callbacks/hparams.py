"""One HParams schema for every run and trial: TensorBoard takes the HParams table's columns from
one run of a log directory, so every run logs the same keys with the same types.

The keys: the method's class and every argument of every method (``method.<arg>``, NaN or "—"
where a run's method has no such argument), the data settings (``data.<arg>``, the task family's
class and arguments), the network, the optimizer and lr, the seed, and the grid and variant that
made the run (``grid.json`` in the run directory; "—" for a plain fit). Plumbing that does not
change what is learnt (``compile``, chunk sizes, folders) is left out. Numbers stay numbers.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import pkgutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cl_attractors.signatures import concrete_subclasses, init_parameters

NONE = "—"
PLUMBING = {
    "compile",
    "stats_every",
    "fisher_chunk",
    "data_dir",
    "download",
    "eval_batch_size",
    "steps_per_chunk",
    "steps_per_batch",
}
NUMBER_TYPES = {"float", "int", "int | None", "float | None", "float | Tensor"}


def kinds(cls: type) -> dict[str, str]:
    """Each constructor argument of ``cls`` as ``number`` or ``text`` (plumbing left out)."""
    out = {}
    for name, p in init_parameters(cls).items():
        if name in PLUMBING:
            continue
        note = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        default = p.default
        numeric = note in NUMBER_TYPES or (
            isinstance(default, int | float) and not isinstance(default, bool) and note != "bool"
        )
        out[name] = "number" if numeric else "text"
    return out


def method_classes() -> list[type]:
    """Every concrete method of :mod:`cl_attractors.methods` (its modules imported first)."""
    import cl_attractors.methods
    from cl_attractors.methods.base import CLMethod

    for info in pkgutil.iter_modules(cl_attractors.methods.__path__):
        importlib.import_module(f"cl_attractors.methods.{info.name}")
    return concrete_subclasses(CLMethod, "cl_attractors.methods.")


def value(v: Any, kind: str) -> float | str:
    """A value as its column's type: a number (NaN when absent) or a short text ("—" when absent)."""
    if kind == "number":
        return math.nan if v is None or isinstance(v, bool) else float(v)
    if v is None:
        return NONE
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return v.rsplit(".", 1)[-1] if v.startswith(("cl_attractors.", "torch.")) else v
    return json.dumps(v)


def _short(class_path: Any, absent: str = "Vanilla") -> str:
    return str(class_path or absent).rsplit(".", 1)[-1]


def class_columns(
    prefix: str, spec: dict[str, Any] | None, classes: Iterable[type], absent: str
) -> dict[str, float | str]:
    """``prefix`` (the class of ``spec``, ``absent`` without one) and ``prefix.<arg>`` for every
    argument of every class in ``classes`` (NaN or "—" where the run's class has no such argument)."""
    spec = spec or {}
    given = dict(spec.get("init_args") or {})
    mine = _short(spec.get("class_path"), absent)
    out: dict[str, float | str] = {prefix: mine}
    columns: dict[str, str] = {}
    defaults: dict[str, Any] = {}
    for cls in sorted(classes, key=lambda c: c.__name__):
        for name, kind in kinds(cls).items():
            columns.setdefault(name, kind)
            if cls.__name__ == mine:
                default = init_parameters(cls)[name].default
                defaults[name] = None if default is inspect.Parameter.empty else default
    for name, kind in sorted(columns.items()):
        own = name in defaults
        out[f"{prefix}.{name}"] = value(given.get(name, defaults.get(name)) if own else None, kind)
    return out


def method_columns(method: dict[str, Any] | None, classes: Iterable[type]) -> dict[str, float | str]:
    """``method`` and ``method.<arg>`` for every argument of every class in ``classes``."""
    return class_columns("method", method, classes, "Vanilla")


def data_columns(
    data: dict[str, Any], data_class: type | None, families: Iterable[type] = ()
) -> dict[str, float | str]:
    """``data.<arg>`` of every datamodule argument; the family as its class and every argument of
    every family in ``families`` (one schema whatever family a run uses)."""
    columns = kinds(data_class) if data_class is not None else {}
    out: dict[str, float | str] = {}
    for name, kind in sorted(columns.items()):
        v = data.get(name)
        if isinstance(v, dict) and "class_path" in v:
            out.update(class_columns(f"data.{name}", v, families, NONE))
            continue
        out[f"data.{name}"] = value(v, kind)
    return out


def made_by(run_dir: str | Path | None) -> dict[str, str]:
    """``grid`` and ``variant`` from the run's ``grid.json`` ("—" for a plain fit)."""
    try:
        made = json.loads((Path(str(run_dir)) / "grid.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        made = {}
    return {"grid": str(made.get("grid") or NONE), "variant": str(made.get("variant") or NONE)}


def run_hparams(
    config: dict[str, Any],
    methods: Iterable[type],
    data_class: type | None,
    run_dir: str | Path | None,
    families: Iterable[type] = (),
) -> dict[str, float | str]:
    """The HParams row of a run from its resolved config (LightningCLI's, as a dict); ``families``:
    every task family the datamodule may hold."""
    model = config.get("model") or {}
    optimizer = model.get("optimizer") or {}
    net = model.get("net") or {}
    lr = (optimizer.get("init_args") or {}).get("lr")
    return {
        **made_by(run_dir),
        **method_columns(model.get("method"), methods),
        **data_columns(config.get("data") or {}, data_class, families),
        "net": _short(net.get("class_path")) if net else NONE,
        "net.hidden_sizes": value((net.get("init_args") or {}).get("hidden_sizes"), "text"),
        "optimizer": _short(optimizer.get("class_path")) if optimizer else NONE,
        "lr": value(lr, "number"),
        "seed": value(config.get("seed_everything"), "number"),
    }
