"""The sticky gradient with two attractors: a richer plasticity function (the paper's "broader
class of plasticity priors").

f has a dip at each attractor, each with its own width (:func:`~cl_attractors.methods.formulas.plasticity2`):

    f(w) = f_min + (lam - f_min) (1 - exp(-gamma (w - a1)^2)) (1 - exp(-gamma2 (w - a2)^2))

and the gate slows a step where it moves ``w`` away from the attractor nearer to it
(:func:`~cl_attractors.methods.formulas.nearest`). Everything else is :class:`StickyGradient`'s
(L1, decoupled or not, smart init, statistics); a2 far from every weight gives it back.
"""

from __future__ import annotations

import torch

from cl_attractors.errors import require, require_finite
from cl_attractors.methods.base import MethodContext, ParamSelection
from cl_attractors.methods.formulas import TwoDips
from cl_attractors.methods.kernels import Compile
from cl_attractors.methods.sticky import ApplyTo, StickyGradient


class TwoAttractorSticky(StickyGradient):
    """:class:`StickyGradient` whose f has a second attractor ``a2`` of width parameter ``gamma2``.

    Args: those of :class:`StickyGradient`, plus ``a2`` (the second attractor) and ``gamma2``
    (its dip's width parameter; larger = narrower). ``on_task_end`` adds ``dip2_fraction``
    (targets with ``|w - a2| < 1/sqrt(gamma2)``) to ``dip_fraction`` (the same around a1).
    """

    hyperparameters = (*StickyGradient.hyperparameters, "a2", "gamma2")

    def __init__(
        self,
        a1: float,
        a2: float,
        mu: float,
        sigma: float,
        gamma: float,
        gamma2: float,
        zeta: float,
        lam: float,
        sticky: bool,
        l1: bool,
        smart_init: bool,
        init_params: ParamSelection = "all",
        f_min: float = 0.0,
        apply_to: ApplyTo = "gradient",
        l1_apply_to: ApplyTo = "gradient",
        stats_every: int = 50,
        compile: Compile = "auto",
        params: ParamSelection = "all",
        layers: list[int] | None = None,
    ) -> None:
        super().__init__(
            a1, mu, sigma, gamma, zeta, lam, sticky, l1, smart_init, init_params, f_min, apply_to,
            l1_apply_to, stats_every, compile, params, layers,
        )  # fmt: skip
        require_finite({"a2": a2, "gamma2": gamma2}, "method")
        require(gamma2 > 0, "method.gamma2", gamma2, "a number > 0")
        self.use_plasticity(TwoDips(a1=a1, a2=a2, lam=lam, gamma=gamma, gamma2=gamma2, f_min=f_min))
        self.a2, self.gamma2 = a2, gamma2

    def on_task_end(self, ctx: MethodContext) -> dict[str, float]:
        with torch.no_grad():
            radius = self.gamma2**-0.5
            inside = sum(((p - self.a2).abs() < radius).sum() for p in self.targets)
            near_a2 = float(inside) / sum(p.numel() for p in self.targets)
        return {**super().on_task_end(ctx), "dip2_fraction": near_a2}
