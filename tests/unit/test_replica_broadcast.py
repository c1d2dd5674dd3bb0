"""Hyperparameters as tensors: one φ per replica, ``[R, 1, 1]``, broadcast over weights stacked as
``[R, out, in]``, give what R separate calls with scalars give (the replica engine's premise)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from cl_attractors.methods import formulas
from cl_attractors.methods.formulas import Dip
from cl_attractors.methods.sticky_steps import algorithm1, algorithm1_

R = 3
GEN = torch.Generator().manual_seed(0)
W = torch.randn(R, 5, 4, generator=GEN) * 0.5
G = torch.randn(R, 5, 4, generator=GEN)
W[1, 0, 0] = 0.3  # exactly at that replica's attractor
G[2, 1, 1] = 0.0
PHI = {
    "a1": [0.1, 0.3, -0.2],
    "lam": [4.12, 2.0, 1.0],
    "gamma": [4.7, 1.0, 10.0],
    "f_min": [0.0, 0.5, 0.1],
    "zeta": [5.74e-4, 0.0, 1e-2],
    "scale": [1000.0, 0.2, 2.0],  # EWC's lambda, SI's 2c, MAS's 2 lambda
    "xi": [0.1, 1e-3, 1.0],
}


def stacked(name: str) -> Tensor:
    return torch.tensor(PHI[name]).view(R, 1, 1)


def dips() -> tuple[Dip, list[Dip]]:
    names = ("a1", "lam", "gamma", "f_min")
    tensor = Dip(*(stacked(n) for n in names))
    return tensor, [Dip(*(PHI[n][r] for n in names)) for r in range(R)]


def per_replica(fn: Callable[[int], Tensor]) -> Tensor:
    return torch.stack([fn(r) for r in range(R)])


def close(a: Tensor, b: Tensor) -> bool:
    """Equal up to float32 rounding (``-gamma * log2 e`` is rounded once as a tensor, in double
    as a Python number)."""
    return torch.allclose(a, b, rtol=2e-6, atol=1e-9)


def test_plasticity_and_the_gate() -> None:
    dip, scalar = dips()
    assert close(dip.f(W), per_replica(lambda r: scalar[r].f(W[r])))
    assert close(formulas.gate(G, W, dip), per_replica(lambda r: formulas.gate(G[r], W[r], scalar[r])))
    g, s, f = G.clone(), torch.empty_like(W), torch.empty_like(W)
    formulas.gate_(g, W, s, f, dip)

    def one(r: int) -> Tensor:
        gr = G[r].clone()
        formulas.gate_(gr, W[r], torch.empty_like(gr), torch.empty_like(gr), scalar[r])
        return gr

    assert close(g, per_replica(one))


def test_l1() -> None:
    zeta = stacked("zeta")
    assert torch.equal(
        formulas.l1_grad(W, zeta), per_replica(lambda r: formulas.l1_grad(W[r], PHI["zeta"][r]))
    )
    g = G.clone()
    formulas.add_l1_(g, W, torch.empty_like(W), zeta)

    def one(r: int) -> Tensor:
        gr = G[r].clone()
        formulas.add_l1_(gr, W[r], torch.empty_like(gr), PHI["zeta"][r])
        return gr

    assert torch.equal(g, per_replica(one))


@pytest.mark.parametrize("form", ["pure", "fast"])
def test_algorithm1_step(form: str) -> None:
    dip, scalar = dips()
    zeta = stacked("zeta")
    g = G.clone()
    if form == "pure":
        algorithm1([g], [W], zeta, dip)
    else:
        algorithm1_([g], [W], [torch.empty_like(W)], [torch.empty_like(W)], zeta, dip)

    def one(r: int) -> Tensor:
        gr = G[r].clone()
        algorithm1([gr], [W[r]], PHI["zeta"][r], scalar[r])
        return gr

    assert close(g, per_replica(one))


def test_quadratic_pull_and_si_importance() -> None:
    anchor, weight = torch.randn(R, 5, 4, generator=GEN), torch.rand(R, 5, 4, generator=GEN)
    got = formulas.quadratic_pull_grad(W, anchor, weight, stacked("scale"))
    want = per_replica(lambda r: formulas.quadratic_pull_grad(W[r], anchor[r], weight[r], PHI["scale"][r]))
    assert torch.equal(got, want)
    got = formulas.si_importance(G, W, stacked("xi"))
    assert torch.equal(got, per_replica(lambda r: formulas.si_importance(G[r], W[r], PHI["xi"][r])))
