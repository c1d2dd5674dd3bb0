"""Reference protocols beside the sequential one: ``joint`` and ``independent`` (``data.protocol``).

* ``sequential``: the tasks one after the other (every continual-learning run).
* ``joint``: the upper bound. Every slot of the schedule trains on the training data of *all*
  tasks shuffled together, for the same total number of steps: the ``num_tasks x epochs_per_task``
  epochs of the schedule are ``epochs_per_task`` passes over the union, each pass shuffled anew and
  cut into ``num_tasks`` consecutive slices (Hsu et al.'s "offline" training). A(i, j) is filled as
  in any run (after slot j, every task evaluated); its last column is the joint model's.
* ``independent``: a fresh network (and optimizer state) at every task, with its own seeded
  initialisation: A(j, j) is what task j reaches alone, the reference of
  :func:`cl_attractors.metrics.fwt_independent`.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

PROTOCOLS: tuple[str, ...] = ("sequential", "joint", "independent")


def joint_slice(n: int, slots: int, epoch: int, seed: int) -> Tensor:
    """Indices of the union's ``n`` examples that schedule epoch ``epoch`` trains on: slice
    ``epoch % slots`` of pass ``epoch // slots``'s shuffle (a function of the seed only)."""
    passes, part = divmod(epoch, slots)
    g = torch.Generator().manual_seed((seed * 1_000_003 + 7_919 * (passes + 1)) % 2**64)
    order = torch.randperm(n, generator=g)
    return order[part * n // slots : (part + 1) * n // slots]


@torch.no_grad()
def reinitialise(net: nn.Module, seed: int, task: int) -> None:
    """Every layer's own ``reset_parameters`` (PyTorch's default init), drawn on the CPU in the
    network's dtype by the CPU generator seeded by ``(seed, task)``, then copied in: the same
    values on any device and in a replica group; a resumed run re-draws the same network; the
    global RNG (CPU and GPU) is untouched."""
    fresh = copy.deepcopy(net).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed((seed * 1_000_003 + task + 1) % 2**63)
        for module in fresh.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset) and module is not fresh:
                reset()
    net.load_state_dict(fresh.state_dict())
