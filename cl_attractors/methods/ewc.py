"""Elastic Weight Consolidation (Kirkpatrick et al., 2017), separate or online."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from cl_attractors.errors import require
from cl_attractors.methods import kernels
from cl_attractors.methods.base import CLMethod, ParamSelection
from cl_attractors.methods.kernels import Compile, Kernel, compile_wanted
from cl_attractors.methods.maths import FISHER_ESTIMATORS, FisherEstimator, fisher_diagonal


class EWC(CLMethod):
    """EWC: the gradient of ``lam/2 * sum_k F_k (theta - theta*_k)^2`` is added to ``p.grad``.

    The per-step cost is O(1) in the number of tasks: buffers keep ``fisher_sum = sum_k F_k`` and
    ``anchor_sum = sum_k F_k * theta*_k`` (online mode: ``F = gamma_online F_old + F_new``, one
    anchor, ``anchor_sum = F * theta*``). The Fisher diagonal of a finished task is estimated on
    ``fisher_samples`` of its training examples drawn with the method's own generator, seeded
    by ``seed + task`` (the global RNG is untouched). Logs ``fisher_mean`` / ``fisher_max`` of
    the new task's Fisher.

    Args:
        lam: penalty strength (the paper: 1000).
        fisher: ``"empirical"``, ``"true"`` or ``"batched"`` (see ``maths.fisher_diagonal``).
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

    counters = ("tasks_consolidated",)

    def __init__(
        self,
        lam: float = 1000.0,
        fisher: FisherEstimator = "empirical",
        mode: Literal["separate", "online"] = "separate",
        gamma_online: float = 1.0,
        fisher_samples: int = 1000,
        fisher_chunk: int = 32,
        seed: int = 0,
        compile: Compile = False,
        params: ParamSelection = "all",
        layers: list[int] | None = None,
    ) -> None:
        super().__init__(params=params, layers=layers)
        require(lam >= 0, "method.lam", lam, "a number >= 0")
        require(fisher in FISHER_ESTIMATORS, "method.fisher", fisher, f"one of {list(FISHER_ESTIMATORS)}")
        require(mode in ("separate", "online"), "method.mode", mode, "'separate' or 'online'")
        require(0 <= gamma_online <= 1, "method.gamma_online", gamma_online, "a number in [0, 1]")
        require(fisher_samples >= 1, "method.fisher_samples", fisher_samples, "an integer >= 1")
        require(fisher_chunk >= 1, "method.fisher_chunk", fisher_chunk, "an integer >= 1")
        kernels.check_compile(compile)
        self.lam, self.fisher, self.mode, self.gamma_online = lam, fisher, mode, gamma_online
        self.fisher_samples, self.fisher_chunk, self.seed = fisher_samples, fisher_chunk, seed
        self.compile = compile
        self.tasks_consolidated = 0

    def setup_state(self, targets: list[nn.Parameter]) -> None:
        for i, p in enumerate(targets):
            self.register_buffer(f"fisher_sum{i}", torch.zeros_like(p))
            self.register_buffer(f"anchor_sum{i}", torch.zeros_like(p))
        self.pull = Kernel(kernels.pull_expr, kernels.pull_, compile_wanted(self.compile, targets))

    @torch.no_grad()
    def on_before_optimizer_step(self, module: Any, optimizer: torch.optim.Optimizer) -> None:
        if self.tasks_consolidated == 0:
            return
        params = self.targets
        self.pull(
            [p.grad for p in params],
            params,
            self.per_target("fisher_sum"),
            self.per_target("anchor_sum"),
            self.lam,
        )

    def on_task_end(self, module: Any, task: int, datamodule: Any) -> dict[str, float]:
        generator = torch.Generator().manual_seed(self.seed + task)
        x, y = module.batch_to_device(datamodule.train_sample(task, self.fisher_samples, generator))
        names = {id(p): n for n, p in module.net.named_parameters()}
        fishers = list(
            fisher_diagonal(
                module.net,
                {names[id(p)]: p for p in self.targets},
                x,
                y,
                self.fisher,
                chunk_size=self.fisher_chunk,
            ).values()
        )
        with torch.no_grad():
            self._consolidate(fishers)
            total = sum(f.sum() for f in fishers) / sum(f.numel() for f in fishers)
            peak = torch.stack([f.max() for f in fishers]).max()
        self.tasks_consolidated += 1
        return {"fisher_mean": float(total), "fisher_max": float(peak)}

    def _consolidate(self, fishers: list[Tensor]) -> None:
        """Add the new task's penalty to the accumulated sums."""
        fisher_sums, anchor_sums = self.per_target("fisher_sum"), self.per_target("anchor_sum")
        params = [p.detach() for p in self.targets]
        if self.mode == "online":
            torch._foreach_mul_(fisher_sums, self.gamma_online)
            torch._foreach_add_(fisher_sums, fishers)
            torch._foreach_copy_(anchor_sums, torch._foreach_mul(fisher_sums, params))
        else:
            torch._foreach_add_(fisher_sums, fishers)
            torch._foreach_addcmul_(anchor_sums, fishers, params)
