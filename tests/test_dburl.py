"""Database URLs: the installed PostgreSQL driver is named for SQLAlchemy; passwords never reach the output."""

from __future__ import annotations

import importlib.util
import os
import uuid

import pytest
from _common import QUICKSTART

from ape_nas.dburl import hide_password, with_pg_driver
from ape_nas.errors import UserError


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_plain_postgresql_gets_an_installed_driver(scheme: str):
    url = with_pg_driver(f"{scheme}://ape:secret@db:5432/ape", "storage")
    driver = url.split("://", 1)[0].split("+", 1)[1]
    assert _installed(driver)
    assert url.endswith("://ape:secret@db:5432/ape")
    if _installed("psycopg"):  # psycopg 3 first, as SQLAlchemy 2.1 would pick it
        assert driver == "psycopg"


def test_other_urls_and_named_drivers_are_unchanged():
    for url in ("sqlite:////tmp/a.db", "http://127.0.0.1:5000", "journal:///tmp/s.log", "mysql://u@h/db"):
        assert with_pg_driver(url, "storage") == url
    if _installed("psycopg2"):
        assert with_pg_driver("postgresql+psycopg2://u@h/db", "x") == "postgresql+psycopg2://u@h/db"


def test_a_named_driver_that_is_missing_is_one_clear_error():
    missing = "psycopg" if not _installed("psycopg") else None
    if missing is None:
        pytest.skip("psycopg 3 is installed here: no missing driver to name")
    with pytest.raises(UserError, match=r"storage x: the PostgreSQL driver is missing: pip install"):
        with_pg_driver("postgresql+psycopg://u@h/db", "storage x")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ape:secret@db:5432/x", "postgresql://ape:***@db:5432/x"),
        ("postgresql://ape:p@ss@db/x", "postgresql://ape:***@db/x"),
        ("postgresql://ape@db/x", "postgresql://ape@db/x"),
        ("sqlite:////runs/optuna.db", "sqlite:////runs/optuna.db"),
        ("http://u:tok@host:5000", "http://u:***@host:5000"),
    ],
)
def test_hide_password(url: str, shown: str):
    assert hide_password(url) == shown


def test_ray_backend_opens_its_study_on_postgresql(tmp_path):
    """The Ray backend's study store on a plain postgresql:// URL (SQLAlchemy 2.1 alone would want psycopg 3)."""
    pg = os.environ.get("APE_NAS_TEST_PG_URL")
    if not pg:
        if os.environ.get("APE_NAS_REQUIRE_SERVICES") == "1":
            pytest.fail("APE_NAS_TEST_PG_URL is not set but CI requires PostgreSQL (.ci/install_postgres.sh)")
        pytest.skip("no PostgreSQL for tests: set APE_NAS_TEST_PG_URL (CI installs one with .ci/install_postgres.sh)")
    import optuna

    from ape_nas.backends.ray_backend import RayBackend
    from ape_nas.experiments import load_experiment

    name = f"ray_pg_{uuid.uuid4().hex[:10]}"
    exp = load_experiment(QUICKSTART, ["backend.name=ray", f"name={name}"])
    backend = RayBackend(exp, tmp_path, storage=pg)
    backend.open(create=True)
    try:
        assert backend.attrs()["ape_nas.backend"] == "ray"
        again = RayBackend(exp, tmp_path, storage=pg)
        again.open(create=False)
        assert again.records() == []
        assert ":***@" in again.storage_label or "@" not in pg
    finally:
        optuna.delete_study(study_name=name, storage=with_pg_driver(pg, "storage"))
