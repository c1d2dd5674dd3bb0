"""Networks a run can use (``model.net``, by ``class_path``): plain ``nn.Module`` s, no Lightning.

A network maps a batch of inputs ``[n, ...]`` to logits ``[n, outputs]``; which outputs count for a
task is the task family's business (:meth:`cl_attractors.train.families.TaskFamily.output_mask`).
"""

from __future__ import annotations

import itertools

from torch import nn

from cl_attractors.errors import require


class MLP(nn.Sequential):
    """``Linear-ReLU`` blocks then a linear read-out, with PyTorch's default (Kaiming) init.

    Args:
        input_size: number of input features (the paper's 784 is in configs/model/mlp.yaml).
        hidden_sizes: widths of the hidden ReLU layers (the paper's ``[2000]``).
        num_classes: number of outputs.
    """

    def __init__(self, input_size: int, hidden_sizes: list[int], num_classes: int) -> None:
        sizes = [input_size, *hidden_sizes, num_classes]
        names = ["input_size", *(f"hidden_sizes[{i}]" for i in range(len(hidden_sizes))), "num_classes"]
        for name, value in zip(names, sizes):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            require(ok, f"model.net.init_args.{name}", value, "an integer >= 1")
        layers: list[nn.Module] = []
        for fan_in, fan_out in itertools.pairwise(sizes[:-1]):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        super().__init__(*layers, nn.Linear(sizes[-2], sizes[-1]))
        self.input_size = input_size  # the guard checks it against the data's features
