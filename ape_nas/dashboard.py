"""`ape-nas dashboard`: optuna-dashboard over an experiment's study, served by this process until Ctrl+C.

Where the study is: the storage ``ape-nas sweep`` and ``ape-nas worker`` use for the same experiment, work
directory and ``--storage`` (``<workdir>/optuna.db``, the Ray backend's ``<workdir>/ray.db``, a database server
such as PostgreSQL, or ``journal://path``). Without ``--storage``, ``backend.storage`` or ``--backend``, every
backend's default store in the work directory is looked at, as ``ape-nas status`` does. A nested experiment shows
its outer studies (``<name>/outer-k``).

Checked before anything is served, each a one-line error (exit 2): the storage opens (a database server has
``CONNECT_TIMEOUT_S`` to answer; a missing local file is not created), the study is in it (else the studies that
are), the port is free. Then the study is labelled for the dashboard: its objective names
(``study.set_metric_names``: ``val_<metric>``, then a multi-objective experiment's costs) and the study user
attribute ``UI_ATTR``, where its runs are browsed (``ape-nas ui --workdir ...`` and the experiment); each trial
carries its run id already. The sweep's parent run carries the way back, :func:`dashboard_command`.

The server is optuna-dashboard's WSGI app (``optuna_dashboard.wsgi``) under the standard library's threaded WSGI
server, in this process: not ``optuna_dashboard.run_server`` (bottle's server turns Ctrl+C into an exception that
ape-nas would report as an interrupted command) and not gunicorn (optuna-dashboard's CLI picks it when installed;
it keeps files under ``~/.gunicorn``). SIGINT (Ctrl+C), SIGTERM and SIGHUP stop it: the listening socket is
closed before the command returns, exit 0. No access log.
"""

from __future__ import annotations

import dataclasses
import shlex
import signal
import socket
import sys
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ape_nas.errors import UserError

if TYPE_CHECKING:
    from ape_nas.config.experiment import ExperimentConfig

CONNECT_TIMEOUT_S = 5  # a database server that does not answer within this is an error, not a hang
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_LOCK_MARK = "::lock:"  # the backends' mutex studies (``OptunaBackend.exclusive``): not the user's


def dashboard_command(experiment: ExperimentConfig, workdir: str | Path, storage: str | None = None) -> str:
    """The command that opens ``experiment``'s study in optuna-dashboard (the sweep's parent run carries it).

    ``storage``: the study's storage URL; left out when the command finds it by itself (a backend's default store
    in ``workdir``, or the experiment file's ``backend.storage``); a password in it is shown as ``***``. A study
    name or backend that came from ``--set`` / ``--new-study`` / ``--backend`` is passed on.

    Example: ``ape-nas dashboard /abs/experiments/quickstart.yaml --workdir /abs/runs``
    """
    from ape_nas.dburl import hide_password
    from ape_nas.tracking.names import nested_experiment

    doc = experiment.doc
    words = ["ape-nas", "dashboard", str(Path(doc.path).resolve()), "--workdir", str(Path(workdir).resolve())]
    if storage is not None and not _found_without_flag(experiment, Path(workdir), storage):
        words += ["--storage", hide_password(storage)]
    study = nested_experiment(experiment.name)  # an outer fold's study: the experiment shows them all
    if ("name",) in doc.overrides or study != doc.data.get("name"):
        words += ["--set", f"name={study}"]
    if ("backend", "name") in doc.overrides:
        words += ["--backend", str(experiment.backend["name"])]
    return shlex.join(words)


def _found_without_flag(experiment: ExperimentConfig, workdir: Path, storage: str) -> bool:
    if ("backend", "storage") in experiment.doc.overrides:  # typed on the command line: the file lacks it
        return False
    own = experiment.backend["storage"]
    if own is not None:
        return _same(own, storage)
    return any(_same(url, storage) for url in _default_stores(experiment, workdir).values())


