"""One-line validation errors for method arguments."""

from __future__ import annotations


def require(ok: bool, field: str, value: object, allowed: str) -> None:
    """Raise ``ValueError("method.<field>=<value> is not allowed; use <allowed>")`` unless ``ok``.

    Args:
        ok: whether the value is allowed.
        field: the argument's name.
        value: the rejected value.
        allowed: what is allowed, phrased to follow "use".
    """
    if not ok:
        raise ValueError(f"method.{field}={value!r} is not allowed; use {allowed}")
