"""Shared test helpers: tiny synthetic runs through the real CLI, search and grid YAMLs, a bare
harness for the methods' hooks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from cl_attractors.methods import load_method
from cl_attractors.methods.base import CLMethod, MethodContext

ROOT = Path(__file__).resolve().parents[1]


def tiny_args(
    run_dir: Path, *extra: str, config: str = "configs/experiment/vanilla.yaml", num_tasks: int = 3
) -> list[str]:
    """``fit`` arguments for a few-second run: synthetic data, a 16-unit MLP, lr 1e-2."""
    return [
        "fit",
        "--config",
        str(ROOT / config),
        "--data.source",
        "synthetic",
        "--data.synthetic_size",
        "256",
        "--data.num_tasks",
        str(num_tasks),
        "--data.batch_size",
        "32",
        "--data.steps_per_chunk",
        "2",
        "--model.net.hidden_sizes",
        "[16]",
        "--model.optimizer.init_args.lr",
        "0.01",
        "--model.optimizer.init_args.fused",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.accelerator",
        "cpu",
        "--run_dir",
        str(run_dir),
        *extra,
    ]


def tiny_cli(run_dir: Path, *extra: str, num_tasks: int = 3) -> Any:
    """The LightningCLI of :func:`tiny_args` (model, datamodule, trainer), built but not fitted."""
    from cl_attractors.train.cli import make_cli

    return make_cli(tiny_args(run_dir, *extra, num_tasks=num_tasks)[1:], run=False)


def fit_tasks(cli: Any, ckpt_path: str | None = None) -> Any:
    """Fit ``cli``'s model (resuming from ``ckpt_path``) and return its TaskSequence callback."""
    from callbacks.task_sequence import TaskSequence

    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
    return next(c for c in cli.trainer.callbacks if isinstance(c, TaskSequence))


SPACE = {"a1": {"low": 0.01, "high": 10.0}, "lam": {"low": 4.0, "high": 10.0}}


def fit_args(*extra: str, num_tasks: int = 2) -> list[str]:
    """tiny_args without the ``fit`` subcommand and ``--run_dir`` (each trial sets its own), and
    without the per-task heat-map figures (the slowest part of a tiny trial)."""
    args = tiny_args(Path("unused"), num_tasks=num_tasks)[1:]
    i = args.index("--run_dir")
    return [
        *args[:i],
        *args[i + 2 :],
        "--model.method",
        str(ROOT / "configs/method/sticky.yaml"),
        "--data.eval_split",
        "val",
        "--tasks.heatmaps",
        "false",
        *extra,
    ]


def write_search(tmp_path: Path, **overrides: object) -> Path:
    """A search YAML in ``tmp_path`` (out_dir inside it) with ``overrides`` on top."""
    search = {
        "fit": fit_args(),
        "space": SPACE,
        "n_trials": 2,
        "out_dir": str(tmp_path / "study"),
        "sampler": {"seed": 3, "n_startup_trials": 1},
        "pruner": {"type": "none"},
    }
    search.update(overrides)
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(search))
    return path


TINY = [
    "--data.source",
    "synthetic",
    "--data.synthetic_size",
    "256",
    "--data.num_tasks",
    "2",
    "--data.batch_size",
    "32",
    "--model.net.hidden_sizes",
    "[16]",
    "--model.optimizer.init_args.fused",
    "false",
    "--trainer.accelerator",
    "cpu",
]


def write_spec(tmp: Path, **changes: object) -> Path:
    """An experiment YAML of two tiny variants and two seeds in ``tmp``, ``changes`` on top."""
    spec = {
        "name": "tiny",
        "kind": "curves",
        "base": "configs/experiment/vanilla.yaml",
        "seeds": [0, 1],
        "overrides": TINY,
        "variants": {
            "fast": ["--model.optimizer.init_args.lr", "0.01"],
            "slow": ["--model.optimizer.init_args.lr", "0.003"],
        },
        "out_dir": str(tmp / "runs"),
        "results_dir": str(tmp / "results"),
        "claims": [{"text": "fast beats slow", "type": "gap", "better": "fast", "worse": "slow"}],
    }
    spec.update(changes)
    if "claims" not in changes and not {"fast", "slow"} <= set(spec["variants"] or {}):
        spec["claims"] = []  # the default claim names the default variants
    path = tmp / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def metrics_json(seen: list[float], prev: list[float | None], cur: list[float], bwt: float) -> dict:
    """A finished run's metrics.json with the given per-task curves."""
    return {
        "avg_acc_seen": seen,
        "avg_acc_previous": prev,
        "current_acc": cur,
        "bwt": bwt,
        "forgetting": -bwt,
        "complete": True,
    }


