"""Elastic Weight Consolidation (Kirkpatrick et al., 2017), separate or online."""

from __future__ import annotations

from torch import Tensor

from cl_attractors.errors import require, require_finite, require_seed
from cl_attractors.methods.base import MethodContext, ParamSelection
from cl_attractors.methods.importance import FISHER_ESTIMATORS, FisherEstimator, fisher_diagonal
from cl_attractors.methods.kernels import Compile
from cl_attractors.methods.penalty import Mode, QuadraticPenalty


class EWC(QuadraticPenalty):
    """EWC: the gradient of ``lam/2 * sum_k F_k (theta - theta*_k)^2`` is added to ``p.grad``.

    The importance is the diagonal Fisher of the finished task, estimated on ``fisher_samples``
    of its training examples drawn with the method's own generator, seeded by ``seed + task``
    (the global RNG is untouched), on the outputs its training loss counted
    (``ctx.output_mask(task, task)``: a head per task, the classes seen so far; else all).
    Online mode: ``F = gamma_online F_old + F_new``, one anchor.
    The sums, the O(1) pull and the consolidation are :class:`QuadraticPenalty`'s. Logs
    ``fisher_mean`` / ``fisher_max`` of the new task's Fisher.

    Args:
        lam: penalty strength (the paper: 1000).
        fisher: ``"empirical"``, ``"true"`` or ``"batched"`` (see ``importance.fisher_diagonal``).
        mode: ``"separate"`` (one penalty per task) or ``"online"``.
        gamma_online: decay of the old Fisher in online mode.
        fisher_samples: training examples per Fisher estimate.
        fisher_chunk: rows per vmap chunk of per-sample gradients (bounds memory).
        seed: seed of the method's sample generator.
        compile: fuse the pull into one pass with ``torch.compile``: ``true``, ``false`` or
            ``"auto"`` (when the targets are large; see ``kernels.compile_wanted``). Off by
            default: the pull is memory-bound arithmetic, and on a CPU the two eager foreach
            passes measured as fast as the fused one (``benchmarks/bench_methods.py``).
        params: ``"all"`` or ``"weights"``.
        layers: linear-layer indices (``None`` = all).
    """

    hyperparameters = ("lam", "fisher", "mode", "fisher_samples", "seed")
    weight_name = "fisher_sum"
    stat = "fisher"

    def __init__(
        self,
        lam: float,
        fisher: FisherEstimator = "empirical",
        mode: Mode = "separate",
        gamma_online: float = 1.0,
        fisher_samples: int = 1000,
        fisher_chunk: int = 32,
        seed: int = 0,
        compile: Compile = False,
        params: ParamSelection = "all",
        layers: list[int] | None = None,
    ) -> None:
        super().__init__(lam, mode, gamma_online, compile, params, layers)
        require_finite({"lam": lam, "gamma_online": gamma_online}, "method")
        require(lam >= 0, "method.lam", lam, "a number >= 0")
        require(0 <= gamma_online <= 1, "method.gamma_online", gamma_online, "a number in [0, 1]")
        require_seed(seed, "method.seed")
        require(fisher in FISHER_ESTIMATORS, "method.fisher", fisher, f"one of {list(FISHER_ESTIMATORS)}")
        require(fisher_samples >= 1, "method.fisher_samples", fisher_samples, "an integer >= 1")
        require(fisher_chunk >= 1, "method.fisher_chunk", fisher_chunk, "an integer >= 1")
        batched = fisher != "batched" or fisher_samples >= fisher_chunk  # one full mini-batch at least
        require(batched, "method.fisher_samples", fisher_samples, f"at least fisher_chunk={fisher_chunk}")
        self.lam, self.fisher, self.gamma_online = lam, fisher, gamma_online
        self.fisher_samples, self.fisher_chunk, self.seed = fisher_samples, fisher_chunk, seed

    def importance(self, ctx: MethodContext) -> list[Tensor]:
        x, y = self.draw(ctx, self.fisher_samples, self.seed)
        targets, mask = self.named_targets(ctx.net), ctx.output_mask(ctx.task, ctx.task)
        fisher = fisher_diagonal(ctx.net, targets, x, y, self.fisher, self.fisher_chunk, mask=mask)
        return list(fisher.values())
