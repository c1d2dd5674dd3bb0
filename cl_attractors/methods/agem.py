"""Averaged Gradient Episodic Memory (Chaudhry et al., 2019)."""

from __future__ import annotations

import torch
from torch import Tensor

from cl_attractors.methods.base import CLMethod, DataFacts, MethodContext, ParamSelection
from cl_attractors.methods.baseline_formulas import agem_project_
from cl_attractors.methods.memory import EpisodicMemory
from cl_attractors.methods.replay import check_memory, check_memory_fits, memory_loss


class AGEM(CLMethod):
    """A-GEM: from the second task on, the step's gradient ``g`` is projected when it conflicts
    with the gradient ``g_ref`` of the loss on ``ref_batch_size`` examples drawn from an
    :class:`EpisodicMemory` of ``memory_size`` examples (each on its own task's outputs:
    :func:`~cl_attractors.methods.replay.memory_loss`):
    ``g <- g - (g . g_ref) / (g_ref . g_ref) g_ref`` where ``g . g_ref < 0``
    (``baseline_formulas.agem_project_``; dot products over all targets at once, no host sync).
    Logs ``projected_fraction``: the task's steps whose gradient was projected.

    Args:
        memory_size: ``M``, examples held in total, equal shares of the tasks seen.
        ref_batch_size: memory examples per reference gradient (A-GEM's code: 256 on permuted
            MNIST; all of the memory when it holds fewer).
        seed: seed of the memory's generators.
        params: ``"all"`` (A-GEM projects the whole gradient) or ``"weights"``.
        layers: linear-layer indices (``None`` = all).
    """

    counters = ("draws",)
    hyperparameters = ("memory_size", "ref_batch_size", "seed")
    projected: Tensor  # a buffer: [projected steps, steps with a reference gradient] of the task

    def __init__(
        self,
        memory_size: int,
        ref_batch_size: int = 256,
        seed: int = 0,
        params: ParamSelection = "all",
        layers: list[int] | None = None,
    ) -> None:
        super().__init__(params=params, layers=layers)
        check_memory(memory_size, ref_batch_size, seed, "ref_batch_size")
        self.memory_size, self.ref_batch_size, self.seed = memory_size, ref_batch_size, seed
        self.memory = EpisodicMemory(memory_size, seed)
        self.register_buffer("projected", torch.zeros(2))
        self.draws = 0

    def check_data(self, data: DataFacts) -> None:
        check_memory_fits(self.memory_size, data)

    def on_before_optimizer_step(self, ctx: MethodContext, optimizer: torch.optim.Optimizer) -> None:
        if self.memory.filled == 0:
            return
        with torch.enable_grad():
            ref_loss = memory_loss(ctx, self.memory, self.ref_batch_size, self.draws)
            refs = torch.autograd.grad(ref_loss, self.targets)
        self.draws += 1
        with torch.no_grad():
            conflict = agem_project_([p.grad for p in self.targets], list(refs))  # type: ignore[misc]
            self.projected += torch.stack([conflict.to(self.projected), torch.ones_like(self.projected[0])])

    def on_task_end(self, ctx: MethodContext) -> dict[str, float]:
        projected, steps = self.projected.tolist()
        self.projected.zero_()
        self.memory.add_task(ctx.task, ctx.sample)
        return {"projected_fraction": projected / steps} if steps else {}
