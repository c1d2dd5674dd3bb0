"""The adversarial set of issue 21, shared by its two files: cases drawn per class, beyond the
ones the issue names. Each test draws its cases (hypothesis, derandomized so CI sees the same ones;
widen ``ADVERSARIAL_EXAMPLES`` locally to explore) and states the class's promise for every one:

1. a file that would run code when unpickled never does (every payload, container and format);
2. ``merge`` never copies a link out of the run, a loop or a special file, and a tree it accepts
   is copied with every link inside the copy;
3. no password, in any URL form, reaches a message;
4. bombs, NUL bytes and huge values end with one bounded line, exit 2;
5. a torn ``metrics.json`` or journal tail is repaired to what it was;
6. any report option value is refused in one line naming it, or accepted by the report's checks.

Files an attacker plants (1, 2, 5): ``test_adversarial_files.py``; what an attacker types or
writes into a config (3, 4, 6): ``test_adversarial_input.py``. Run both with ``pytest -q`` and
count: the number of examples per test is :data:`EXAMPLES` (and the parametrized cases); every
one must hold.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings


def fresh(tmp_path: Path) -> Path:
    """A new folder per drawn example (hypothesis runs many in one test's tmp_path)."""
    return Path(tempfile.mkdtemp(dir=tmp_path))


EXAMPLES = int(os.environ.get("ADVERSARIAL_EXAMPLES", "25"))
CASES = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
