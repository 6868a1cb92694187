"""The layer rules of docs/ARCHITECTURE.md are checked, not hoped for: the import contracts of pyproject.toml
(``lint-imports``, run by ``make lint`` and ``.ci/run``) hold for the package, and a deliberately wrong import in a
copy of it breaks the contract it violates, naming the import. Also: only ``ape_nas/tracking/`` names MLflow in
code, and ``ape-nas --help`` imports nothing heavy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _common import ROOT

PACKAGE = ROOT / "ape_nas"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
HEAVY = ("torch", "lightning", "optuna", "mlflow", "ray", "numpy", "pandas", "scipy", "sklearn", "rich", "yaml")


def _lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    args = [str(LINT_IMPORTS), "--no-cache", "--no-logo", *(a for c in contracts for a in ("--contract", c))]
    env = {**os.environ, "PYTHONPATH": str(cwd)}  # the package in `cwd`, not the installed (editable) one
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_package_keeps_every_layer_contract() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[result.stdout.find("Broken contracts") :] or result.stderr


# (module of the copy that gets the import, the import, the contract it breaks, what the report names)
WRONG_IMPORTS = [
    ("config/experiment.py", "import ape_nas.sweep", "lower-layers", "ape_nas.config.experiment -> ape_nas.sweep"),
    ("space.py", "import ape_nas.tracking", "lower-layers", "ape_nas.space -> ape_nas.tracking"),
    ("data/readers/e4.py", "import torch", "readers-no-torch", "ape_nas.data.readers.e4 -> torch"),
    ("handoff/predict.py", "import lightning", "predict-no-torch", "ape_nas.handoff.predict -> lightning"),
    ("reproduce.py", "import ape_nas.backends", "consumers-no-backend", "ape_nas.reproduce -> ape_nas.backends"),
    ("data/windows.py", "import ape_nas.config", "data-not-config", "ape_nas.data.windows -> ape_nas.config"),
    ("config/experiment.py", "import ape_nas.data", "config-not-data", "ape_nas.config.experiment -> ape_nas.data"),
    ("handoff/predict.py", "import mlflow", "one-door-to-mlflow", "ape_nas.handoff.predict -> mlflow"),
]


@pytest.mark.parametrize(("module", "statement", "contract", "named"), WRONG_IMPORTS, ids=[w[2] for w in WRONG_IMPORTS])
def test_a_wrong_import_breaks_its_contract(tmp_path: Path, module: str, statement: str, contract: str, named: str):
    shutil.copytree(PACKAGE, tmp_path / "ape_nas", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / "ape_nas" / module
    assert target.is_file(), f"{module} moved: pick another module for this case"
    target.write_text(target.read_text() + f"\n{statement}  # deliberately wrong\n")
    result = _lint_imports(tmp_path, contract)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout and named in result.stdout, result.stdout


def test_only_the_tracking_package_names_mlflow() -> None:
    """The acceptance check ``grep -rln mlflow ape_nas --include=*.py``: only files under ``ape_nas/tracking/``."""
    naming = sorted(
        str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if "mlflow" in p.read_text(encoding="utf-8")
    )
    assert naming, "the tracking package itself must name mlflow: is the search looking at the package?"
    assert [p for p in naming if not p.startswith("ape_nas/tracking/")] == []


@pytest.mark.parametrize("argv", [["--help"], ["sweep", "--help"], ["data", "inspect", "--help"]], ids=" ".join)
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from ape_nas.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert "usage: ape-nas" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"
