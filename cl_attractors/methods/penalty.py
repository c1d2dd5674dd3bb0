"""The quadratic penalty shared by EWC, SI and MAS: anchors, the per-step pull, consolidation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import torch
from torch import Tensor

from cl_attractors.errors import require
from cl_attractors.methods import formulas
from cl_attractors.methods.base import CLMethod, MethodContext, ParamSelection
from cl_attractors.methods.kernels import Compile, Kernel, check_compile, compile_wanted

Mode = Literal["separate", "online"]


class QuadraticPenalty(CLMethod, ABC):
    """The penalty ``scale/2 * sum_k Omega_k (theta - theta*_k)^2``, ``Omega_k`` the importance
    of each parameter for task k and ``theta*_k`` the parameters at the end of task k.

    A subclass says only how importance is computed (:meth:`importance`, called once at the end
    of each task). This base owns the rest. The per-step pull, the penalty's gradient added to
    ``p.grad``, is O(1) in the number of tasks: buffers keep the sums ``<weight_name> =
    sum_k Omega_k`` and ``anchor_sum = sum_k Omega_k theta*_k`` (``mode="online"``:
    ``Omega = decay Omega_old + Omega_new`` with one anchor, ``anchor_sum = Omega theta*``).
    Logs ``<stat>_mean`` and ``<stat>_max`` of the new task's importance.

    Args:
        scale: the pull's multiplier (EWC: lambda; ``2c`` for SI's ``c sum Omega (dtheta)^2``).
        mode: ``"separate"`` (one anchor per task) or ``"online"``.
        decay: decay of the old importance in online mode, in [0, 1] (EWC's ``gamma_online``;
            the subclass checks it under its own name).
        compile: fuse the pull into one pass with ``torch.compile``: ``true``, ``false`` or
            ``"auto"`` (when the targets are large; see ``kernels.compile_wanted``).
        params: ``"all"`` or ``"weights"``.
        layers: linear-layer indices (``None`` = all).
    """

    counters = ("tasks_consolidated",)
    weight_name = "importance"
    """Buffers ``<weight_name><i>`` hold ``sum_k Omega_k`` (named as in saved checkpoints)."""
    stat = "importance"
    """Prefix of the logged statistics."""

    def __init__(
        self,
        scale: float,
        mode: Mode = "separate",
        decay: float = 1.0,
        compile: Compile = False,
        params: ParamSelection = "all",
        layers: list[int] | None = None,
    ) -> None:
        super().__init__(params=params, layers=layers)
        require(mode in ("separate", "online"), "method.mode", mode, "'separate' or 'online'")
        check_compile(compile)
        self.scale, self.mode, self.decay, self.compile_mode = scale, mode, decay, compile
        self.tasks_consolidated = 0

    @abstractmethod
    def importance(self, ctx: MethodContext) -> list[Tensor]:
        """The importance ``Omega`` of each target for the task that just ended (``ctx.task``)."""

    def setup_state(self, targets: list[Tensor]) -> None:
        for i, p in enumerate(targets):
            self.register_buffer(f"{self.weight_name}{i}", torch.zeros_like(p))
            self.register_buffer(f"anchor_sum{i}", torch.zeros_like(p))
        fused = compile_wanted(self.compile_mode, targets)
        self.step_kernel = Kernel(formulas.pull_expr, formulas.pull_, fused)

    # ---- hooks ------------------------------------------------------------------------------
    @torch.no_grad()
    def on_before_optimizer_step(self, ctx: MethodContext, optimizer: torch.optim.Optimizer) -> None:
        if self.tasks_consolidated == 0:
            return
        params = self.targets
        self.step_kernel(
            [p.grad for p in params],
            params,
            self.per_target(self.weight_name),
            self.per_target("anchor_sum"),
            self.scale,
        )

    def on_task_end(self, ctx: MethodContext) -> dict[str, float]:
        new = self.importance(ctx)
        with torch.no_grad():
            self._consolidate(new)
        self.tasks_consolidated += 1
        return self.summary(new)

    # ---- helpers ----------------------------------------------------------------------------
    def _consolidate(self, new: list[Tensor]) -> None:
        """Add the new task's penalty to the accumulated sums."""
        weight_sums, anchor_sums = self.per_target(self.weight_name), self.per_target("anchor_sum")
        params = [p.detach() for p in self.targets]
        if self.mode == "online":
            torch._foreach_mul_(weight_sums, self.decay)
            torch._foreach_add_(weight_sums, new)
            torch._foreach_copy_(anchor_sums, torch._foreach_mul(weight_sums, params))
        else:
            torch._foreach_add_(weight_sums, new)
            torch._foreach_addcmul_(anchor_sums, new, params)

    @torch.no_grad()
    def summary(self, importance: list[Tensor]) -> dict[str, float]:
        """``<stat>_mean`` and ``<stat>_max`` over all targets of ``importance``."""
        total = sum(t.sum() for t in importance) / sum(t.numel() for t in importance)
        peak = torch.stack([t.max() for t in importance]).max()
        return {f"{self.stat}_mean": float(total), f"{self.stat}_max": float(peak)}

    @staticmethod
    def draw(ctx: MethodContext, n: int, seed: int) -> tuple[Tensor, Tensor]:
        """``n`` training examples of the task that just ended, drawn with a generator seeded by
        ``seed + task`` (the global RNG is untouched)."""
        return ctx.sample(ctx.task, n, torch.Generator().manual_seed(seed + ctx.task))
