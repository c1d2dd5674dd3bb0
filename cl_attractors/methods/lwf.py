"""Learning without Forgetting (Li & Hoiem, 2017): distillation towards the previous network."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn
from torch.func import functional_call

from cl_attractors.errors import require, require_finite
from cl_attractors.methods.base import CLMethod, MethodContext
from cl_attractors.methods.baseline_formulas import distillation_loss, distillation_over_heads

NewOutputs = Literal["hidden", "zero_target"]


class LwF(CLMethod):
    """LwF: ``lam * L_old`` added to every step's loss from the second task on, ``L_old`` the
    cross-entropy between the temperature-softened outputs of the network frozen at the end of the
    previous task and those of the network being trained, on the current mini-batch
    (``baseline_formulas.distillation_loss``).

    The frozen network is a copy of every parameter of the network (buffers ``frozen<i>``, saved
    in the checkpoint, never seen by the optimizer), run with ``torch.func.functional_call``.
    On a shared output layer (permuted or rotated MNIST, split MNIST's domain scenario) this is
    the domain-incremental LwF of van de Ven et al.'s comparison. A family that masks outputs per
    task gets Li & Hoiem's old heads (:meth:`old_heads`): one term per distinct set of outputs the
    old tasks counted once the previous task was trained, each its own softmax, summed
    (``baseline_formulas.distillation_over_heads``): every old task's head in the task scenario,
    the classes seen before the current task in the class scenario.

    Args:
        lam: weight of the distillation term (Li & Hoiem's ``lambda_o`` = 1).
        temperature: softening temperature ``T`` (Li & Hoiem: 2).
        new_outputs: on a family that masks outputs per task, what each old head's term does
            with the current task's outputs: ``"hidden"`` (Li & Hoiem: the head's own softmax)
            or ``"zero_target"`` (van de Ven & Tolias's code: the trained network's softmax
            also spans the current task's outputs, whose target probability is 0; in the class
            scenario this pulls the new classes down on the current images). Nothing changes
            on a shared output layer.
    """

    counters = ("tasks_done",)
    hyperparameters = ("lam", "temperature")

    def __init__(self, lam: float, temperature: float, new_outputs: NewOutputs = "hidden") -> None:
        super().__init__()
        require_finite({"lam": lam, "temperature": temperature}, "method")
        require(lam >= 0, "method.lam", lam, "a number >= 0")
        require(temperature > 0, "method.temperature", temperature, "a number > 0")
        allowed = get_args(NewOutputs)
        require(new_outputs in allowed, "method.new_outputs", new_outputs, " or ".join(allowed))
        self.lam, self.temperature, self.new_outputs = lam, temperature, new_outputs
        self.tasks_done = 0
        self._names: list[str] = []
        self._heads: dict[int, list[Tensor] | None] = {}  # old_heads per task trained (made once)

    def attach(self, net: nn.Module) -> None:
        super().attach(net)
        self._names = [name for name, _ in net.named_parameters()]
        for i, p in enumerate(net.parameters()):
            self.register_buffer(f"frozen{i}", torch.zeros_like(p))

    def _frozen(self) -> dict[str, Tensor]:
        return {name: self._buffers[f"frozen{i}"] for i, name in enumerate(self._names)}  # type: ignore[misc]

    def old_heads(self, ctx: MethodContext) -> list[Tensor] | None:
        """The distinct output masks of the tasks before ``ctx.task`` once the previous one was
        trained (made once per task: comparing them syncs with the device); None: every output
        counts for every old task."""
        if ctx.task not in self._heads:
            masks = [ctx.output_mask(t, ctx.task - 1) for t in range(ctx.task)]
            self._heads = {ctx.task: distinct_masks(masks)}
        return self._heads[ctx.task]

    def loss(self, ctx: MethodContext, x: Tensor, y: Tensor, outputs: Tensor) -> Tensor | None:
        if self.tasks_done == 0 or self.lam == 0:
            return None
        with torch.no_grad():
            old = functional_call(ctx.net, self._frozen(), (x,))
        heads = self.old_heads(ctx)
        if heads is None:
            return self.lam * distillation_loss(outputs, old, self.temperature)
        current = ctx.output_mask(ctx.task, ctx.task) if self.new_outputs == "zero_target" else None
        return self.lam * distillation_over_heads(outputs, old, heads, self.temperature, current)

    @torch.no_grad()
    def on_task_end(self, ctx: MethodContext) -> dict[str, float]:
        torch._foreach_copy_(list(self._frozen().values()), [p.detach() for p in ctx.net.parameters()])
        self.tasks_done += 1
        return {}


def distinct_masks(masks: list[Tensor | None]) -> list[Tensor] | None:
    """The distinct masks of ``masks``, in order (None counts every output: a mask of ones);
    None when every one is None."""
    given = [m for m in masks if m is not None]
    if not given:
        return None
    out: list[Tensor] = []
    for mask in (torch.ones_like(given[0]) if m is None else m for m in masks):
        if not any(torch.equal(mask, seen) for seen in out):
            out.append(mask)
    return out
