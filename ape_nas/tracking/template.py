"""New SQLite MLflow stores start as a copy of an empty, migrated one instead of running MLflow's migrations.

Creating a SQLite tracking store runs MLflow's whole chain of database migrations: about 3 s of CPU, paid by
every new work directory (each quickstart, each test's sweep). The first store made on a machine with a given
MLflow version is kept, emptied of its ``Default`` experiment, as a template under the user's cache
(``$XDG_CACHE_HOME/ape-nas`` or ``~/.cache/ape-nas``); later new stores are copies of it, and MLflow, opening a
store whose tables are current, only adds the ``Default`` experiment for that store's location. Anything that
goes wrong here (no cache, a read-only file system) leaves MLflow to create the store itself, as before.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from ape_nas.dburl import sqlite_path


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ape-nas"


def _template() -> Path:
    from mlflow.tracking import MlflowClient

    import mlflow

    template = cache_dir() / f"mlflow-{mlflow.__version__}-empty.db"
    if template.is_file():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=template.parent) as folder:
        fresh = Path(folder) / "store.db"
        MlflowClient(tracking_uri=f"sqlite:///{fresh}").search_experiments()  # runs the migrations
        with sqlite3.connect(fresh) as db:  # each store gets its own Default experiment, at its own location
            db.execute("DELETE FROM experiment_tags WHERE experiment_id = 0")
            db.execute("DELETE FROM experiments WHERE experiment_id = 0")
        os.replace(fresh, template)  # atomic: a concurrent creator's template is as good as this one
    return template


def seed_store(tracking_uri: str) -> bool:
    """Make the SQLite store of ``tracking_uri`` a copy of the template when it does not exist yet; True when it
    did. Safe against a concurrent creator: the copy lands under the final name only if nothing is there."""
    path = None if "?" in tracking_uri else sqlite_path(tracking_uri)  # a URL with options: MLflow's own
    if path is None or path.exists() or not path.parent.is_dir():
        return False
    try:
        template = _template()
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
            staged = Path(tmp.name)
        try:
            shutil.copyfile(template, staged)
            os.link(staged, path)  # fails if another process created the store meanwhile
        finally:
            staged.unlink(missing_ok=True)
        return True
    except (OSError, sqlite3.Error):
        return False
