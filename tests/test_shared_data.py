"""A test that needs ``../shared/data`` (``_common.needs_shared``) skips on a machine without it, but fails in CI
(``CI`` set, or ``APE_NAS_REQUIRE_DATA=1`` as ``.ci/run`` sets): a missing data folder cannot pass CI silently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _common import ROOT

CONFTEST = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from _common import check_shared_data

def pytest_runtest_setup(item):
    check_shared_data(item)
"""
TESTS = """
from _common import needs_shared, require_shared

pytestmark = needs_shared({missing!r})

def test_marked():
    pass

def test_inline():
    require_shared({missing!r})
"""


def _run(folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "APE_NAS_REQUIRE_DATA")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(folder)],
        cwd=folder,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    missing = tmp_path / "shared" / "data" / "absent"
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_needs_data.py").write_text(TESTS.format(missing=str(missing)))
    return tmp_path


def test_missing_shared_data_skips_outside_ci(suite: Path) -> None:
    result = _run(suite)
    assert result.returncode == 0, result.stdout
    assert "2 skipped" in result.stdout and "shared data absent" in result.stdout


@pytest.mark.parametrize("env", [{"APE_NAS_REQUIRE_DATA": "1"}, {"CI": "true"}], ids=["APE_NAS_REQUIRE_DATA", "CI"])
def test_missing_shared_data_fails_in_ci(suite: Path, env: dict[str, str]) -> None:
    result = _run(suite, **env)
    assert result.returncode == 1, result.stdout
    assert "skipped" not in result.stdout
    assert result.stdout.count("shared data absent") >= 2 and "require it" in result.stdout


def test_present_shared_data_runs_the_test(suite: Path) -> None:
    (suite / "shared" / "data" / "absent").mkdir(parents=True)
    result = _run(suite, APE_NAS_REQUIRE_DATA="1")
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout
