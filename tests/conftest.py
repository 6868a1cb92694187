"""Shared fixtures. Keep this file small: helpers used by one module belong in that module."""

from __future__ import annotations

from pathlib import Path

import pytest
from _common import check_shared_data

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    """The repository root (holds ``experiments/`` and ``search_spaces/``)."""
    return REPO_ROOT


@pytest.fixture
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside the empty folder ``tmp_path/"cwd"``, so stray writes (``./runs``, ``./mlruns``) show."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    check_shared_data(item)  # before any fixture: a missing data folder skips (or, in CI, fails) at once
