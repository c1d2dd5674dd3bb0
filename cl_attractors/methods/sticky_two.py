"""The sticky gradient with two attractors: a richer plasticity function (the paper's "broader
class of plasticity priors").

f has a dip at each attractor, each with its own width (:func:`~cl_attractors.methods.formulas.plasticity2`):

    f(w) = f_min + (lam - f_min) (1 - exp(-gamma (w - a1)^2)) (1 - exp(-gamma2 (w - a2)^2))

and the gate slows a step where it moves ``w`` away from the attractor nearer to it
(:func:`~cl_attractors.methods.formulas.nearest`). Everything else is :class:`StickyGradient`'s
(L1, decoupled or not, smart init, statistics); a2 far from every weight gives it back.
"""

from __future__ import annotations

from typing import Any

import torch

from cl_attractors.errors import require, require_finite
from cl_attractors.methods.base import MethodContext
from cl_attractors.methods.formulas import TwoDips
from cl_attractors.methods.sticky import StickyGradient


class TwoAttractorSticky(StickyGradient):
    """:class:`StickyGradient` whose f has a second attractor ``a2`` of width parameter ``gamma2``.

    Args: ``a2`` (the second attractor) and ``gamma2`` (its dip's width parameter; larger =
    narrower), and, forwarded, those of :class:`StickyGradient` (flat in YAML as before: the
    parser follows ``**kwargs`` to the parent's signature, as ``signatures.init_parameters``
    does for our own readers). ``on_task_end`` adds ``dip2_fraction`` (targets with
    ``|w - a2| < 1/sqrt(gamma2)``) to ``dip_fraction`` (the same around a1).
    """

    hyperparameters = (*StickyGradient.hyperparameters, "a2", "gamma2")

    def __init__(self, a2: float, gamma2: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        require_finite({"a2": a2, "gamma2": gamma2}, "method")
        require(gamma2 > 0, "method.gamma2", gamma2, "a number > 0")
        phi = self.phi
        self.use_plasticity(TwoDips(phi.a1, a2, phi.lam, phi.gamma, gamma2, phi.f_min))
        self.a2, self.gamma2 = a2, gamma2

    def on_task_end(self, ctx: MethodContext) -> dict[str, float]:
        with torch.no_grad():
            radius = self.gamma2**-0.5
            inside = sum(((p - self.a2).abs() < radius).sum() for p in self.targets)
            near_a2 = float(inside) / sum(p.numel() for p in self.targets)
        return {**super().on_task_end(ctx), "dip2_fraction": near_a2}
