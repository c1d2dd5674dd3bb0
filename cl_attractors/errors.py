"""The one error type of cl-attractors and its one-line rendering.

Every expected failure (a value, file or setting the user can fix) is a :class:`ConfigError` whose
message is one line naming the field: ``<field>=<value> is not allowed; use <what is allowed>``.
``cli.py`` prints it as ``error: <message>`` with exit status 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import quote, unquote


class ConfigError(ValueError):
    """A value, file or setting is not allowed; the message is one line naming it."""


def require(ok: bool, field: str, value: object, allowed: str) -> None:
    """Raise :class:`ConfigError` with the one-line message unless ``ok``.

    Args:
        ok: whether the value is allowed.
        field: the full name of the field, as the user writes it (e.g. ``data.num_tasks``).
        value: the rejected value.
        allowed: what is allowed, phrased to follow "use".
    """
    if not ok:
        raise ConfigError(f"{field}={value!r} is not allowed; use {allowed}")


GENERATOR_SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed takes < 2**64: room for seed + task


def require_seed(value: object, field: str) -> None:
    """A seed that a generator takes: null (none given) or an integer in [0, 2**63 - 1]."""
    integer = isinstance(value, int) and not isinstance(value, bool)
    ok = value is None or (integer and 0 <= value <= GENERATOR_SEED_MAX)  # type: ignore[operator]
    require(ok, field, value, f"an integer in [0, {GENERATOR_SEED_MAX}]")


FLOAT32_MAX = 3.4028234663852886e38  # training runs in float32: a larger number turns inf there


def _in_float32(x: float) -> bool:
    return abs(x) <= FLOAT32_MAX if isinstance(x, int) else math.isfinite(x) and abs(x) <= FLOAT32_MAX


def require_finite(tree: Any, field: str) -> None:
    """Raise :class:`ConfigError` naming the first NaN, infinite or beyond-float32 number anywhere
    in ``tree`` (nested mappings and lists; ``field`` is the dotted name of ``tree`` itself)."""
    if isinstance(tree, float | int) and not isinstance(tree, bool) and not _in_float32(tree):
        require(False, field, tree, "a finite number (|x| <= 3.4e38, float32's range)")
    elif isinstance(tree, dict):
        for key, value in tree.items():
            require_finite(value, f"{field}.{key}" if field else str(key))
    elif isinstance(tree, list | tuple):
        for i, value in enumerate(tree):
            require_finite(value, f"{field}[{i}]")


OURS = re.compile(r"[\w.\[\]]+=\S.*? is not allowed; use .*?(?= - |$)")
PARSER_KEY = re.compile(r'Parser key "([^"]+)":\s*')
REQUIRED = re.compile(
    r'Parser key "([^"]+)":.*?Problem with given class_path \'[^\']+\': '
    r"the following arguments are required: ([\w, ]+?)(?= - |$)"
)


# ---- secrets: one masking for every message, log and file that may carry a storage URL ----------
MASK = "***"
SECRET_KEYS = ("password", "passwd", "pwd", "pass", "secret", "token", "api_key", "apikey", "access_key")
# scheme://user:PASSWORD@host: the password runs to the LAST '@' before a space, so one holding
# '@', ':', '/' or quotes is masked whole (an '@' later in the path masks more, never less)
USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/?#@\s]*):(?P<pw>\S*)@")
# key=value anywhere (a URL query, a libpq DSN, a log line), the key possibly percent-encoded
KEY_VALUE = re.compile(
    r"(?P<key>(?:[A-Za-z0-9_.\-]|%[0-9A-Fa-f]{2})+)(?P<eq>\s*(?:=|%3[Dd])\s*)(?P<value>[^&;\s'\"]*)"
)
_registered: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask ``value`` (and its percent-encoded and -decoded forms) wherever it is printed from now
    on: a password that no URL pattern finds (spaces, '/') is still masked."""
    if value and len(value) >= 4:
        _registered.update({value, quote(value, safe=""), unquote(value)} - {""})


def _secret_key(key: str) -> bool:
    k = unquote(key).lower()  # sslpassword, db_password, PGPASSWORD, x-api-key ...
    return k == "pass" or k.endswith(tuple(s for s in SECRET_KEYS if s != "pass")) or k.endswith("-key")


def mask_secrets(text: str) -> str:
    """``text`` with every password masked: URL userinfo (``scheme://user:PASSWORD@host``, '@'
    and ':' in the password included), ``password=`` style keys (URL queries, DSNs, percent-encoded
    keys too) and every registered secret."""
    for secret in sorted(_registered, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return KEY_VALUE.sub(
        lambda m: f"{m['key']}{m['eq']}{MASK}" if _secret_key(m["key"]) and m["value"] else m[0], text
    )


ENVIRONMENT = (
    "database or disk is full",
    "no space left on device",
    "disk quota exceeded",
    "read-only file system",
)


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and the exceptions behind it (``__cause__``, else ``__context__``), each once."""
    out: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and all(current is not e for e in out):
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def environment_cause(err: BaseException) -> BaseException | None:
    """The full disk (or read-only file system, quota) behind ``err``, however deep a library
    wrapped it (Optuna: StorageInternalError, then an assertion), or None."""
    return next((e for e in _chain(err) if any(text in str(e).lower() for text in ENVIRONMENT)), None)


def interrupted(err: BaseException) -> bool:
    """Whether a Ctrl-C is behind ``err``: one that lands while a C extension is being imported
    surfaces as ``ImportError: initialization failed`` from the KeyboardInterrupt."""
    return any(isinstance(e, KeyboardInterrupt) for e in _chain(err))


MAX_MESSAGE = 600  # characters of one message line: a value is never printed whole past this


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` as one printable line: secrets masked, control characters (NUL, newlines, escapes)
    shown escaped, at most ``limit`` characters (the middle cut)."""
    text = mask_secrets(text)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if len(text) > limit:
        cut = len(text) - limit
        text = f"{text[: limit // 2]} ...[{cut} characters cut]... {text[-limit // 2 :]}"
    return text


def one_line(err: BaseException) -> str:
    """The error's message on one bounded line (secrets masked, see :func:`bounded`): our own
    message if a parser wrapped one, else the innermost parser complaint prefixed by its full key
    (parser messages span many lines)."""
    return bounded(_one_line(err))


LONG_TOKEN = re.compile(r"\S{240,}")  # a huge value: kept as its ends before any other pattern runs


def _one_line(err: BaseException) -> str:
    text = LONG_TOKEN.sub(lambda m: f"{m[0][:100]}...{m[0][-100:]}", str(err)[: MAX_MESSAGE * 1000])
    text = " ".join(line.strip() for line in text[: MAX_MESSAGE * 40].splitlines() if line.strip())
    ours = OURS.search(text)
    if ours:
        return ours.group(0)
    required = REQUIRED.search(text)
    if required:  # a method argument without a default left out, or given as null
        key, names = required.groups()
        fields = ", ".join(f"{key}.init_args.{n.strip()}" for n in names.split(","))
        return f"{fields}: required (null or missing); give a value (see configs/method/*.yaml)"
    keys = PARSER_KEY.findall(text)
    if len(keys) > 1:
        inner = PARSER_KEY.split(text)[-1].split(" - ")[0].strip()
        return f"{'.'.join(keys)}: {inner}"
    return text or type(err).__name__
