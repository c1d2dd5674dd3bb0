"""The small CNN: shapes, heads, bad arguments, and the importance estimators' fallback for
layers the Linear-layer identity cannot factor (convolutions)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cl_attractors.errors import ConfigError
from cl_attractors.methods.importance import _linear_owners, fisher_diagonal, mas_importance
from cl_attractors.train.networks import CNN


def test_cnn_reads_flat_images_and_stacks_heads() -> None:
    net = CNN([28, 28], num_classes=2, heads=5, channels=[4, 8], hidden=16)
    assert net(torch.rand(3, 784)).shape == (3, 10)
    assert CNN([32, 32], num_classes=10)(torch.rand(2, 1024)).shape == (2, 10)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"image_size": [28]}, "image_size"),
        ({"image_size": [2, 2], "channels": [4, 4]}, "image_size"),
        ({"heads": 0}, "heads"),
        ({"channels": []}, "channels"),
        ({"hidden": 1.5}, "hidden"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict, field: str) -> None:
    args = {"image_size": [28, 28], "num_classes": 10, **kwargs}
    with pytest.raises(ConfigError, match=rf"^model\.net\.init_args\.{field}="):
        CNN(**args)


def per_sample_reference(net: torch.nn.Module, x: torch.Tensor, loss) -> dict[str, torch.Tensor]:
    """The definition, one sample at a time with plain autograd."""
    out = {n: torch.zeros_like(p) for n, p in net.named_parameters()}
    for i in range(len(x)):
        net.zero_grad()
        loss(net(x[i : i + 1]), i).backward()
        for n, p in net.named_parameters():
            out[n] += p.grad / len(x)
    return out


def test_importance_falls_back_to_the_definition_on_convolutions() -> None:
    torch.manual_seed(0)
    net = CNN([8, 8], num_classes=3, channels=[2], hidden=5)
    params = dict(net.named_parameters())
    assert _linear_owners(net, params) is None  # the fast identity cannot factor a Conv2d
    x, y = torch.rand(6, 64), torch.randint(0, 3, (6,))
    fisher = fisher_diagonal(net, params, x, y, "empirical", chunk_size=4, fast=True)

    def squared_grad_loss(out: torch.Tensor, i: int) -> torch.Tensor:
        return F.cross_entropy(out, y[i : i + 1])

    # mean of squared per-sample gradients: compare against squares taken per sample
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    for i in range(len(x)):
        g = per_sample_reference(net, x[i : i + 1], lambda out, _, i=i: squared_grad_loss(out, i))
        for n in expected:
            expected[n] += g[n].square() / len(x)
    for n in params:
        torch.testing.assert_close(fisher[n], expected[n], rtol=1e-4, atol=1e-8)
    mas = mas_importance(net, params, x, chunk_size=4, fast=True)
    for n in params:
        ref = torch.zeros_like(params[n])
        for i in range(len(x)):
            g = per_sample_reference(net, x[i : i + 1], lambda out, _: out.square().sum())
            ref += g[n].abs() / len(x)
        torch.testing.assert_close(mas[n], ref, rtol=1e-4, atol=1e-8)
