"""Metaplasticity (Laborieux et al., 2021, Nat. Commun.): updates towards zero shrink with |w|."""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from cl_attractors.errors import require, require_finite
from cl_attractors.methods.base import CLMethod, MethodContext, ParamSelection
from cl_attractors.methods.baseline_formulas import metaplastic_, metaplastic_gate
from cl_attractors.methods.kernels import Compile, Kernel, check_compile, compile_wanted


def gate_expr(params: list[Tensor], olds: list[Tensor], m: float | Tensor) -> None:
    """The fused form: ``w = old + metaplastic_gate(old, w - old, m)`` for each target."""
    for w, old in zip(params, olds):
        w.copy_(old + metaplastic_gate(old, w - old, m))


class Metaplasticity(CLMethod):
    """Laborieux et al.'s metaplastic Adam on a real-valued network: the optimizer's update of a
    weight is multiplied by ``1 - tanh^2(m |w|)`` where it moves the weight towards zero
    (``sgn(w) * update < 0``), and left alone where it moves it away.

    Their ``Adam_meta`` gates the hidden weights of a binarized network and, for their
    full-precision runs (Fig. 2f), the real weights themselves, in the same way: that is what this
    class does, on the weights only (their biases are never gated). Their test is on the sign of
    Adam's first moment; this class gates the step Adam actually took, ``w_new - w_old``, whose
    sign is the opposite of that moment's (see ``baseline_formulas.metaplastic_gate``): the same
    test for Adam, and a defined one for any other optimizer. A weight far from zero hardly moves
    back towards it: importance is read from the magnitude, no state across tasks.

    Args:
        m: the metaplasticity strength (their permuted-MNIST runs: 1.35, for weights of order 1;
            this MLP's weights are ~0.03, so m is searched: configs/search/metaplasticity.yaml).
        compile: fuse the gate with ``torch.compile``: ``true``, ``false`` or ``"auto"``. Off by
            default: on a CPU the compile time (tens of seconds a run) outweighs the few
            elementwise passes a step it saves.
        params: ``"weights"`` (theirs) or ``"all"``.
        layers: linear-layer indices (``None`` = all).
    """

    hyperparameters = ("m", "params")

    def __init__(
        self,
        m: float,
        compile: Compile = False,
        params: ParamSelection = "weights",
        layers: list[int] | None = None,
    ) -> None:
        super().__init__(params=params, layers=layers)
        require_finite(m, "method.m")
        require(m >= 0, "method.m", m, "a number >= 0")
        check_compile(compile)
        self.m, self.compile_mode = m, compile

    def setup_state(self, targets: list[Tensor]) -> None:
        for i, p in enumerate(targets):
            for name in ("old", "u", "f"):
                self.register_buffer(f"_{name}{i}", torch.zeros_like(p), persistent=False)
        fused = compile_wanted(self.compile_mode, targets)
        self._kernel = Kernel(functools.partial(gate_expr, m=self.m), self._gate_eager, fused)

    @torch.no_grad()
    def on_before_optimizer_step(self, ctx: MethodContext, optimizer: torch.optim.Optimizer) -> None:
        torch._foreach_copy_(self.per_target("_old"), self.targets)

    @torch.no_grad()
    def on_after_optimizer_step(self, ctx: MethodContext, optimizer: torch.optim.Optimizer) -> None:
        self._kernel(self.targets, self.per_target("_old"))

    def _gate_eager(self, params: list[Tensor], olds: list[Tensor]) -> None:
        """The eager twin of :func:`gate_expr` (preallocated scratch)."""
        for w, old, u, f in zip(params, olds, self.per_target("_u"), self.per_target("_f")):
            metaplastic_(w, old, u, f, self.m)
