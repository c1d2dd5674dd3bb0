"""A replica group: R fit runs of one architecture and protocol trained in one process.

    python cli.py replicas --runs GROUP.json      # GROUP.json: a list of fit argument lists

Each run is built exactly as ``cli.py fit ARGS`` builds it (its seed, initialisation, family
draws, method and hyperparameters; nothing trains), then the group trains them as one
:class:`~cl_attractors.replicas.module.ReplicaModule` and writes each run's directory as its
single run would: ``config.yaml``, ``accuracy_matrix.csv``, ``metrics.json``, the family's draws and
``checkpoints/task_XX.ckpt``. Runs that have task checkpoints resume from them (every run of a
group from the same task). A run whose loss turns NaN is recorded as failed (its ``run.log`` says
why) and the others go on; the exit status is 1 if any run failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.cli import SaveConfigCallback

from callbacks.task_checkpoint import load_problem
from callbacks.task_sequence import TaskSequence
from cl_attractors.errors import ConfigError
from cl_attractors.io import load_tensors
from cl_attractors.paths import task_checkpoints
from cl_attractors.replicas.data import ReplicaData
from cl_attractors.replicas.module import ReplicaModule
from cl_attractors.replicas.sequence import ReplicaSequence, stacked_optimizer_state
from cl_attractors.train.cli import CLI, make_cli
from cl_attractors.train.guard import AtomicCheckpointIO, RunDirLock, check_data_fits, check_method_fits

PER_RUN = {"seed", "seed_everything", "run_dir", "ckpt_path", "guard", "tasks"}
"""Top-level config keys that differ between the runs of one group."""


@dataclass
class Member:
    """One run of the group, built as its fit builds it."""

    args: list[str]
    cli: CLI
    run_dir: Path

    @property
    def config(self) -> Any:
        return self.cli.config


def build(args: Sequence[str]) -> Member:
    """The run of ``cli.py fit ARGS`` (``fit`` first or not), built but not trained."""
    fit_args = [a for a in args if a != "fit"]
    cli = make_cli(fit_args, run=False)
    run_dir = cli.config.get("run_dir")
    if not run_dir:
        raise ConfigError(f"run_dir=None is not allowed in a replica group; give each run --run_dir ({args})")
    return Member(list(args), cli, Path(run_dir))


def protocol(member: Member) -> dict[str, Any]:
    """What the runs of a group must share: the config without the per-run keys, the data's seed,
    the logger, and the method's numbers (its class and settings are checked by the method)."""
    config = member.config.as_dict()
    out = {k: v for k, v in config.items() if k not in PER_RUN}
    out["data"] = {k: v for k, v in (config.get("data") or {}).items() if k != "seed"}
    out["trainer"] = {
        k: v for k, v in (config.get("trainer") or {}).items() if k not in ("logger", "callbacks")
    }
    out["model"] = {k: v for k, v in (config.get("model") or {}).items() if k != "method"}
    return out


def check_one_protocol(members: Sequence[Member]) -> None:
    """Refuse runs of different architectures or protocols in one group (one line, the first key)."""
    first = protocol(members[0])
    for member in members[1:]:
        other = protocol(member)
        for key in sorted(set(first) | set(other)):
            if first.get(key) != other.get(key):
                detail = _first_difference(first.get(key), other.get(key), key)
                raise ConfigError(
                    f"{detail} differs between the runs of one replica group ({members[0].run_dir}, "
                    f"{member.run_dir}); a group shares architecture and protocol"
                )


def reset_optimizer(members: Sequence[Member]) -> bool:
    """The runs' ``tasks.reset_optimizer`` (one stacked optimizer: the same for all, or refused)."""
    values = {
        c.reset_optimizer for m in members for c in m.cli.trainer.callbacks if isinstance(c, TaskSequence)
    }
    if len(values) > 1:
        raise ConfigError(
            "tasks.reset_optimizer differs between the runs of one replica group; a group shares "
            "one optimizer: use one value"
        )
    return values.pop() if values else True


def check_members(members: Sequence[Member]) -> None:
    """Each run's network and method against its own task sequence, as its fit checks them before
    training (a family's read-out, a memory larger than the data): one line."""
    for member in members:
        check_data_fits(member.cli.datamodule, member.cli.model)
        check_method_fits(member.cli.datamodule, member.cli.model)


