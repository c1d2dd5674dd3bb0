"""Memory Aware Synapses (Aljundi et al., 2018)."""

from __future__ import annotations

from torch import Tensor

from cl_attractors.errors import require, require_finite, require_seed
from cl_attractors.methods.base import MethodContext, ParamSelection
from cl_attractors.methods.importance import mas_importance
from cl_attractors.methods.kernels import Compile
from cl_attractors.methods.penalty import QuadraticPenalty


class MAS(QuadraticPenalty):
    """MAS: the penalty ``lam * sum Omega (theta - theta*)^2`` with an unsupervised importance.

    ``Omega`` of a finished task is ``mean_x |d ||f(x)||_2^2 / d theta|`` over ``samples`` of its
    training inputs (no labels; ``importance.mas_importance``), the norm over the outputs its
    training loss counted (``ctx.output_mask(task, task)``; else all), accumulated over tasks
    with one anchor at the latest parameters, as in the paper. Logs ``importance_mean`` / ``_max``.

    Args:
        lam: penalty strength (the paper and its code: 1).
        samples: training inputs per estimate, drawn with a generator seeded by ``seed + task``.
        chunk: rows per vmap chunk of per-sample gradients (bounds memory).
        seed: seed of the method's sample generator.
        compile: fuse the pull with ``torch.compile``: ``true``, ``false`` or ``"auto"``.
        params: ``"all"`` or ``"weights"``.
        layers: linear-layer indices (``None`` = all).
    """

    hyperparameters = ("lam", "samples", "seed")

    def __init__(
        self,
        lam: float,
        samples: int = 1000,
        chunk: int = 32,
        seed: int = 0,
        compile: Compile = False,
        params: ParamSelection = "all",
        layers: list[int] | None = None,
    ) -> None:
        super().__init__(2.0 * lam, "online", 1.0, compile, params, layers)
        require_finite(lam, "method.lam")
        require(lam >= 0, "method.lam", lam, "a number >= 0")
        require_seed(seed, "method.seed")
        require(samples >= 1, "method.samples", samples, "an integer >= 1")
        require(chunk >= 1, "method.chunk", chunk, "an integer >= 1")
        self.lam, self.samples, self.chunk, self.seed = lam, samples, chunk, seed

    def importance(self, ctx: MethodContext) -> list[Tensor]:
        x, _ = self.draw(ctx, self.samples, self.seed)
        targets, mask = self.named_targets(ctx.net), ctx.output_mask(ctx.task, ctx.task)
        return list(mas_importance(ctx.net, targets, x, self.chunk, mask=mask).values())
