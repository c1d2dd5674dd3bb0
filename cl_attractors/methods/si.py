"""Synaptic Intelligence (Zenke, Poole and Ganguli, 2017)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from cl_attractors.methods import kernels
from cl_attractors.methods.base import CLMethod, ParamSelection
from cl_attractors.checks import require


class SI(CLMethod):
    """SI: a path-integral importance ``Omega`` and the penalty ``c * sum Omega (theta - theta*)^2``.

    During a task, ``omega -= g * dtheta`` with ``g`` the unregularised gradient and ``dtheta`` the
    actual optimizer step (saved before, completed after the step). At the task's end
    ``Omega += omega / (dtheta_task^2 + xi)``, the anchor ``theta*`` becomes the current
    parameters and ``omega`` restarts. The pull uses ``anchor_sum = Omega * theta*`` so that
    the gradient ``2c (Omega theta - anchor_sum)`` shares EWC's kernel. Logs ``omega_mean`` /
    ``omega_max`` of ``Omega``.

    Args:
        c: penalty strength (Zenke et al. use 0.1 on permuted MNIST).
        xi: damping of the importance (0.1 in Zenke et al.'s permuted MNIST runs).
        compile: fuse the per-step kernels with ``torch.compile``.
        params: ``"all"`` or ``"weights"``.
        layers: linear-layer indices (``None`` = all).
    """

    counters = ("tasks_consolidated",)

    def __init__(self, c: float = 0.1, xi: float = 0.1, compile: bool = False,
                 params: ParamSelection = "all", layers: list[int] | None = None) -> None:
        super().__init__(params=params, layers=layers)
        require(c >= 0, "method.c", c, "a number >= 0")
        require(xi > 0, "method.xi", xi, "a number > 0")
        self.c, self.xi = c, xi
        self.before = kernels.maybe_compile(self._before, compile)
        self.after = kernels.maybe_compile(kernels.si_after_, compile)
        self.tasks_consolidated = 0

    def setup_state(self, targets: list[nn.Parameter]) -> None:
        for i, p in enumerate(targets):
            for name in ("omega", "importance", "anchor_sum"):
                self.register_buffer(f"{name}{i}", torch.zeros_like(p))
            self.register_buffer(f"task_start{i}", p.detach().clone())
            for name in ("saved_grad", "saved_param"):
                self.register_buffer(f"{name}{i}", torch.zeros_like(p), persistent=False)

    def _before(self, grads: list[Tensor], params: list[Tensor], saved_grads: list[Tensor],
                saved_params: list[Tensor], importance: list[Tensor], anchor_sums: list[Tensor],
                pull: bool) -> None:
        kernels.si_before_(grads, params, saved_grads, saved_params)
        if pull:
            kernels.pull_(grads, params, importance, anchor_sums, 2.0 * self.c)

    @torch.no_grad()
    def on_before_optimizer_step(self, module: Any, optimizer: torch.optim.Optimizer) -> None:
        params = self.targets
        self.before([p.grad for p in params], params, self.per_target("saved_grad"),
                    self.per_target("saved_param"), self.per_target("importance"),
                    self.per_target("anchor_sum"), self.tasks_consolidated > 0)

    @torch.no_grad()
    def on_after_optimizer_step(self, module: Any, optimizer: torch.optim.Optimizer) -> None:
        self.after(self.targets, self.per_target("saved_grad"), self.per_target("saved_param"),
                   self.per_target("omega"))

    @torch.no_grad()
    def on_task_end(self, module: Any, task: int, datamodule: Any) -> dict[str, float]:
        params = [p.detach() for p in self.targets]
        omega, importance = self.per_target("omega"), self.per_target("importance")
        starts = self.per_target("task_start")
        for w, om, imp, start, anchor in zip(params, omega, importance, starts,
                                            self.per_target("anchor_sum")):
            start.sub_(w).square_().add_(self.xi)  # (dtheta_task)^2 + xi, in place
            imp.addcdiv_(om, start)
            torch.mul(imp, w, out=anchor)
            start.copy_(w)
            om.zero_()
        self.tasks_consolidated += 1
        total = sum(i.sum() for i in importance) / sum(i.numel() for i in importance)
        return {"omega_mean": float(total),
                "omega_max": float(torch.stack([i.max() for i in importance]).max())}
