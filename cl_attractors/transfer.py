"""Bringing a directory made elsewhere into this one without trusting it (issue 21, class 2).

* :func:`copy_inside` copies a tree without following a single link: a symbolic link is copied
  as a link only when it resolves inside the tree being copied (``checkpoints/last.ckpt ->
  task_09.ckpt``), any other link (to a file outside, a loop, a dangling one) and any special
  file (FIFO, device, socket) is refused in one line before anything is written.
* :func:`swap_in` puts a verified copy in place of a directory in one atomic exchange
  (``renameat2(RENAME_EXCHANGE)`` on Linux), so a kill at any moment leaves either the old
  directory or the new one at the path, never a mix, never nothing.
* Copies are staged beside their target (``.NAME.merge-PID``); :func:`clear_stale` removes those
  a killed merge left.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from cl_attractors.errors import ConfigError

STAGING = ".{name}.merge-"
AT_FDCWD = -100
RENAME_EXCHANGE = 2


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_tree(src: Path, skip: Iterable[str] = ()) -> None:
    """Refuse ``src`` if it holds a link that leaves it (or dangles, or loops) or a special file."""
    root = Path(os.path.realpath(src))
    skipped = set(skip)
    for entry, _ in _walk(Path(src), skipped):
        mode = entry.lstat().st_mode
        if stat.S_ISLNK(mode):
            target = Path(os.path.realpath(entry))
            if not _inside(target, root) or not target.exists() or target.is_dir():
                raise ConfigError(
                    f"--from: {entry} is a link to {os.readlink(entry)}, which is not a file inside "
                    f"{src}; a merged run may link only to its own files (remove the link there)"
                )
        elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise ConfigError(f"--from: {entry} is not a regular file or folder; remove it there")


def _walk(directory: Path, skip: set[str]) -> Iterable[tuple[Path, Path]]:
    """(entry, path relative to the top) for everything under ``directory``; links not followed."""
    stack = [Path()]
    while stack:
        rel = stack.pop()
        with os.scandir(directory / rel) as entries:
            for entry in entries:
                if entry.name in skip:
                    continue
                yield Path(entry.path), rel / entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append(rel / entry.name)


def copy_inside(src: Path, dst: Path, skip: Iterable[str] = ()) -> None:
    """Copy the tree ``src`` to the new folder ``dst`` (files with their times; links inside the
    tree as relative links; see :func:`check_tree`, which runs first)."""
    check_tree(src, skip)
    dst.mkdir(parents=True)
    for entry, rel in _walk(Path(src), set(skip)):
        target = dst / rel
        if entry.is_symlink():
            resolved = Path(os.path.realpath(entry)).relative_to(os.path.realpath(src))
            target.symlink_to(os.path.relpath(dst / resolved, target.parent))
        elif entry.is_dir():
            target.mkdir()
        else:
            shutil.copy2(entry, target, follow_symlinks=False)
    shutil.copystat(src, dst)


def staging_path(target: Path) -> Path:
    """Where a copy for ``target`` is staged: beside it, on the same file system."""
    return target.parent / f"{STAGING.format(name=target.name)}{os.getpid()}"


def clear_stale(target: Path) -> None:
    """Remove what killed merges of ``target`` left beside it (their process is gone); a local
    run set aside by a swap that was killed halfway goes back to ``target``."""
    for old in target.parent.glob(f"{STAGING.format(name=target.name)}*-old"):
        if not target.exists():
            old.rename(target)
    for path in target.parent.glob(f"{STAGING.format(name=target.name)}*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange ``a`` and ``b`` (both exist); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except AttributeError:
        return False
    done = renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if done == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this file system cannot exchange
        return False
    raise OSError(errno, os.strerror(errno), str(b))


def swap_in(staged: Path, target: Path) -> None:
    """Put ``staged`` at ``target`` atomically; what was at ``target`` is removed after the swap."""
    if not target.exists():
        staged.rename(target)
        return
    if not _exchange(staged, target):  # two renames: a kill between them leaves the old one aside
        aside = staged.with_name(staged.name + "-old")
        target.rename(aside)
        staged.rename(target)
        staged = aside
    shutil.rmtree(staged, ignore_errors=True)
