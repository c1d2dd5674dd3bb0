"""What ``wip/README.md`` lists as kept between sessions is in the repository: it exists and git
does not ignore it (a ``runs/`` ignore pattern once swallowed ``wip/runs/``, and a grid's finished
runs listed there were never committed)."""

from __future__ import annotations

import subprocess

from tests.helpers import ROOT

WIP = ROOT / "wip"


def listed() -> list[str]:
    """The first cell of every row of the README's table (a path under wip/)."""
    text = (WIP / "README.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    return [row.split("|")[1].strip().strip("`") for row in rows[1:]]  # rows[0]: the header


def ignored(path: str) -> bool:
    result = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
    assert result.returncode in (0, 1), f"git check-ignore {path} failed"
    return result.returncode == 0


def test_git_keeps_what_wip_holds() -> None:
    for path in ("runs/width_depth/vanilla/seed_0/metrics.json", *listed()):
        assert not ignored(f"wip/{path}"), f"git ignores wip/{path}: it would never be committed"
    assert ignored("runs/fig2/control/seed_0/metrics.json")  # a grid's own runs stay out of git


def test_what_wip_lists_is_in_the_checkout() -> None:
    for path in listed():
        assert (WIP / path).exists(), f"wip/README.md lists wip/{path}, which is not in the checkout"
