"""A resume is the run's own: ``fit --run_dir R --ckpt_path last`` continues R with the config R
was made with (``R/config.yaml``, saved when it started). With nothing else on the command line
that config is used as it is; any argument whose value differs from it is refused in one line
naming it, since one run trained under two configs is neither of them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cl_attractors.errors import ConfigError
from cl_attractors.io import read_yaml

# keys a resume may set differently: how to resume, what to print, where Lightning shows progress,
# and where the run lies now (a run moved or merged from another machine resumes where it is)
FREE = (
    "ckpt_path",
    "trainer.enable_progress_bar",
    "print_config",
    "run_dir",
    "trainer.logger.init_args.save_dir",
    "trainer.logger.init_args.version",
)
TERMINAL = "callbacks.terminal."


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}`` (lists and scalars are leaves)."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _shown(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without the terminal's callbacks (a progress bar, or a line per task: how the
    run is shown, not what it learns)."""
    trainer = dict(config.get("trainer") or {})
    kept = [
        c for c in trainer.get("callbacks") or [] if not str(c.get("class_path", "")).startswith(TERMINAL)
    ]
    return {**config, "trainer": {**trainer, "callbacks": kept}}


def differences(saved: dict[str, Any], given: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, saved value, given value) for each leaf that differs, :data:`FREE` keys and the
    terminal's callbacks aside."""
    a, b = flatten(_shown(saved)), flatten(_shown(given))
    keys = sorted(set(a) | set(b))
    return [
        (k, a.get(k), b.get(k))
        for k in keys
        if a.get(k) != b.get(k) and not any(k == f or k.startswith(f + ".") for f in FREE)
    ]


def run_config(run_dir: str | Path) -> Path | None:
    """``R/config.yaml`` when R was made by a fit (None: a new run)."""
    path = Path(run_dir) / "config.yaml"
    return path if path.is_file() else None


def resume_args(args: Sequence[str]) -> list[str]:
    """``fit --run_dir R --ckpt_path ...`` without a config: R's own config first, so that the
    resume trains with what R was made with."""
    args = list(args)
    if "--ckpt_path" not in args or "--run_dir" not in args:
        return args
    if any(a in ("-c", "--config") or a.startswith("--config=") for a in args):
        return args
    saved = run_config(args[args.index("--run_dir") + 1])
    if saved is None:
        return args
    i = args.index("fit") + 1 if "fit" in args else 0
    return [*args[:i], "--config", str(saved), *args[i:]]


def check_resume(run_dir: str | Path, given: dict[str, Any]) -> None:
    """Refuse a resume of ``run_dir`` whose config (``given``, as LightningCLI resolved it)
    differs from the one the run was made with."""
    saved_path = run_config(run_dir)
    if saved_path is None:
        return
    saved = read_yaml(saved_path, "--run_dir") or {}
    found = differences(saved, given)
    if found:
        key, was, now = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ConfigError(
            f"--{key}={now!r} is not allowed on a resume of {run_dir}: the run was made with "
            f"{key}={was!r}{more}; drop it (`fit --run_dir {run_dir} --ckpt_path last` resumes "
            "with the run's own config) or use another --run_dir"
        )
