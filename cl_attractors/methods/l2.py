"""L2 towards the previous task's weights: the quadratic penalty with unit importance."""

from __future__ import annotations

import torch
from torch import Tensor

from cl_attractors.errors import require, require_finite
from cl_attractors.methods.base import MethodContext, ParamSelection
from cl_attractors.methods.kernels import Compile
from cl_attractors.methods.penalty import QuadraticPenalty


class L2(QuadraticPenalty):
    """L2: the penalty ``lam * sum (theta - theta*)^2``, ``theta*`` the parameters at the end of
    the latest task (one anchor, the importance 1 replaced rather than summed: GT-RIPL's ``L2``
    with ``online_reg``, as in Hsu et al., 2018). The pull is :class:`QuadraticPenalty`'s with
    ``scale = 2 lam``, online mode and decay 0.

    Args:
        lam: penalty strength (Hsu et al.'s permuted-MNIST value: 0.02, their ``reg_coef``, whose
            penalty has no 1/2 either).
        compile: fuse the pull with ``torch.compile``: ``true``, ``false`` or ``"auto"``.
        params: ``"all"`` or ``"weights"``.
        layers: linear-layer indices (``None`` = all).
    """

    hyperparameters = ("lam",)

    def __init__(
        self,
        lam: float,
        compile: Compile = False,
        params: ParamSelection = "all",
        layers: list[int] | None = None,
    ) -> None:
        super().__init__(2.0 * lam, "online", 0.0, compile, params, layers)
        require_finite(lam, "method.lam")
        require(lam >= 0, "method.lam", lam, "a number >= 0")
        self.lam = lam

    def importance(self, ctx: MethodContext) -> list[Tensor]:
        return [torch.ones_like(p) for p in self.targets]
