"""Bad method arguments, as a user gives them or as direct Python use passes them: one-line
:class:`ConfigError` naming the field, raised when the method is built."""

from __future__ import annotations

from typing import Any

import pytest

from cl_attractors.errors import ConfigError
from tests.helpers import paper_method


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: paper_method("sticky", lam=-1.0), "lam"),
        (lambda: paper_method("sticky", gamma=0.0), "gamma"),
        (lambda: paper_method("sticky", sigma=-0.1), "sigma"),
        (lambda: paper_method("sticky", zeta=-1e-3), "zeta"),
        (lambda: paper_method("sticky", f_min=5.0), "f_min"),
        (lambda: paper_method("sticky", apply_to="both"), "apply_to"),
        (lambda: paper_method("sticky", l1_apply_to="x"), "l1_apply_to"),
        (lambda: paper_method("ewc", lam=-1.0), "lam"),
        (lambda: paper_method("ewc", fisher="exact"), "fisher"),
        (lambda: paper_method("ewc", mode="sum"), "mode"),
        (lambda: paper_method("ewc", fisher_samples=0), "fisher_samples"),
        (lambda: paper_method("si", c=-0.1), "c"),
        (lambda: paper_method("si", xi=0.0), "xi"),
        (lambda: paper_method("mas", lam=-1.0), "lam"),
        (lambda: paper_method("mas", samples=0), "samples"),
        # direct Python use, past the CLI's generic checks: every number finite and in float32's range
        (lambda: paper_method("sticky", a1=float("nan")), "a1"),
        (lambda: paper_method("sticky", mu=float("-inf")), "mu"),
        (lambda: paper_method("sticky", lam=float("inf")), "lam"),
        (lambda: paper_method("sticky", sigma=1e39), "sigma"),
        (lambda: paper_method("ewc", lam=float("inf")), "lam"),
        (lambda: paper_method("ewc", lam=10**40), "lam"),
        (lambda: paper_method("ewc", seed=2**64), "seed"),
        (lambda: paper_method("ewc", seed=-1), "seed"),
        (lambda: paper_method("ewc", fisher="batched", fisher_samples=8, fisher_chunk=32), "fisher_samples"),
        (lambda: paper_method("si", c=float("inf")), "c"),
        (lambda: paper_method("si", xi=float("nan")), "xi"),
        (lambda: paper_method("mas", lam=float("nan")), "lam"),
        (lambda: paper_method("mas", seed=2**63), "seed"),
    ],
)
def test_bad_inputs_raise_one_line_errors_naming_the_field(factory: Any, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^method\.{field}=.+ is not allowed; use ") as info:
        factory()
    assert "\n" not in str(info.value)
