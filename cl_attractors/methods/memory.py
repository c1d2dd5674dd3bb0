"""The episodic memory of replay and A-GEM: ``M`` images in total, shared equally by the tasks seen,
class-balanced within each task, drawn with seeded generators; its state is tensors (buffers) and
two counters, so it is saved in every checkpoint and a resumed run draws the same batches. Each
row keeps its task (the ``task`` buffer), so a family that masks outputs per task scores it on its
own task's outputs."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from cl_attractors.methods.baseline_formulas import class_balanced_order, kept_rows, task_quotas

Sampler = Callable[[int, int, torch.Generator], tuple[Tensor, Tensor]]
"""``sample(task, n, generator)``: ``n`` random training examples of ``task`` (inputs, labels),
without replacement (fewer if the task has fewer)."""

POOL_FACTOR = 2
"""A new task's rows are chosen class-balanced from ``POOL_FACTOR`` times as many random examples."""


class EpisodicMemory(nn.Module):
    """A fixed memory of ``size`` examples of the tasks seen so far.

    At the end of task ``k`` (the ``k``-th seen, from 0), every task's share becomes
    ``task_quotas(size, k + 1)``: the older tasks keep the first rows of their share (stored in
    class-balanced order, so what is kept stays balanced), and the new task adds its share, chosen
    class-balanced (:func:`~cl_attractors.methods.baseline_formulas.class_balanced_order`) from a
    random pool drawn with a generator seeded by ``seed + task`` (GT-RIPL's ``Naive_Rehearsal``
    splits its memory the same way, picking each task's images at random). Batches are drawn
    without replacement by a generator seeded by ``(seed, step)``: no generator state to save.

    The buffers are allocated when the first task is stored, the inputs' one in the shape of its
    examples (any network, any input shape); a checkpoint's memory is loaded whatever its shape.

    Args:
        size: ``M``, the number of examples held in total.
        seed: seed of the memory's generators.
    """

    x: Tensor
    y: Tensor
    task: Tensor

    def __init__(self, size: int, seed: int) -> None:
        super().__init__()
        self.size, self.seed = size, seed
        # allocated when the first task is stored (no memory is reserved for a run refused at setup)
        self.register_buffer("x", torch.zeros(0))
        self.register_buffer("y", torch.zeros(0, dtype=torch.long))
        self.register_buffer("task", torch.zeros(0, dtype=torch.long))
        self.filled = 0
        self.tasks_seen = 0
        self.register_load_state_dict_pre_hook(self._shape_buffers)

    def _shape_buffers(
        self, module: nn.Module, state_dict: dict[str, Tensor], prefix: str, *_: object
    ) -> None:
        """Before a load: give each buffer the checkpoint's shape (they may still be empty)."""
        for name in ("x", "y", "task"):
            saved = state_dict.get(prefix + name)
            if saved is not None and saved.shape != getattr(self, name).shape:
                setattr(self, name, torch.zeros(saved.shape, dtype=saved.dtype, device=self.y.device))

    def get_extra_state(self) -> dict[str, int]:
        return {"filled": self.filled, "tasks_seen": self.tasks_seen}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.filled, self.tasks_seen = state["filled"], state["tasks_seen"]

    @torch.no_grad()
    def add_task(self, task: int, sample: Sampler) -> None:
        """Make room for ``task`` (just finished) and store its share."""
        quotas = task_quotas(self.size, self.tasks_seen + 1)
        generator = torch.Generator().manual_seed(self.seed + task)
        new_x, new_y = sample(task, POOL_FACTOR * quotas[-1], generator)
        if self.x.dim() == 1:  # nothing stored yet: the inputs' shape is known now
            device = self.y.device
            self.x = torch.zeros(self.size, *new_x.shape[1:], dtype=new_x.dtype, device=device)
            self.y = torch.zeros(self.size, dtype=torch.long, device=device)
            self.task = torch.full((self.size,), -1, dtype=torch.long, device=device)
        keep = kept_rows(self.task[: self.filled].cpu(), quotas[:-1]).to(self.x.device)
        old_x, old_y, old_task = self.x[keep], self.y[keep], self.task[keep]
        chosen = class_balanced_order(new_y.cpu(), generator)[: quotas[-1]].to(new_y.device)
        rows = [(old_x, old_y, old_task), (new_x[chosen], new_y[chosen], None)]
        start = 0
        for x, y, t in rows:
            end = start + len(y)
            self.x[start:end] = x.to(self.x)
            self.y[start:end] = y.to(self.y.device)
            self.task[start:end] = task if t is None else t
            start = end
        self.task[start:] = -1
        self.filled, self.tasks_seen = start, self.tasks_seen + 1

    def draw(self, n: int, step: int) -> tuple[Tensor, Tensor, Tensor]:
        """``min(n, filled)`` stored examples without replacement, a function of ``(seed, step)``:
        inputs, labels and the task of each (its outputs are those its task counts)."""
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + step) % 2**63)
        idx = torch.randperm(self.filled, generator=generator)[:n].to(self.x.device, non_blocking=True)
        return self.x.index_select(0, idx), self.y.index_select(0, idx), self.task.index_select(0, idx)
