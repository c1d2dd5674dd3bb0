"""The two-attractor plasticity function (``formulas.plasticity2``, ``nearest``, ``TwoDips``, ``gate2_``)
against hand values, its in-place gate against the pure one, one φ per replica, and the nesting of
the paper's f."""

from __future__ import annotations

import math

import pytest
import torch

from cl_attractors.methods import formulas
from cl_attractors.methods.formulas import Dip, TwoDips, nearest, plasticity2

LN2 = math.log(2.0)  # exp(-LN2 * d^2) = 2^(-d^2): 1/2 at |d| = 1, 1/512 at |d| = 3
DIPS = TwoDips(a1=0.0, a2=2.0, lam=4.0, gamma=LN2, gamma2=LN2, f_min=0.0)


def test_f_has_a_dip_at_each_attractor_by_hand() -> None:
    w = torch.tensor([0.0, 2.0, 1.0, -1.0, 3.0])
    f = plasticity2(w, 0.0, 2.0, 4.0, LN2, LN2)
    # f(1) = 4 (1 - 1/2)(1 - 1/2); f(-1) = 4 (1 - 1/2)(1 - 1/512) = f(3)
    want = torch.tensor([0.0, 0.0, 1.0, 4 * 0.5 * 511 / 512, 4 * 511 / 512 * 0.5])
    assert torch.allclose(f, want, rtol=1e-6, atol=1e-7)
    floored = plasticity2(w, 0.0, 2.0, 4.0, LN2, LN2, f_min=1.0)
    assert torch.allclose(floored[:3], torch.tensor([1.0, 1.0, 1.0 + 3 * 0.25]), rtol=1e-6)


def test_nearest_attractor_by_hand() -> None:
    w = torch.tensor([-5.0, 0.9, 1.0, 1.1, 7.0])
    assert nearest(w, 0.0, 2.0).tolist() == [0.0, 0.0, 2.0, 2.0, 2.0]  # the tie at 1 goes to a2
    assert nearest(w, 2.0, 0.0).tolist() == [0.0, 0.0, 0.0, 2.0, 2.0]  # the tie goes to a2 = 0 now


def test_gate_slows_only_steps_away_from_the_nearer_attractor() -> None:
    # w = -1: nearer a1 = 0; g = +1 steps to -2 (away), g = -1 steps to 0 (toward).
    # w = 3: nearer a2 = 2; g = -1 steps to 4 (away), g = +1 steps to 2 (toward).
    w = torch.tensor([-1.0, -1.0, 3.0, 3.0, 0.0, 2.0])
    g = torch.tensor([1.0, -1.0, -1.0, 1.0, 0.5, -0.5])
    f_far = 4 * 0.5 * 511 / 512
    want = torch.tensor([f_far, -1.0, -f_far, 1.0, 0.0, 0.0])  # at an attractor: f = 0, frozen
    assert torch.allclose(formulas.gate(g, w, DIPS), want, rtol=1e-6, atol=1e-7)
    inplace = g.clone()
    DIPS.gate_(inplace, w, torch.empty_like(w), torch.empty_like(w))
    assert torch.allclose(inplace, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("f_min", [0.0, 0.3])
def test_in_place_gate_equals_the_pure_gate(f_min: float) -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(32, 17, generator=gen) * 0.5
    w[0, :4] = -0.2
    g = torch.randn(32, 17, generator=gen)
    g[1, :5] = 0.0
    dips = TwoDips(a1=0.279, a2=-0.2, lam=4.12, gamma=4.7, gamma2=9.0, f_min=f_min)
    inplace = g.clone()
    formulas.gate2_(inplace, w, torch.empty_like(w), torch.empty_like(w), dips)
    assert torch.allclose(inplace, formulas.gate(g, w, dips), rtol=1e-5, atol=1e-6)


def test_a_far_second_attractor_gives_back_the_papers_f() -> None:
    gen = torch.Generator().manual_seed(1)
    w, g = torch.randn(50, generator=gen) * 0.3, torch.randn(50, generator=gen)
    one = Dip(a1=0.279, lam=4.12, gamma=4.7, f_min=0.0)
    two = TwoDips(a1=0.279, a2=100.0, lam=4.12, gamma=4.7, gamma2=4.7, f_min=0.0)
    assert torch.allclose(formulas.gate(g, w, two), formulas.gate(g, w, one), rtol=1e-5, atol=1e-6)


def test_tensor_phi_broadcasts_like_r_scalar_calls() -> None:
    gen = torch.Generator().manual_seed(2)
    r = 3
    w, g = torch.randn(r, 4, 5, generator=gen) * 0.5, torch.randn(r, 4, 5, generator=gen)
    values = {
        "a1": [0.3, 0.1, 0.5],
        "a2": [-0.2, -0.4, 0.6],
        "gamma": [4.0, 1.0, 9.0],
        "gamma2": [2.0, 8.0, 1.0],
    }
    stacked = TwoDips(**{k: torch.tensor(v).view(r, 1, 1) for k, v in values.items()}, lam=4.0, f_min=0.1)
    inplace = g.clone()
    stacked.gate_(inplace, w, torch.empty_like(w), torch.empty_like(w))
    for i in range(r):
        scalar = TwoDips(**{k: v[i] for k, v in values.items()}, lam=4.0, f_min=0.1)
        want = formulas.gate(g[i], w[i], scalar)
        assert torch.allclose(formulas.gate(g, w, stacked)[i], want, rtol=1e-5, atol=1e-6)
        assert torch.allclose(inplace[i], want, rtol=1e-5, atol=1e-6)