def subclasses(base: type) -> list[type]:
    """Every subclass of ``base`` defined in the package, found, not listed: every module of
    ``cl_attractors.methods`` and ``cl_attractors.train`` is imported first."""
    import importlib
    import pkgutil

    import cl_attractors.methods
    import cl_attractors.train

    for package in (cl_attractors.methods, cl_attractors.train):
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{info.name}")
    found, todo = [], [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("cl_attractors.") and sub not in found:
                found.append(sub)
                todo.append(sub)
    return sorted(found, key=lambda c: c.__qualname__)


def paper_method(name: str, **overrides: object) -> Any:
    """The method of ``configs/method/<name>.yaml`` (the paper's values), ``overrides`` on top."""
    return load_method(ROOT / "configs" / "method" / f"{name}.yaml", **overrides)


class FakeData:
    """A fixed random classification set (4 features, 3 classes) that a context samples from."""

    def __init__(self, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x, self.y = torch.randn(64, 4, generator=gen), torch.randint(0, 3, (64,), generator=gen)

    def sample(self, task: int, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        idx = torch.randperm(len(self.y), generator=generator)[:n]
        return self.x[idx], self.y[idx]


def fake_context(net: nn.Module, task: int = 0, data: FakeData | None = None) -> MethodContext:
    """The context a method sees, over ``net`` and :class:`FakeData`."""
    return MethodContext(net, (data or FakeData()).sample, task)


def tiny_net(method: CLMethod, seed: int = 0, lr: float = 1e-2) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A Linear(4, 8)-ReLU-Linear(8, 3) net with ``method`` attached, and its Adam."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    method.attach(net)
    return net, torch.optim.Adam(net.parameters(), lr=lr)


def train_steps(
    method: CLMethod, net: nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int = 1
) -> None:
    """``steps`` optimizer steps on random batches shaped as :class:`FakeData`'s, through the hooks."""
    gen = torch.Generator().manual_seed(seed)
    ctx = fake_context(net)
    for _ in range(steps):
        x, y = torch.randn(16, 4, generator=gen), torch.randint(0, 3, (16,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        method.on_before_optimizer_step(ctx, opt)
        opt.step()
        method.on_after_optimizer_step(ctx, opt)


def quick_fit(net: nn.Module, method: CLMethod, dm: Any, *callbacks: Any) -> Tensor:
    """A quiet CPU ``trainer.fit`` of ``net`` with ``method`` on the datamodule ``dm`` (Adam 1e-2,
    seed 0, one evaluation per task, no logger or checkpoints); the accuracy matrix."""
    import lightning.pytorch as pl

    from callbacks.task_sequence import TaskSequence
    from cl_attractors.train.module import CLModule

    pl.seed_everything(0, verbose=False)
    sequence = TaskSequence(heatmaps=False)
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tempfile.mkdtemp(prefix="fit_"),
        max_epochs=dm.schedule.max_epochs,
        check_val_every_n_epoch=1,
        num_sanity_val_steps=0,
        reload_dataloaders_every_n_epochs=1,
        callbacks=[sequence, *callbacks],
    )
    optimizer = lambda params: torch.optim.Adam(params, lr=1e-2)  # noqa: E731
    trainer.fit(CLModule(net, method=method, optimizer=optimizer), datamodule=dm)
    return sequence.matrix


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``cli.py args`` in the background, with faulthandler on (SIGABRT dumps its threads' stacks);
    its stderr goes to a temporary file (see :func:`stderr_of`)."""
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", str(ROOT / "cli.py"), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=err,
        env=env,
    )
    proc.err = err  # type: ignore[attr-defined]
    return proc


def stderr_of(proc: subprocess.Popen) -> str:
    """What ``proc`` (from :func:`start`) has written to stderr so far ('' for any other process)."""
    err = getattr(proc, "err", None)
    if err is None:
        return ""
    err.seek(0)
    return err.read().decode(errors="replace")


def finish(proc: subprocess.Popen, timeout: float = 600) -> None:
    """Wait for ``proc`` and fail with the end of its stderr unless it exited 0."""
    if proc.wait(timeout=timeout) != 0:
        pytest.fail(f"exit {proc.returncode}: {stderr_of(proc)[-3000:]}")


def wait_for(condition: Callable[[], object], proc: subprocess.Popen, timeout: float = 240) -> None:
    """Poll ``condition`` until it holds; fail if ``proc`` ends first (with the end of its stderr)
    or after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        assert proc.poll() is None, f"the process ended first: {stderr_of(proc)[-2000:]}"
        time.sleep(0.05)
    pytest.fail("timed out waiting for the process")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def small_tmpfs(parent: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (mount's ``size=``, e.g. ``250k``, ``1M``) at ``parent/tmpfs``, for
    full-disk faults; unmounted afterwards. Mounting needs root: the test is skipped otherwise."""
    mount = parent / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


# a two-dataset sequence of synthetic sources (fit arguments), shared by the family tests
SEQUENCE = (
    "--data.family",
    "cl_attractors.train.sequence.DatasetSequence",
    "--data.source",
    "[synthetic, synthetic]",
    "--data.num_tasks",
    "2",
)
