"""R copies of one MLP as one network: weights ``[R, out, in]``, inputs ``[R, B, in]``, ``bmm``.

Replica ``r`` of a :class:`StackedMLP` computes exactly what the ``r``-th source network computes
(each row of a ``bmm`` is its own replica's matrix product), so R independent runs train as one
model. With the loss :func:`replica_losses` ``.sum()`` (each replica's mean loss, summed), the
gradient of every replica's slice is its own run's gradient, and an elementwise optimizer (Adam)
over the stacked parameters is exactly R optimizers. :meth:`StackedMLP.unstack` gives each
replica's ``state_dict`` back in its source network's names, for its own checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cl_attractors.errors import ConfigError

ROWWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.SiLU, nn.Identity)
"""Activations applied to each row on its own: the same module serves every replica."""


class StackedLinear(nn.Module):
    """R linear layers: ``y[r] = x[r] @ weight[r].T + bias[r]``; ``weight [R, out, in]``,
    ``bias [R, 1, out]`` (so a ``[R, 1, 1]`` hyperparameter broadcasts over both)."""

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias) if bias is not None else None

    def forward(self, x: Tensor) -> Tensor:
        if self.bias is None:
            return torch.bmm(x, self.weight.transpose(1, 2))
        return torch.baddbmm(self.bias, x, self.weight.transpose(1, 2))


def stackable_layers(net: nn.Module) -> list[nn.Module]:
    """The layers of an ``nn.Sequential`` MLP (nested ``Sequential``s flattened), or a one-line
    refusal naming what the replica engine cannot stack."""
    if not isinstance(net, nn.Sequential):
        raise ConfigError(
            f"model.net={type(net).__name__} is not allowed with replicas; use an nn.Sequential of "
            "Linear and activation layers (an MLP)"
        )
    out: list[nn.Module] = []
    for layer in net:
        if isinstance(layer, nn.Sequential):
            out += stackable_layers(layer)
        elif isinstance(layer, (nn.Linear, *ROWWISE)):
            out.append(layer)
        else:
            raise ConfigError(
                f"model.net layer {type(layer).__name__} is not allowed with replicas; use Linear "
                f"and row-wise activations ({', '.join(t.__name__ for t in ROWWISE)})"
            )
    return out


class StackedMLP(nn.Module):
    """R MLPs of one architecture as one: built from the R networks, unstacked back per replica.

    Args:
        nets: the replicas' networks (``nn.Sequential`` of ``Linear`` and row-wise activations),
            each initialised as its own single run initialises it.
    """

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        super().__init__()
        if not nets:
            raise ConfigError("replicas=0 is not allowed; use at least one replica")
        per_net = [stackable_layers(net) for net in nets]
        shapes = [[_shape(layer) for layer in layers] for layers in per_net]
        if any(s != shapes[0] for s in shapes):
            raise ConfigError(
                "model.net differs between the replicas of one group; replicas share one architecture"
            )
        self.names = _param_names(nets[0])
        self.shapes = [tuple(nets[0].get_parameter(name).shape) for name in self.names]
        layers: list[nn.Module] = []
        for i, layer in enumerate(per_net[0]):
            if isinstance(layer, nn.Linear):
                column = [m for m in (net_layers[i] for net_layers in per_net) if isinstance(m, nn.Linear)]
                weight = torch.stack([m.weight.detach() for m in column]).clone()
                has_bias = layer.bias is not None
                bias = torch.stack([m.bias.detach()[None] for m in column]).clone() if has_bias else None
                layers.append(StackedLinear(weight, bias))
            else:
                layers.append(layer)
        self.layers = nn.Sequential(*layers)
        self.replicas = len(nets)

    def forward(self, x: Tensor) -> Tensor:
        """``x [R, B, ...]`` (flattened to ``[R, B, in]``) to outputs ``[R, B, out]``."""
        return self.layers(x.flatten(2))

    def linears(self) -> list[StackedLinear]:
        return [m for m in self.layers if isinstance(m, StackedLinear)]

    def stacked_parameters(self) -> list[Tensor]:
        """Every parameter in the source network's order (``names``)."""
        return [p for m in self.linears() for p in (m.weight, m.bias) if p is not None]

    def unstack(self, r: int) -> dict[str, Tensor]:
        """Replica ``r``'s parameters in its source network's names (copies, on the CPU)."""
        params = self.stacked_parameters()
        return {
            name: p.detach()[r].reshape(shape).clone().cpu()
            for name, shape, p in zip(self.names, self.shapes, params)
        }

    @torch.no_grad()
    def load_replica(self, r: int, state: dict[str, Tensor]) -> None:
        """Set replica ``r``'s parameters from a source network's ``state_dict``."""
        for name, p in zip(self.names, self.stacked_parameters()):
            p[r].copy_(state[name].reshape(p.shape[1:]))


def _shape(layer: nn.Module) -> tuple:
    if isinstance(layer, nn.Linear):
        return ("Linear", layer.in_features, layer.out_features, layer.bias is not None)
    return (type(layer).__name__, repr(layer))


def _param_names(net: nn.Module) -> list[str]:
    """The names of ``net``'s Linear parameters, in forward order."""
    owners = {id(m): prefix for prefix, m in net.named_modules()}
    names = []
    for layer in stackable_layers(net):
        if isinstance(layer, nn.Linear):
            prefix = owners[id(layer)]
            names += [f"{prefix}.{n}" for n, p in layer.named_parameters() if p is not None]
    return names


def replica_losses(logits: Tensor, y: Tensor) -> Tensor:
    """Each replica's mean cross-entropy, ``[R]``, from logits ``[R, B, C]`` and labels ``[R, B]``.

    ``.sum()`` of it is the loss whose gradient in each replica's slice is that replica's own.
    """
    r, b, c = logits.shape
    return F.cross_entropy(logits.reshape(r * b, c), y.reshape(r * b), reduction="none").view(r, b).mean(1)
