"""A class's constructor arguments as the config parser sees them.

jsonargparse follows ``**kwargs`` that a constructor forwards to ``super().__init__`` into its
base's signature (``TwoAttractorSticky`` takes ``a2, gamma2`` and forwards the rest to
``StickyGradient``, so its YAML stays flat). The readers of signatures here (search spaces,
HParams columns, the null check) follow the same chain through these two functions.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator
from typing import Any


def concrete_subclasses(base: type, prefix: str) -> list[type]:
    """Every non-abstract subclass of ``base``, at any depth, defined in a module whose name starts
    with ``prefix`` (the classes a config may name: methods, task families), sorted by name."""
    found: list[type] = []
    todo: list[type] = list(base.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith(prefix) and not inspect.isabstract(cls):
            found.append(cls)
    return sorted(set(found), key=lambda c: c.__name__)


def _constructors(cls: type) -> Iterator[Callable[..., Any]]:
    """``cls``'s own ``__init__``, then its bases' as long as each forwards ``**kwargs``."""
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        init = vars(klass)["__init__"]
        yield init
        if not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(init).parameters.values()):
            return


def init_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The named constructor arguments of ``cls``, its own first, then those it forwards."""
    out: dict[str, inspect.Parameter] = {}
    for init in _constructors(cls):
        for name, p in inspect.signature(init).parameters.items():
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                out.setdefault(name, p)
    return out


def init_type_hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of :func:`init_parameters` (``typing.get_type_hints`` per class)."""
    hints: dict[str, Any] = {}
    for init in _constructors(cls):
        hints = typing.get_type_hints(init) | hints
    return hints
