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
        num_classes: outputs of a head.
        heads: heads stacked in the read-out, ``heads * num_classes`` outputs (one per task for
            task-incremental learning; the task family says which outputs count for a task).
    """

    def __init__(self, input_size: int, hidden_sizes: list[int], num_classes: int, heads: int = 1) -> None:
        sizes = [input_size, *hidden_sizes, num_classes, heads]
        names = [
            "input_size",
            *(f"hidden_sizes[{i}]" for i in range(len(hidden_sizes))),
            "num_classes",
            "heads",
        ]
        for name, value in zip(names, sizes):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            require(ok, f"model.net.init_args.{name}", value, "an integer >= 1")
        layers: list[nn.Module] = []
        widths = [input_size, *hidden_sizes]
        for fan_in, fan_out in itertools.pairwise(widths):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        super().__init__(*layers, nn.Linear(widths[-1], heads * num_classes))
        self.input_size = input_size  # the guard checks it against the data's features


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class CNN(nn.Sequential):
    """``[3x3 conv (padding 1), ReLU, 2x2 max-pool]`` per entry of ``channels``, then a hidden
    ReLU layer and a linear read-out of ``heads * num_classes`` outputs (PyTorch's default init).

    Args:
        image_size: ``[height, width]`` of the inputs (28 x 28 for MNIST; each must stay >= 1
            after the pools).
        num_classes: outputs per head.
        heads: heads stacked in the read-out (one per task for task-incremental learning; the task
            family says which outputs count for a task).
        channels: output channels of each conv block.
        hidden: width of the hidden linear layer.
        in_channels: image channels (1 for MNIST-like sources).
    """

    def __init__(
        self,
        image_size: list[int],
        num_classes: int,
        heads: int = 1,
        channels: list[int] | None = None,
        hidden: int = 128,
        in_channels: int = 1,
    ) -> None:
        channels = [32, 64] if channels is None else list(channels)
        field = "model.net.init_args"
        ok_size = (
            isinstance(image_size, list | tuple) and len(image_size) == 2 and all(map(_positive, image_size))
        )
        require(ok_size, f"{field}.image_size", image_size, "[height, width], integers >= 1")
        for name, value in (("num_classes", num_classes), ("heads", heads), ("hidden", hidden)):
            require(_positive(value), f"{field}.{name}", value, "an integer >= 1")
        require(_positive(in_channels), f"{field}.in_channels", in_channels, "an integer >= 1")
        ok_channels = len(channels) >= 1 and all(map(_positive, channels))
        require(ok_channels, f"{field}.channels", channels, "a non-empty list of integers >= 1")
        height, width = image_size
        pooled = (height >> len(channels), width >> len(channels))
        require(
            min(pooled) >= 1,
            f"{field}.image_size",
            image_size,
            f"a size that survives {len(channels)} 2x2 pools",
        )
        layers: list[nn.Module] = [nn.Unflatten(1, (in_channels, height, width))]
        for c_in, c_out in zip([in_channels, *channels], channels):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        flat = channels[-1] * pooled[0] * pooled[1]
        layers += [nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, heads * num_classes)]
        super().__init__(*layers)
