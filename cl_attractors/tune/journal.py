"""A journal storage's file after a killed worker (issue 21, class 5)."""

from __future__ import annotations

import json
from pathlib import Path

from optuna.storages.journal import JournalFileSymlinkLock

from cl_attractors.errors import ConfigError


def repair_journal(path: Path) -> None:
    """Cut a torn last line (a worker killed mid-append) off the journal, under the journal's own
    lock (a live writer holds it while it appends): Optuna skips such a line on reading, but the
    next append would glue its record to it and no process could read the study again. A line in
    the middle that is not JSON is refused in one line naming it."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        with open(path, "rb+") as fh:
            data = fh.read()
            keep = data.rfind(b"\n") + 1
            if keep < len(data):
                fh.truncate(keep)
                print(f"note: cut a torn last line ({len(data) - keep} bytes) off the journal {path}")
        for number, line in enumerate(data[:keep].splitlines(), 1):
            try:
                json.loads(line)
            except ValueError:
                raise ConfigError(
                    f"search.storage journal {path} line {number} is not a journal record; restore the "
                    "file from a copy or start another study file"
                ) from None
    finally:
        lock.release()
