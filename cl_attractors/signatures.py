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