def _same(a: str, b: str) -> bool:
    from ape_nas.backends.optuna_backend import journal_path
    from ape_nas.dburl import sqlite_path

    def where(url: str) -> Any:
        local = sqlite_path(url) or journal_path(url)
        return ("file", local.resolve()) if local is not None else ("url", url)

    return where(a) == where(b)


def _default_stores(experiment: ExperimentConfig, workdir: Path) -> dict[str, str]:
    """Backend name → its default storage URL in ``workdir`` (the experiment's own backend first)."""
    from ape_nas.backends import BACKENDS, make_backend

    bare = dataclasses.replace(experiment, backend={**experiment.backend, "storage": None})
    names = sorted(BACKENDS, key=lambda n: n != experiment.backend["name"])
    return {n: make_backend(n, experiment=bare, workdir=workdir).storage_url for n in names}


# ---------------------------------------------------------------------------------------------------------------
# finding the study
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Store:
    """An opened storage and the names of its studies (the backends' lock studies left out)."""

    backend: str
    url: str
    label: str
    storage: Any  # optuna.storages.BaseStorage
    studies: list[str]

    def targets(self, experiment: ExperimentConfig) -> list[str]:
        """The experiment's studies here: its own, or a nested experiment's outer studies."""
        from ape_nas.tracking.names import OUTER_SEP

        if experiment.name in self.studies:
            return [experiment.name]
        if experiment.protocol["kind"] != "nested":
            return []
        prefix = f"{experiment.name}{OUTER_SEP}"
        outer = [n for n in self.studies if n.startswith(prefix) and n[len(prefix) :].isdigit()]
        return sorted(outer, key=lambda n: int(n[len(prefix) :]))

    def listing(self) -> str:
        return ", ".join(self.studies) if self.studies else "none"

    def study_id(self, name: str) -> int:
        """The id in optuna-dashboard's URLs (``/dashboard/studies/<id>``)."""
        return int(self.storage.get_study_id_from_name(name))


