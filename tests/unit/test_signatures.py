"""Constructor arguments as the parser sees them: ``**kwargs`` forwarded to a base is followed."""

from __future__ import annotations

import inspect

import pytest

from cl_attractors.errors import ConfigError
from cl_attractors.methods.sticky import StickyGradient
from cl_attractors.methods.sticky_two import TwoAttractorSticky
from cl_attractors.signatures import init_parameters, init_type_hints
from cl_attractors.train.checks import check_nulls


class Stops:
    def __init__(self, a: int, b: str = "x") -> None: ...


class Forwards(Stops):
    def __init__(self, c: float, **kwargs: object) -> None:
        super().__init__(**kwargs)


class Inherits(Forwards):
    pass


def test_forwarded_arguments_are_followed_to_the_base() -> None:
    assert list(init_parameters(Inherits)) == ["c", "a", "b"]
    assert init_parameters(Inherits)["b"].default == "x"
    assert init_type_hints(Inherits) == {
        "c": float,
        "a": int,
        "b": str,
        "kwargs": object,
        "return": type(None),
    }
    assert list(init_parameters(Stops)) == ["a", "b"]


def test_two_attractors_take_the_sticky_gradients_arguments_flat() -> None:
    two, one = init_parameters(TwoAttractorSticky), inspect.signature(StickyGradient).parameters
    assert list(two) == ["a2", "gamma2", *one]
    assert all(two[name].default == p.default for name, p in one.items())
    assert init_type_hints(TwoAttractorSticky)["f_min"] is float


def test_a_null_for_a_forwarded_argument_is_refused_in_one_line() -> None:
    method = {
        "class_path": "cl_attractors.methods.sticky_two.TwoAttractorSticky",
        "init_args": {"f_min": None},
    }
    with pytest.raises(
        ConfigError, match=r"model\.method\.init_args\.f_min=None is not allowed; use a float, not"
    ):
        check_nulls({"model": {"method": method}}, "model.method")
