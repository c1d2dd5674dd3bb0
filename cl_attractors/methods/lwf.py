"""Learning without Forgetting (Li & Hoiem, 2017): distillation towards the previous network."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from cl_attractors.errors import require, require_finite
from cl_attractors.methods.base import CLMethod, DataFacts, MethodContext
from cl_attractors.methods.baseline_formulas import distillation_loss


class LwF(CLMethod):
    """LwF: ``lam * L_old`` added to every step's loss from the second task on, ``L_old`` the
    cross-entropy between the temperature-softened outputs of the network frozen at the end of the
    previous task and those of the network being trained, on the current mini-batch
    (``baseline_formulas.distillation_loss``).

    The frozen network is a copy of every parameter of the network (buffers ``frozen<i>``, saved
    in the checkpoint, never seen by the optimizer), run with ``torch.func.functional_call``.
    On a shared output layer (permuted or rotated MNIST, split MNIST's domain scenario) this is
    the domain-incremental LwF of van de Ven et al.'s comparison. Li & Hoiem distil the old tasks'
    own heads, which a family that masks outputs per task (task-incremental heads, class-incremental
    "seen so far") would hide from ``logits``: such a family is refused (:meth:`check_data`).

    Args:
        lam: weight of the distillation term (Li & Hoiem's ``lambda_o`` = 1).
        temperature: softening temperature ``T`` (Li & Hoiem: 2).
    """

    counters = ("tasks_done",)
    hyperparameters = ("lam", "temperature")

    def __init__(self, lam: float, temperature: float) -> None:
        super().__init__()
        require_finite({"lam": lam, "temperature": temperature}, "method")
        require(lam >= 0, "method.lam", lam, "a number >= 0")
        require(temperature > 0, "method.temperature", temperature, "a number > 0")
        self.lam, self.temperature = lam, temperature
        self.tasks_done = 0
        self._names: list[str] = []

    def attach(self, net: nn.Module) -> None:
        super().attach(net)
        self._names = [name for name, _ in net.named_parameters()]
        for i, p in enumerate(net.parameters()):
            self.register_buffer(f"frozen{i}", torch.zeros_like(p))

    def _frozen(self) -> dict[str, Tensor]:
        return {name: self._buffers[f"frozen{i}"] for i, name in enumerate(self._names)}  # type: ignore[misc]

    def check_data(self, data: DataFacts) -> None:
        data.require_shared_outputs(
            "LwF", "distils the outputs of the task in training, not the old tasks' own"
        )

    def loss(self, ctx: MethodContext, x: Tensor, y: Tensor, logits: Tensor) -> Tensor | None:
        if self.tasks_done == 0 or self.lam == 0:
            return None
        with torch.no_grad():
            old = functional_call(ctx.net, self._frozen(), (x,))
        return self.lam * distillation_loss(logits, old, self.temperature)

    @torch.no_grad()
    def on_task_end(self, ctx: MethodContext) -> dict[str, float]:
        torch._foreach_copy_(list(self._frozen().values()), [p.detach() for p in ctx.net.parameters()])
        self.tasks_done += 1
        return {}