def _first_difference(a: Any, b: Any, key: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{key}.{k}")
    return key


def resume_points(members: Sequence[Member]) -> list[Path] | None:
    """Each run's newest task checkpoint that loads (all of the same task), or None: a fresh group."""
    found = []
    for m in members:
        loadable = [p for p in task_checkpoints(m.run_dir / "checkpoints") if load_problem(p) is None]
        found.append(loadable[0] if loadable else None)
    names = {p.name if p else None for p in found}
    if names == {None}:
        return None
    if len(names) > 1:
        raise ConfigError(
            f"checkpoints={sorted(str(n) for n in names)} is not allowed for one replica group; its "
            "runs resume from the same task (cli.py experiment groups them so)"
        )
    return [p for p in found if p is not None]


@dataclass
class Group:
    """A group ready to train: its runs, the stacked module, the data, the sequence, the resume."""

    members: list[Member]
    module: ReplicaModule
    data: ReplicaData
    sequence: ReplicaSequence
    resume: list[Path] | None


def prepare(arg_lists: Sequence[Sequence[str]], checkpoints: bool = True) -> Group:
    """Build every run as its fit would, check they form one group, stack them, load their
    checkpoints if they have any (``checkpoints=False``: none are read or written)."""
    members = [build(args) for args in arg_lists]
    check_one_protocol(members)
    module = ReplicaModule([m.cli.model for m in members])
    data = ReplicaData([m.cli.datamodule for m in members])
    singles = [m.cli.model.method for m in members]
    data_key = type(members[0].cli.datamodule).__qualname__
    resets = reset_optimizer(members)
    sequence = ReplicaSequence([m.run_dir for m in members], singles, data_key, checkpoints, resets)
    data.setup()  # the families draw once the data is loaded: then they can be checked, compared
    check_members(members)
    resume = resume_points(members) if checkpoints else None
    if resume is not None:
        states = [load_tensors(p) for p in resume]  # weights only: a planted pickle is refused unread
        for r, (member, ckpt) in enumerate(zip(members, states)):
            member.cli.datamodule.load_state_dict(ckpt[data_key])  # the same draws, or refused
            module.load_replica(r, ckpt["state_dict"])
        sequence.load_replicas(states)
        module.resumed_optimizer = stacked_optimizer_state(module, [c["optimizer_states"][0] for c in states])
    return Group(members, module, data, sequence, resume)


def fit(group: Group, callbacks: Sequence[pl.Callback] = ()) -> list[str | None]:
    """Train the group under each run's lock (``callbacks`` observe it after the sequence); each
    run's failure (None: it finished, or was dropped)."""
    locks = [RunDirLock(m.run_dir) for m in group.members]
    try:
        for member, lock in zip(group.members, locks):
            member.run_dir.mkdir(parents=True, exist_ok=True)
            lock.acquire()
            save_config(member)
        trainer = group_trainer(group.members[0], [group.sequence, *callbacks])
        ckpt_path = str(group.resume[0]) if group.resume else None
        trainer.fit(group.module, datamodule=group.data, ckpt_path=ckpt_path)
    finally:
        for lock in locks:
            lock.release()
    failures = [group.module.failures.get(r) for r in range(len(group.members))]
    for member, failure in zip(group.members, failures):
        if failure is not None:
            with open(member.run_dir / "run.log", "a", encoding="utf-8") as log:
                log.write(f"error: {failure}\n")
    return failures


def run_group(arg_lists: Sequence[Sequence[str]]) -> list[str | None]:
    """Train the group of runs ``arg_lists`` (fit arguments); each run's failure (None: finished)."""
    return fit(prepare(arg_lists))


def save_config(member: Member) -> None:
    """``config.yaml`` as the run's own fit writes it (LightningCLI's SaveConfigCallback)."""
    for callback in member.cli.trainer.callbacks:
        if isinstance(callback, SaveConfigCallback):
            path = member.run_dir / callback.config_filename
            callback.parser.save(callback.config, str(path), skip_none=False, overwrite=True, multifile=False)


def group_trainer(first: Member, callbacks: list[pl.Callback]) -> pl.Trainer:
    """The group's trainer: the runs' accelerator, precision and determinism; no logger, no
    validation loop (the sequence evaluates), checkpoints written by the sequence."""
    single = first.cli.trainer
    settings = first.config.trainer
    return pl.Trainer(
        accelerator=settings.get("accelerator", "auto"),
        devices=1,
        precision=single.precision,
        deterministic=settings.get("deterministic"),
        max_epochs=single.max_epochs,
        reload_dataloaders_every_n_epochs=single.reload_dataloaders_every_n_epochs,  # tasks' sizes
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=single.log_every_n_steps,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(first.run_dir.parent),
    )


def main(argv: Sequence[str]) -> None:
    """``cli.py replicas --runs GROUP.json``."""
    parser = argparse.ArgumentParser(prog="cli.py replicas", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, help="JSON file: a list of fit argument lists")
    args = parser.parse_args(list(argv))
    try:
        arg_lists = json.loads(Path(args.runs).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"--runs {args.runs} cannot be read ({' '.join(str(err).split())})") from None
    ok = isinstance(arg_lists, list) and arg_lists and all(isinstance(a, list) for a in arg_lists)
    if not ok:
        raise ConfigError(f"--runs {args.runs} is not allowed; use a JSON list of fit argument lists")
    failures = run_group(arg_lists)
    for run_args, failure in zip(arg_lists, failures):
        status = "finished" if failure is None else f"FAILED: {failure}"
        print(f"{' '.join(run_args)}: {status}", file=sys.stderr)
    if any(f is not None for f in failures):
        raise SystemExit(1)
