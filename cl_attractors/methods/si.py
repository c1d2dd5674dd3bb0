"""Synaptic Intelligence (Zenke, Poole and Ganguli, 2017)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from cl_attractors.errors import require
from cl_attractors.methods import kernels
from cl_attractors.methods.base import CLMethod, ParamSelection
from cl_attractors.methods.kernels import Compile, Kernel, compile_wanted


class SI(CLMethod):
    """SI: a path-integral importance ``Omega`` and the penalty ``c * sum Omega (theta - theta*)^2``.

    During a task, ``omega = -sum_t g_t * (theta_{t+1} - theta_t)`` with ``g`` the unregularised
    gradient and ``theta_{t+1} - theta_t`` the actual optimizer step, accumulated one step late
    in a single pass before each step (``kernels.si_path_``; the last step is added at the
    task's end). Then ``Omega += omega / (dtheta_task^2 + xi)``, the anchor ``theta*`` becomes
    the current parameters and ``omega`` restarts. The pull uses ``anchor_sum = Omega * theta*``
    so that the gradient ``2c (Omega theta - anchor_sum)`` shares EWC's kernel. Logs
    ``omega_mean`` / ``omega_max`` of ``Omega``.

    Args:
        c: penalty strength (Zenke et al. use 0.1 on permuted MNIST).
        xi: damping of the importance (0.1 in Zenke et al.'s permuted MNIST runs).
        compile: fuse the per-step kernel with ``torch.compile``: ``true``, ``false`` or
            ``"auto"`` (when the targets are large; see ``kernels.compile_wanted``).
        params: ``"all"`` or ``"weights"``.
        layers: linear-layer indices (``None`` = all).
    """

    counters = ("tasks_consolidated",)

    def __init__(
        self,
        c: float = 0.1,
        xi: float = 0.1,
        compile: Compile = "auto",
        params: ParamSelection = "all",
        layers: list[int] | None = None,
    ) -> None:
        super().__init__(params=params, layers=layers)
        require(c >= 0, "method.c", c, "a number >= 0")
        require(xi > 0, "method.xi", xi, "a number > 0")
        kernels.check_compile(compile)
        self.c, self.xi, self.compile = c, xi, compile
        self.tasks_consolidated = 0

    def setup_state(self, targets: list[nn.Parameter]) -> None:
        for i, p in enumerate(targets):
            for name in ("omega", "importance", "anchor_sum", "prev_grad"):
                self.register_buffer(f"{name}{i}", torch.zeros_like(p))
            self.register_buffer(f"task_start{i}", p.detach().clone())
        self.step_kernel = Kernel(
            kernels.si_step_expr, self._step_eager, compile_wanted(self.compile, targets)
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
        kernels.si_path_(grads, params, prev_grads, omega)
        if scale:
            kernels.pull_(grads, params, importance, anchor_sums, scale)

    @torch.no_grad()
    def on_before_optimizer_step(self, module: Any, optimizer: torch.optim.Optimizer) -> None:
        params = self.targets
        scale = 2.0 * self.c if self.tasks_consolidated > 0 else 0.0
        self.step_kernel(
            [p.grad for p in params],
            params,
            self.per_target("prev_grad"),
            self.per_target("omega"),
            self.per_target("importance"),
            self.per_target("anchor_sum"),
            scale,
        )

    @torch.no_grad()
    def on_task_end(self, module: Any, task: int, datamodule: Any) -> dict[str, float]:
        params = [p.detach() for p in self.targets]
        omega, importance = self.per_target("omega"), self.per_target("importance")
        kernels.si_flush_(params, self.per_target("prev_grad"), omega)
        starts = self.per_target("task_start")
        for w, om, imp, start, anchor in zip(
            params, omega, importance, starts, self.per_target("anchor_sum")
        ):
            start.sub_(w).square_().add_(self.xi)  # (dtheta_task)^2 + xi, in place
            imp.addcdiv_(om, start)
            torch.mul(imp, w, out=anchor)
            start.copy_(w)
            om.zero_()
        self.tasks_consolidated += 1
        total = sum(i.sum() for i in importance) / sum(i.numel() for i in importance)
        return {
            "omega_mean": float(total),
            "omega_max": float(torch.stack([i.max() for i in importance]).max()),
        }
