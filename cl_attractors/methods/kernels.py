"""The machinery of the per-step kernels: a method's ``compile`` setting and :class:`Kernel`.

A per-step kernel has two forms built from :mod:`cl_attractors.methods.formulas`: a fused one
(pure expressions that ``torch.compile`` turns into one pass per tensor) and an eager in-place
twin (``torch._foreach_*`` ops or writes into preallocated scratch: no large allocation per
step). :class:`Kernel` picks one. No Python loop over elements, no host sync.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from cl_attractors.errors import require

Compile = bool | str
"""``True``, ``False`` or ``"auto"``; typed loosely so that the method's own check, not the
parser, rejects anything else (with the one-line error naming ``method.compile``)."""

AUTO_COMPILE_MIN_NUMEL = 1 << 16
"""``compile: auto`` compiles when the method's targets hold at least this many elements."""


def check_compile(compile: Compile) -> None:
    """Reject a ``compile`` setting other than true, false or ``"auto"`` (one-line error)."""
    require(compile in (True, False, "auto"), "method.compile", compile, "true, false or 'auto'")


def compile_wanted(compile: Compile, targets: Sequence[Tensor]) -> bool:
    """Whether a method's ``compile`` setting asks for compiled kernels on these targets.

    ``auto``: yes for models big enough that the per-step pass matters (the paper's MLP has
    1.6 M weights); small ones stay eager and skip the compile time.
    """
    if compile == "auto":
        return sum(t.numel() for t in targets) >= AUTO_COMPILE_MIN_NUMEL
    return bool(compile)


class Kernel:
    """A per-step kernel: ``torch.compile(fused)`` when ``compiled``, else ``eager``.

    ``fused`` is a pure expression that inductor turns into one pass per tensor; ``eager`` is
    its in-place twin (same results up to float rounding). If compiling fails (no C++ compiler,
    an unsupported backend) on the first call, the kernel warns once and stays eager: compile
    failures happen before anything is written, so that call is simply re-run eagerly.

    Static shapes and one compile worker: inductor's pool of compile workers otherwise
    competes for the CPU cores with training long after compilation on small machines.
    """

    def __init__(self, fused: Callable[..., Any], eager: Callable[..., Any], compiled: bool) -> None:
        self.eager = eager
        self.fused = torch.compile(fused, dynamic=False, options={"compile_threads": 1}) if compiled else None
        self._proven = False

    @property
    def compiled(self) -> bool:
        """Whether calls go through the compiled kernel."""
        return self.fused is not None

    def __call__(self, *args: Any) -> Any:
        if self.fused is None:
            return self.eager(*args)
        if self._proven:
            return self.fused(*args)
        try:
            out = self.fused(*args)
        except Exception as err:
            warnings.warn(
                f"torch.compile failed ({type(err).__name__}: "
                f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}); "
                "this per-step kernel runs eagerly (set the method's compile: false to silence)",
                RuntimeWarning,
                stacklevel=2,
            )
            self.fused = None
            return self.eager(*args)
        self._proven = True
        return out
