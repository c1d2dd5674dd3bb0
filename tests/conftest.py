"""Every test runs from the repository root (configs use repo-relative paths)."""

from __future__ import annotations

import pytest

from tests.helpers import ROOT


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
