"""Reference implementations of the methods' formulas, written for clarity: the oracles that
tests compare the fast forms in ``cl_attractors/methods/formulas.py`` against. Test-only."""

from __future__ import annotations

import torch
from torch import Tensor


def away_mask(w: Tensor, g: Tensor, a1: float) -> Tensor:
    """Algorithm 1's test ``sgn(w - a1) != sgn(g)``: the descent step ``-g`` moves away from a1.

    At ``w == a1`` exactly with ``g != 0`` the test says "away" (so ``f(a1)`` applies); with
    ``g == 0`` the result does not matter since the gradient is zero.
    """
    return torch.sign(w - a1) != torch.sign(g)


def sticky_multiplier(
    w: Tensor, g: Tensor, a1: float, lam: float, gamma: float, f_min: float = 0.0
) -> Tensor:
    """The per-component multiplier of Algorithm 1: ``f(w)`` where the gradient is away, else 1,
    with f as the paper writes it (Eq. 1, plus the floor): ``f_min + (lam - f_min)(1 - exp(...))``."""
    f = f_min + (lam - f_min) * (1.0 - torch.exp(-gamma * (w - a1) ** 2))
    return torch.where(away_mask(w, g, a1), f, torch.ones_like(f))


def si_path_step(omega: Tensor, g: Tensor, delta: Tensor) -> Tensor:
    """One step of SI's path integral as Zenke et al. write it: ``omega - g * delta``, with ``g``
    the unregularised gradient and ``delta`` the actual parameter change of the step."""
    return omega - g * delta


def si_penalty_grad(theta: Tensor, anchor: Tensor, big_omega: Tensor, c: float) -> Tensor:
    """Gradient ``2c * Omega * (theta - anchor)`` of SI's penalty ``c * sum Omega (theta - anchor)^2``."""
    return 2.0 * c * big_omega * (theta - anchor)
