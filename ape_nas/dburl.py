"""Database URLs handed to SQLAlchemy (Optuna RDB storage, MLflow stores).

SQLAlchemy 2.1 maps a plain ``postgresql://`` URL to psycopg 3, while the ``postgres`` extra installs psycopg2
(see STACK.md). Users write the plain form; this picks whichever driver is installed.
"""

from __future__ import annotations

from pathlib import Path

from ape_nas.errors import UserError

_PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg")


def with_pg_driver(url: str, what: str) -> str:
    """``url`` with an installed PostgreSQL driver named in its scheme; other URLs unchanged.

    ``what`` names the setting in the error message (e.g. ``storage postgresql://…``)."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    if scheme not in _PG_SCHEMES:
        return url
    wanted = {"postgresql+psycopg2": ["psycopg2"], "postgresql+psycopg": ["psycopg"]}.get(
        scheme, ["psycopg", "psycopg2"]
    )
    for module in wanted:
        try:
            __import__(module)
        except ImportError:
            continue
        return f"postgresql+{module}://{rest}"
    raise UserError(f"{what}: the PostgreSQL driver is missing: pip install 'ape-nas[postgres]'")


def hide_password(url: str) -> str:
    """``url`` for output and tags: the password of ``scheme://user:password@host/db`` replaced by ``***``."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, at, location = rest.rpartition("@")
    user, colon, _ = credentials.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}{at}{location}"


def sqlite_path(url: str) -> Path | None:
    """The database file of an ``sqlite:///`` URL, relative or absolute (None for other URLs and in-memory SQLite)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)
