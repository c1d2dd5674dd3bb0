"""The episodic memory: shares per task, class balance, seeded draws, the checkpoint round trip."""

from __future__ import annotations

import torch
from torch import Tensor

from cl_attractors.methods.memory import EpisodicMemory

CLASSES, PER_TASK = 4, 120


def sample(task: int, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` examples of ``task``: input row = (task, index), labels cycling over the classes."""
    idx = torch.randperm(PER_TASK, generator=generator)[:n]
    x = torch.stack([torch.full_like(idx, task), idx], 1).float()
    return x, idx % CLASSES


def filled_memory(size: int, tasks: int, seed: int = 0) -> EpisodicMemory:
    memory = EpisodicMemory(size, seed)
    for t in range(tasks):
        memory.add_task(t, sample)
    return memory


def test_every_task_holds_its_share_class_balanced() -> None:
    memory = filled_memory(50, 3)
    assert memory.filled == 50 and memory.tasks_seen == 3
    task = memory.task[: memory.filled]
    assert torch.bincount(task).tolist() == [17, 17, 16]
    assert torch.equal(memory.x[: memory.filled, 0].long(), task)  # rows are their task's images
    for t in range(3):
        counts = torch.bincount(memory.y[task == t], minlength=CLASSES)
        assert counts.max() - counts.min() <= 1
    rows = memory.x[: memory.filled].tolist()
    assert len({tuple(r) for r in rows}) == len(rows)  # no example twice


def test_older_tasks_keep_a_prefix_of_their_rows() -> None:
    memory = filled_memory(40, 1)
    first = memory.x[:40].clone()
    memory.add_task(1, sample)
    assert torch.equal(memory.x[:20], first[:20])


def test_memory_not_full_while_the_data_is_smaller() -> None:
    memory = EpisodicMemory(1000, 0)
    memory.add_task(0, sample)
    assert memory.filled == PER_TASK and (memory.task[PER_TASK:] == -1).all()


def test_draws_are_seeded_by_step_and_survive_a_state_dict_round_trip() -> None:
    memory = filled_memory(30, 2, seed=5)
    x1, y1, t1 = memory.draw(8, step=3)
    assert x1.shape == (8, 2) and len({tuple(r) for r in x1.tolist()}) == 8
    assert torch.equal(t1, x1[:, 0].long())  # each row comes with its own task
    x2, _, _ = memory.draw(8, step=4)
    assert not torch.equal(x1, x2)
    restored = EpisodicMemory(30, 5)
    restored.load_state_dict(memory.state_dict())
    assert restored.filled == 30 and restored.tasks_seen == 2
    x3, y3, t3 = restored.draw(8, step=3)
    assert torch.equal(x1, x3) and torch.equal(y1, y3) and torch.equal(t1, t3)
    assert memory.draw(100, step=0)[0].shape == (30, 2)  # at most what is stored
    restored.add_task(2, sample)
    memory.add_task(2, sample)
    assert torch.equal(restored.x, memory.x)


def test_another_seed_stores_other_examples() -> None:
    assert not torch.equal(filled_memory(30, 1, seed=0).x, filled_memory(30, 1, seed=1).x)
