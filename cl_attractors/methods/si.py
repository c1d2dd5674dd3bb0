"""Synaptic Intelligence (Zenke, Poole and Ganguli, 2017)."""

from __future__ import annotations

import torch
from torch import Tensor

from cl_attractors.errors import require, require_finite
from cl_attractors.methods import formulas
from cl_attractors.methods.base import MethodContext, ParamSelection
from cl_attractors.methods.kernels import Compile, Kernel
from cl_attractors.methods.penalty import QuadraticPenalty


def si_step_expr(
    grads: list[Tensor],
    params: list[Tensor],
    prev_grads: list[Tensor],
    omega: list[Tensor],
    importance: list[Tensor],
    anchor_sums: list[Tensor],
    scale: float,
) -> None:
    """SI's fused step: the path-integral term, then the pull (``scale = 0``: no pull)."""
    for g, w, prev, om, imp, anchor in zip(grads, params, prev_grads, omega, importance, anchor_sums):
        om.add_(formulas.si_path_term(g, prev, w))
        # "+ 0.0": inductor drops a plain copy of an input that is mutated afterwards and
        # copies the pulled g instead (pytorch/pytorch#198131, open in torch 2.14)
        prev.copy_(g + 0.0)
        if scale:
            g.add_(formulas.quadratic_pull_grad(w, anchor, imp, scale))


class SI(QuadraticPenalty):
    """SI: a path-integral importance ``Omega`` and the penalty ``c * sum Omega (theta - theta*)^2``.

    During a task, ``omega = -sum_t g_t * (theta_{t+1} - theta_t)`` with ``g`` the unregularised
    gradient and ``theta_{t+1} - theta_t`` the actual optimizer step, accumulated one step late
    (``formulas.si_path_term``; the last step is added at the task's end). The integral must see
    the gradient before the pull is added, so SI's pre-step hook runs one kernel for both. The
    importance of a finished task is ``omega / (dtheta_task^2 + xi)``, accumulated online
    (``Omega += ...``, the anchor at the current parameters) by :class:`QuadraticPenalty`; then
    ``omega`` restarts. Logs ``omega_mean`` / ``omega_max`` of the accumulated ``Omega``.

    Args:
        c: penalty strength (Zenke et al. use 0.1 on permuted MNIST).
        xi: damping of the importance (0.1 in Zenke et al.'s permuted MNIST runs).
        compile: fuse the per-step kernel with ``torch.compile``: ``true``, ``false`` or
            ``"auto"`` (when the targets are large; see ``kernels.compile_wanted``).
        params: ``"all"`` or ``"weights"``.
        layers: linear-layer indices (``None`` = all).
    """

    hyperparameters = ("c", "xi")
    weight_name = "importance"
    stat = "omega"

    def __init__(
        self,
        c: float,
        xi: float,
        compile: Compile = "auto",
        params: ParamSelection = "all",
        layers: list[int] | None = None,
    ) -> None:
        super().__init__(2.0 * c, "online", 1.0, compile, params, layers)
        require_finite({"c": c, "xi": xi}, "method")
        require(c >= 0, "method.c", c, "a number >= 0")
        require(xi > 0, "method.xi", xi, "a number > 0")
        self.c, self.xi = c, xi

    def setup_state(self, targets: list[Tensor]) -> None:
        super().setup_state(targets)
        for i, p in enumerate(targets):
            self.register_buffer(f"omega{i}", torch.zeros_like(p))
            self.register_buffer(f"prev_grad{i}", torch.zeros_like(p))
            self.register_buffer(f"task_start{i}", p.detach().clone())
        # the pull's kernel becomes SI's step: path-integral term and pull in one pass
        self.step_kernel = Kernel(si_step_expr, self._step_eager, self.step_kernel.compiled)

    @torch.no_grad()
    def on_before_optimizer_step(self, ctx: MethodContext, optimizer: torch.optim.Optimizer) -> None:
        params = self.targets
        self.step_kernel(
            [p.grad for p in params],
            params,
            self.per_target("prev_grad"),
            self.per_target("omega"),
            self.per_target("importance"),
            self.per_target("anchor_sum"),
            self.scale if self.tasks_consolidated > 0 else 0.0,
        )

    def _step_eager(
        self,
        grads: list[Tensor],
        params: list[Tensor],
        prev_grads: list[Tensor],
        omega: list[Tensor],
        importance: list[Tensor],
        anchor_sums: list[Tensor],
        scale: float,
    ) -> None:
        """The eager twin of :func:`si_step_expr`."""
        formulas.si_path_(grads, params, prev_grads, omega)
        if scale:
            formulas.pull_(grads, params, importance, anchor_sums, scale)

    @torch.no_grad()
    def importance(self, ctx: MethodContext) -> list[Tensor]:
        params = [p.detach() for p in self.targets]
        omega, starts = self.per_target("omega"), self.per_target("task_start")
        formulas.si_flush_(params, self.per_target("prev_grad"), omega)
        new = [formulas.si_importance(om, w - start, self.xi) for om, w, start in zip(omega, params, starts)]
        torch._foreach_copy_(starts, params)
        torch._foreach_zero_(omega)
        return new

    def summary(self, importance: list[Tensor]) -> dict[str, float]:
        """The statistics of the accumulated ``Omega`` (not only the new task's)."""
        return super().summary(self.per_target("importance"))
