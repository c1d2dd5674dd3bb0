"""One-line validation errors: ``<field>=<value> is not allowed; use <what is allowed>``."""

from __future__ import annotations


def require(ok: bool, field: str, value: object, allowed: str,
            error: type[ValueError] = ValueError) -> None:
    """Raise ``error`` with the one-line message unless ``ok``.

    Args:
        ok: whether the value is allowed.
        field: the full name of the field, as the user writes it (e.g. ``data.num_tasks``).
        value: the rejected value.
        allowed: what is allowed, phrased to follow "use".
        error: the exception class (a ``ValueError`` subclass).
    """
    if not ok:
        raise error(f"{field}={value!r} is not allowed; use {allowed}")
