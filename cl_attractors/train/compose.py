"""Config composition: ``defaults`` lists, group files, file-relative paths and the one seed.

The ``fit`` command line is rewritten before LightningCLI parses it:

* ``--config FILE`` / ``-c FILE``: FILE's ``defaults: [other.yaml, ...]`` (paths relative to FILE)
  are applied first, depth-first and in order, then FILE itself; later files and flags override.
* ``--data FILE``, ``--model FILE``, ``--trainer FILE``: a group file. It holds either a config
  fragment under the group's key (``data: {...}``, as ``configs/data/*.yaml``) or the group's own
  arguments (``source: synthetic``); both are applied like ``--config``.
* Paths inside a file (``defaults``, ``model.method``, ``data.data_dir``) are relative to that file
  (:mod:`cl_attractors.paths`), so every config works from any directory.
* ``seed`` sets both the data seed (permutations, shuffles) and ``seed_everything`` (init): the
  older ``--seed_everything N`` and ``--data.seed N`` flags, and those keys in saved configs, are
  read as ``seed``.

Each file becomes an inline ``--config <yaml>`` argument with its paths already resolved.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from cl_attractors.errors import ConfigError, require
from cl_attractors.io import read_yaml_mapping
from cl_attractors.paths import is_config_path, resolve_relative

GROUPS = ("data", "model", "trainer")
NEGATIVE_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|-\.?inf", re.IGNORECASE)
SEED_ALIASES = ("--seed_everything", "--data.seed")


def read_config(path: Path, flag: str = "--config") -> dict[str, Any]:
    """The mapping held by the YAML file ``path`` (a one-line ConfigError otherwise)."""
    content = read_yaml_mapping(path, flag)
    for group in GROUPS:
        value = content.get(group)
        require(value is None or isinstance(value, dict), group, value, "a mapping of its fields")
    return content


def resolve_paths(content: dict[str, Any], path: Path) -> None:
    """Make the input paths of a fit config read from ``path`` usable from the working directory."""
    model, data = content.get("model"), content.get("data")
    if isinstance(model, dict) and is_config_path(model.get("method")):
        model["method"] = resolve_relative(model["method"], path)
    if isinstance(data, dict) and isinstance(data.get("data_dir"), str):
        data["data_dir"] = resolve_relative(data["data_dir"], path)


def migrate_seed(content: dict[str, Any], path: Path) -> None:
    """Read a config's ``seed_everything`` and ``data.seed`` (two seeds before ``seed``) as ``seed``."""
    data = content.get("data")
    old = {"seed_everything": content.pop("seed_everything", None)}
    if isinstance(data, dict):
        old["data.seed"] = data.pop("seed", None)
    given = {k: v for k, v in {**old, "seed": content.get("seed")}.items() if v is not None}
    if len(set(map(repr, given.values()))) > 1:
        found = ", ".join(f"{k}={v!r}" for k, v in given.items())
        raise ConfigError(f"--config {path}: {found} differ; use one 'seed: N' (it sets both)")
    if given:
        content["seed"] = next(iter(given.values()))


def expand_defaults(path: str | Path, group: str | None = None, _seen: tuple[Path, ...] = ()) -> list[str]:
    """``--config`` arguments for the file ``path`` with its ``defaults`` expanded depth-first.

    ``group`` names the group of a group file (``--data FILE``): its content goes under that key
    unless it already has it.
    """
    path = Path(path)
    flag = f"--{group}" if group else "--config"
    content = read_config(path, flag)
    if path.resolve() in _seen:
        raise ConfigError(f"{flag} {path}: 'defaults' form a cycle")
    defaults = content.pop("defaults", [])
    if not isinstance(defaults, list) or not all(isinstance(d, str) and d for d in defaults):
        raise ConfigError(f"{flag} {path}: defaults={defaults!r} is not allowed; use a list of paths")
    if group and content and group not in content:
        content = {group: content}
    args: list[str] = []
    for item in defaults:
        args += expand_defaults(resolve_relative(item, path), None, (*_seen, path.resolve()))
    resolve_paths(content, path)
    migrate_seed(content, path)
    if content:
        args += ["--config", yaml.safe_dump(content, sort_keys=False)]
    return args


def _split(argv: Sequence[str]) -> Iterator[tuple[str, str | None]]:
    """``(flag, value)`` for ``--flag value`` and ``--flag=value`` of the flags rewritten here,
    ``(arg, None)`` for everything else."""
    takes_value = ("--config", "-c", "--seed", *SEED_ALIASES, *(f"--{g}" for g in GROUPS))
    it = iter(argv)
    for arg in it:
        flag, eq, value = arg.partition("=")
        if flag in takes_value and eq:
            yield flag, value
        elif arg in takes_value:
            yield arg, next(it, "")
        else:
            yield arg, None


def expand_argv(argv: Sequence[str]) -> list[str]:
    """The ``fit`` arguments with config and group files expanded and the seed aliases read, and
    ``--flag -1e-3`` written as ``--flag=-1e-3`` (argparse takes ``-1e-3`` for an option)."""
    out: list[str] = []
    for flag, value in _split(argv):
        glued = out and out[-1].startswith("--") and "=" not in out[-1]
        if value is None and glued and NEGATIVE_NUMBER.fullmatch(flag):
            out[-1] += f"={flag}"
            continue
        if value is None:
            out.append(flag)
        elif flag in ("--config", "-c"):
            out += expand_defaults(value)
        elif flag.lstrip("-") in GROUPS and is_config_path(value):
            out += expand_defaults(value, flag.lstrip("-"))
        elif flag in SEED_ALIASES:
            out += ["--seed", value]
        else:
            out += [flag, value]
    return out
