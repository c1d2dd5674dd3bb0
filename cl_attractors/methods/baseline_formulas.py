"""The formulas of the comparison set, each written once as a pure tensor expression: LwF's
distillation (one head or several), the cross-entropy of a memory batch whose rows count different
outputs (replay, A-GEM), A-GEM's projection, Laborieux et al.'s metaplastic gate, and the episodic
memory's quotas and class-balanced order (replay, A-GEM). L2 needs none of its own: it is
``formulas.quadratic_pull_grad`` with unit importance. Where a formula runs every step its
in-place twin (``name_``, no large allocation, no host sync) sits right below it. No Lightning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# ---- LwF (Li & Hoiem, 2017) -------------------------------------------------------------------


def distillation_loss(logits: Tensor, old_logits: Tensor, temperature: float | Tensor) -> Tensor:
    """Li & Hoiem's ``L_old``: cross-entropy between the softened outputs of the frozen network
    (``old_logits``, the target) and of the network being trained, averaged over the batch.

    ``-mean_i sum_c softmax(old_i / T)_c * log softmax(logits_i / T)_c``. It differs from
    ``KL(old || new)`` by the entropy of the target, a constant: the same gradient. No ``T^2``
    factor (Hinton et al.'s): Li & Hoiem weigh ``L_old`` by ``lambda_o`` alone. Outputs masked
    out (``-inf`` in both) count for nothing.
    """
    target = F.softmax(old_logits / temperature, dim=-1)
    # outputs the target gives 0 (masked to -inf in both) add nothing: 0 * log q, not 0 * -inf
    log_q = F.log_softmax(logits / temperature, dim=-1).masked_fill(target == 0, 0.0)
    return -(target * log_q).sum(-1).mean()


def distillation_over_heads(
    logits: Tensor,
    old_logits: Tensor,
    heads: list[Tensor],
    temperature: float | Tensor,
    current: Tensor | None = None,
) -> Tensor:
    """Li & Hoiem's ``L_old`` with several old tasks: the sum over ``heads`` (bool ``[outputs]``,
    the outputs of each old task's head) of :func:`distillation_loss` on that head's outputs
    alone, each with its own softmax ("we take the sum of the loss for each old task"; van de
    Ven et al.'s code averages them instead: ``lam / len(heads)`` here). Class-incremental
    learning has one head: the classes seen before the current task.

    ``current`` (bool ``[outputs]``, the outputs the current task counts): the trained network's
    softmax of each term spans the head's outputs and these, the target giving the ones outside
    the head probability 0. In the class scenario that is van de Ven & Tolias's code (its
    ``loss_fn_kd`` pads the old model's probabilities with zeros for the new classes): the term
    then also pulls the new classes' probability down on the current task's images."""
    terms = []
    for head in heads:
        student = ~head if current is None else ~(head | current)
        new, old = logits.masked_fill(student, -torch.inf), old_logits.masked_fill(~head, -torch.inf)
        terms.append(distillation_loss(new, old, temperature))
    return torch.stack(terms).sum()


# ---- replay (Hsu et al., 2018's naive rehearsal) and A-GEM's reference --------------------------


def masked_cross_entropy(logits: Tensor, labels: Tensor, hidden: Tensor | None) -> Tensor:
    """The batch-mean cross-entropy of each row on the outputs that count for it: ``hidden``
    (bool ``[n, outputs]``) is True where an output does not count for that row (``-inf``, as
    the module masks its own batch), so a memory of several tasks mixes heads; None: all count."""
    return F.cross_entropy(logits if hidden is None else logits.masked_fill(hidden, -torch.inf), labels)


# ---- A-GEM (Chaudhry et al., 2019) -----------------------------------------------------------


def agem_project(g: Tensor, g_ref: Tensor) -> Tensor:
    """A-GEM's projection of the flat gradient ``g`` against the memory's gradient ``g_ref``:
    ``g - (g . g_ref) / (g_ref . g_ref) g_ref`` where ``g . g_ref < 0``, else ``g`` unchanged
    (``g_ref = 0`` leaves ``g`` unchanged)."""
    dot, norm2 = torch.dot(g, g_ref), torch.dot(g_ref, g_ref)
    coef = torch.where((dot < 0) & (norm2 > 0), dot / norm2, torch.zeros_like(dot))
    return g - coef * g_ref


def agem_project_(grads: list[Tensor], refs: list[Tensor]) -> Tensor:
    """In place: :func:`agem_project` of the concatenation of ``grads`` against that of ``refs``
    (the tensors are never concatenated; no host sync). Returns whether it projected (a 0-d bool
    tensor, for the statistics)."""
    dot = torch.stack([(g * r).sum() for g, r in zip(grads, refs)]).sum()
    norm2 = torch.stack([(r * r).sum() for r in refs]).sum()
    conflict = (dot < 0) & (norm2 > 0)
    coef = torch.where(conflict, dot / norm2.clamp(min=torch.finfo(norm2.dtype).tiny), 0.0)
    torch._foreach_add_(grads, torch._foreach_mul(refs, -coef))
    return conflict


# ---- metaplasticity (Laborieux et al., 2021) --------------------------------------------------


def metaplastic_multiplier(w: Tensor, m: float | Tensor) -> Tensor:
    """``1 - tanh^2(m |w|)``: 1 at ``w = 0``, towards 0 as ``|w|`` grows (``m`` sets how fast)."""
    return 1.0 - torch.tanh(m * w).square()


def metaplastic_gate(old: Tensor, update: Tensor, m: float | Tensor) -> Tensor:
    """The optimizer's ``update`` (``w_new - w_old``) scaled by :func:`metaplastic_multiplier` of
    the weight before the step wherever it moves the weight towards zero (``sgn(w) update < 0``),
    untouched elsewhere (and at ``w = 0``).

    Laborieux et al.'s ``Adam_meta`` tests ``sgn(w) * exp_avg > 0``; Adam's update is
    ``-lr_t * exp_avg / denom`` with ``denom > 0``, so the two tests agree wherever the update is
    Adam's own.
    """
    return torch.where(old * update < 0, update * metaplastic_multiplier(old, m), update)


def metaplastic_(w: Tensor, old: Tensor, u: Tensor, f: Tensor, m: float | Tensor) -> None:
    """In place: ``w = old + metaplastic_gate(old, w - old, m)``, writing only into the scratch
    ``u`` and ``f`` (shaped like ``w``). Float arithmetic only, like ``formulas.gate_``:
    ``towards = sgn(max(-old * u, 0))`` (1 where the update moves ``w`` towards zero, else 0) and
    the multiplier is ``1 + towards * (1 - tanh^2(m old) - 1)``."""
    torch.sub(w, old, out=u)
    torch.mul(old, m, out=f).tanh_().square_().neg_()  # f = mult - 1
    w.copy_(old).mul_(u).neg_().clamp_(min=0.0).sign_()  # w holds `towards` as scratch
    f.mul_(w).add_(1.0)
    w.copy_(old).addcmul_(u, f)


# ---- the episodic memory (replay, A-GEM) ------------------------------------------------------


def task_quotas(memory_size: int, tasks: int) -> list[int]:
    """Rows of a memory of ``memory_size`` images held by each of ``tasks`` tasks seen: equal
    shares, the first ``memory_size % tasks`` tasks holding one more (the total is exact)."""
    base, extra = divmod(memory_size, tasks)
    return [base + (t < extra) for t in range(tasks)]


def class_balanced_order(labels: Tensor, generator: torch.Generator) -> Tensor:
    """An order of ``labels``' indices whose every prefix is class-balanced: the classes take turns
    (in one random order of the classes; each class's examples in a random order), so in the first
    ``n`` indices the class counts differ by at most one until a class runs out of examples."""
    n = len(labels)
    shuffled = torch.randperm(n, generator=generator)
    y = labels[shuffled]
    # rank of each example within its class, in the shuffled order
    order_by_class = torch.sort(y, stable=True).indices
    starts = torch.searchsorted(y[order_by_class], y[order_by_class], side="left")
    rank = torch.empty(n, dtype=torch.long)
    rank[order_by_class] = torch.arange(n) - starts
    class_turn = torch.randperm(int(labels.max()) + 1 if n else 0, generator=generator)
    key = rank * (len(class_turn) + 1) + class_turn[y]
    return shuffled[torch.sort(key, stable=True).indices]


def kept_rows(row_task: Tensor, quotas: list[int]) -> Tensor:
    """Indices of the rows to keep when each task's share shrinks to ``quotas[t]``: the first
    ``quotas[t]`` rows of task ``t`` in memory order (its rows are stored in class-balanced order,
    so the kept prefix stays balanced)."""
    if len(row_task) == 0:
        return torch.zeros(0, dtype=torch.long)
    order = torch.sort(row_task, stable=True).indices
    sorted_tasks = row_task[order]
    rank = torch.arange(len(row_task)) - torch.searchsorted(sorted_tasks, sorted_tasks, side="left")
    limit = torch.tensor(quotas, dtype=torch.long)[sorted_tasks]
    return order[rank < limit]
