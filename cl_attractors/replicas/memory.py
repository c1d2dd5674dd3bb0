"""How many replicas of a run fit the device: ``experiment --replicas auto`` and the check of an
explicit ``--replicas R`` before anything trains; 0 for a run whose network or method a group
cannot train (it then trains alone).

Per replica, in the run's precision: the parameters, their gradients and Adam's two moments, the
method's per-parameter state (EWC/MAS/SI's sums and SI's path integral: O(1) in the number of
tasks, they do not grow), the per-step temporaries of the method's formulas (at most three
parameter-sized tensors), and the activations of the largest batch the group forwards (the
evaluation batch, or the importance samples). The base examples are shared by the group and are
not counted. A fifth of the free memory is left as headroom.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cl_attractors.errors import ConfigError
from cl_attractors.replicas.group import build
from cl_attractors.replicas.methods import check_batched
from cl_attractors.replicas.stacked import stackable_layers
from cl_attractors.train.checks import available_bytes

HEADROOM = 0.8
TEMPORARIES = 3  # parameter-sized tensors a method's per-step formula may allocate


def per_replica_bytes(net: nn.Module, method: nn.Module, rows: int, dtype_bytes: int) -> int:
    """The memory one replica of ``net`` with ``method`` needs (see the module docstring)."""
    params = sum(p.numel() for p in net.parameters())
    state = sum(b.numel() for b in method.buffers() if b.numel() >= 2)
    widths = sum(m.out_features + m.in_features for m in net.modules() if isinstance(m, nn.Linear))
    return dtype_bytes * ((4 + TEMPORARIES) * params + state + 2 * rows * widths)


def device_free_bytes(accelerator: str) -> int:
    """Free memory of the device the group trains on: the GPU's, else this machine's."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info()[0])
    return available_bytes()


def max_replicas(args: Sequence[str]) -> int:
    """The largest group of runs like ``args`` (fit arguments) that fits the device (at least 1),
    or 0 where the replica engine cannot train such a run (a method or network without a replica
    form): ``experiment --replicas`` trains those one per process."""
    member = build(args)
    module, data = member.cli.model, member.cli.datamodule
    try:
        stackable_layers(module.net)
        check_batched(type(module.method))
    except ConfigError:
        return 0
    rows = max(
        data.eval_batch_size,
        data.batch_size,
        *(getattr(module.method, n, 0) for n in ("fisher_samples", "samples")),
    )
    dtype_bytes = 8 if str(member.cli.trainer.precision).startswith("64") else 4
    need = per_replica_bytes(module.net, module.method, rows, dtype_bytes)
    accelerator = str(member.config.trainer.get("accelerator", "auto"))
    return max(1, int(HEADROOM * device_free_bytes(accelerator)) // need)