def _reason(exc: BaseException) -> str:
    """A database error in one short line: the driver's message, without SQLAlchemy's statement and link."""
    text = str(getattr(exc, "orig", None) or exc).split("(Background on this error")[0]
    text = " ".join(text.split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _open(backend: str, url: str) -> _Store:
    from optuna.storages import JournalStorage, RDBStorage

    from ape_nas.backends.optuna_backend import JOURNAL_SCHEME, journal_path
    from ape_nas.dburl import hide_password, with_pg_driver

    label = hide_password(url)
    journal = journal_path(url)
    try:
        if journal is not None:
            from optuna.storages.journal import JournalFileBackend

            storage: Any = JournalStorage(JournalFileBackend(str(journal)))
        else:
            if "://" not in url:
                raise UserError(
                    f"storage {url!r}: expected an SQLAlchemy URL such as sqlite:///path/optuna.db or "
                    f"postgresql://user:pass@host/db, or a journal file: {JOURNAL_SCHEME}/path/study.log"
                )
            engine: dict[str, Any] = {}
            if url.startswith("sqlite"):
                engine = {"connect_args": {"timeout": 60}}
            else:
                url = with_pg_driver(url, f"storage {label}")
                if url.split("://", 1)[0].split("+", 1)[0] in ("postgresql", "mysql"):
                    engine = {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
            storage = RDBStorage(url, engine_kwargs=engine)
        studies = sorted(s.study_name for s in storage.get_all_studies() if _LOCK_MARK not in s.study_name)
    except UserError:
        raise
    except Exception as exc:  # SQLAlchemy / driver / Optuna: unreachable, refused, not a database, old schema
        raise UserError(f"storage {label}: cannot open ({type(exc).__name__}: {_reason(exc)})") from None
    return _Store(backend, url, label, storage, studies)


def _missing_file(url: str) -> Path | None:
    """The file of a local storage (SQLite, journal) that does not exist: opening it would create it."""
    from ape_nas.backends.optuna_backend import journal_path
    from ape_nas.dburl import sqlite_path

    local = sqlite_path(url) or journal_path(url)
    return local if local is not None and not local.exists() else None


def find_study(
    experiment: ExperimentConfig, workdir: Path, storage: str | None, explicit: bool
) -> tuple[_Store, list[str]]:
    """The opened storage that holds ``experiment``'s study and the study names to show; else a UserError."""
    from ape_nas.backends import make_backend

    name, path = experiment.name, experiment.doc.path
    first_run = f"run `ape-nas sweep {path} --workdir {workdir}` first"
    if explicit:
        own = make_backend(experiment.backend["name"], experiment=experiment, workdir=workdir, storage=storage)
        urls = {own.name: own.storage_url}
    else:
        urls = _default_stores(experiment, workdir)
    existing = {b: u for b, u in urls.items() if _missing_file(u) is None}
    if not existing:
        own = next(iter(urls.values()))
        raise UserError(f"no study {name!r}: {_missing_file(own)} does not exist; {first_run}")
    stores = [_open(b, u) for b, u in existing.items()]
    holding = [(s, s.targets(experiment)) for s in stores if s.targets(experiment)]
    if len(holding) > 1:
        where = ", ".join(f"{s.backend} ({s.label})" for s, _ in holding)
        raise UserError(
            f"study {name!r} exists in {len(holding)} stores of {workdir}: {where}; choose one with "
            + " or ".join(f"--backend {s.backend}" for s, _ in holding)
        )
    if not holding:
        there = " nor ".join(f"{s.label} (its studies: {s.listing()})" for s in stores)
        advice = (
            f"pass --set name=STUDY for one of those, or {first_run}" if any(s.studies for s in stores) else first_run
        )
        raise UserError(f"no study {name!r} in {there}; {advice}")
    return holding[0]


# ---------------------------------------------------------------------------------------------------------------
# labels for the dashboard
# ---------------------------------------------------------------------------------------------------------------


def metric_names(experiment: ExperimentConfig) -> list[str]:
    """The study's objectives as optuna-dashboard names them: ``val_<metric>``, then the cost metrics."""
    return [f"val_{experiment.objective['metric']}", *experiment.objective["costs"]]


def runs_hint(attrs: dict[str, Any], workdir: Path, study: str) -> str:
    """Where the study's runs are browsed, from the study attributes the sweep recorded (its tracking store)."""
    from ape_nas.dburl import hide_password, sqlite_path
    from ape_nas.tracking.names import EXPERIMENT_ATTR, STORE_FILE, nested_experiment, ui_url

    experiment = nested_experiment(study)
    uri = attrs.get("tracking_uri")
    runs = f"#/experiments/{attrs[EXPERIMENT_ATTR]}/runs" if attrs.get(EXPERIMENT_ATTR) else "#/experiments"
    if uri is not None and ui_url(str(uri)) is not None:
        return f"{hide_password(str(uri)).rstrip('/')}/{runs} (experiment {experiment!r})"
    store = sqlite_path(str(uri)) if uri is not None else None
    if uri is None or (store is not None and store.name == STORE_FILE):
        folder = store.parent if store is not None else workdir.resolve()
        ui = f"ape-nas ui --workdir {shlex.quote(str(folder))}"
        return f"{ui} → http://127.0.0.1:5000/{runs} (experiment {experiment!r})"
    return f"tracking store {hide_password(str(uri))} (experiment {experiment!r})"


def label_study(store: _Store, study_name: str, names: list[str], workdir: Path) -> str:
    """Objective names and the runs hint on one study (only what changed is written); returns the hint."""
    import optuna

    from ape_nas.tracking.names import UI_ATTR

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-API warnings of older Optuna releases
        study = optuna.load_study(study_name=study_name, storage=store.storage)
        hint = runs_hint(study.user_attrs, workdir, study_name)
        try:
            if len(study.directions) == len(names) and study.metric_names != names:
                study.set_metric_names(names)
            if study.user_attrs.get(UI_ATTR) != hint:
                study.set_user_attr(UI_ATTR, hint)
        except Exception as exc:  # a read-only storage: the dashboard still shows the study, unlabelled
            print(f"ape-nas: note: study {study_name!r} not labelled ({_reason(exc)})", file=sys.stderr)
    return hint


# ---------------------------------------------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------------------------------------------


def _make_server(host: str, port: int, app: Any) -> Any:
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]

    class Handler(WSGIRequestHandler):
        def address_string(self) -> str:  # no reverse DNS lookup per request
            return str(self.client_address[0])

        def log_message(self, format: str, *args: Any) -> None:
            pass  # no access log: the SPA polls the API every few seconds

    class Server(ThreadingMixIn, WSGIServer):
        address_family = family
        daemon_threads = True  # a request still running at Ctrl+C does not hold the command

        def handle_error(self, request: Any, client_address: Any) -> None:
            exc = sys.exc_info()[1]
            if not isinstance(exc, ConnectionError):  # a browser that went away is not worth a line
                print(f"ape-nas: dashboard request failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    try:
        return make_server(host, port, app, server_class=Server, handler_class=Handler)
    except OSError as err:  # taken between the port check and now
        raise UserError(f"cannot listen on {host}:{port}: {err.strerror}") from None


def serve_dashboard(
    experiment_path: str | Path,
    *,
    workdir: str | Path = "runs",
    storage: str | None = None,
    overrides: list[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
) -> int:
    """Serve optuna-dashboard on ``experiment_path``'s study until Ctrl+C / SIGTERM; returns the exit code.

    Example: ``ape-nas dashboard experiments/quickstart.yaml --workdir runs`` prints
    ``optuna-dashboard of study 'quickstart' (sqlite:///.../runs/optuna.db) at http://127.0.0.1:8080/dashboard/studies/1``.
    """
    from ape_nas.experiments import load_experiment
    from ape_nas.tracking.names import RUN_ID_ATTR
    from ape_nas.ui import browse_host, check_port_free

    if not 0 < port < 65536:
        raise UserError(f"--port {port}: expected a port number 1..65535")
    workdir = Path(workdir)
    overrides = list(overrides or [])
    experiment = load_experiment(experiment_path, overrides)
    explicit = (
        storage is not None
        or experiment.backend["storage"] is not None
        or any(o.split("=", 1)[0].strip() == "backend.name" for o in overrides)
    )
    store, studies = find_study(experiment, workdir, storage, explicit)
    check_port_free(host, port, busy="another `ape-nas dashboard` or server?")
    names = metric_names(experiment)
    hints = {s: label_study(store, s, names, workdir) for s in studies}

    base = f"http://{browse_host(host)}:{port}/dashboard"
    if len(studies) == 1:
        study = studies[0]
        lines = [
            f"optuna-dashboard of study {study!r} ({store.label}) at {base}/studies/{store.study_id(study)}"
            "  (Ctrl+C to stop)",
            f"MLflow runs of its trials (trial user attr {RUN_ID_ATTR}): {hints[study]}",
        ]
    else:
        lines = [f"optuna-dashboard of {experiment.name!r} ({store.label}) at {base}  (Ctrl+C to stop)"]
        lines += [f"  study {s!r}: {base}/studies/{store.study_id(s)}  ·  MLflow: {hints[s]}" for s in studies]

    import optuna_dashboard  # ≈ 3 s: only once everything is checked

    server = _make_server(host, port, optuna_dashboard.wsgi(store.storage))
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in _STOP_SIGNALS}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    with warnings.catch_warnings():
        # Optuna's warnings while the app computes plots ("quantiles select the same set of trials" ...) would
        # scroll through the terminal at page loads, with nothing in them for the user to act on
        warnings.simplefilter("ignore")
        try:
            thread.start()
            print("\n".join(lines), flush=True)
            while not stop.wait(0.5):
                if not thread.is_alive():
                    print("ape-nas: error: the dashboard server stopped by itself", file=sys.stderr)
                    return 1
            return 0
        finally:
            if thread.is_alive():
                server.shutdown()  # returns once serve_forever has left its loop
            server.server_close()  # the port is free once the command returns
            for sig, handler in previous.items():
                signal.signal(sig, handler)
