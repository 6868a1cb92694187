"""mlflow/serve.sh: a real team tracking server on a real PostgreSQL store, used by a sweep; with basic auth
(SQLite store) it lets in only its users, and it refuses to listen beyond 127.0.0.1 without authentication."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _common import QUICKSTART, SMALL, status_json
from _servers import alive, cmdline, descendants, free_port, port_is_free, wait_http
from mlflow.tracking import MlflowClient

from ape_nas.cli import main

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("APE_NAS_TEST_PG_URL")
pytestmark = pytest.mark.slow


def _require_pg() -> str:
    if not PG:
        if os.environ.get("APE_NAS_REQUIRE_SERVICES") == "1":
            pytest.fail("APE_NAS_TEST_PG_URL is not set but CI requires PostgreSQL (.ci/install_postgres.sh)")
        pytest.skip("no PostgreSQL for tests: set APE_NAS_TEST_PG_URL (CI installs one with .ci/install_postgres.sh)")
    return PG


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the MLflow store (MLflow and Optuna must not share one: both use alembic)."""
    import psycopg2

    url = _require_pg()
    name = f"mlflow_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    yield url.rsplit("/", 1)[0] + f"/{name}"
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


@pytest.fixture(scope="module")
def server(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    artifacts = tmp_path_factory.mktemp("artifacts")
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": pg_database,
        "MLFLOW_ARTIFACTS_DESTINATION": str(artifacts),
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": "1",
        "PYTHON": sys.executable,
    }
    proc = subprocess.Popen(
        ["bash", str(ROOT / "mlflow" / "serve.sh")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert url in proc.stdout.readline()
        try:
            wait_http(f"{url}/health", proc, timeout_s=90)
        except AssertionError as exc:  # show why the server stopped, not only that it did
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            tail = proc.communicate(timeout=30)[0][-3000:]
            raise AssertionError(f"{exc}\n--- server output (tail) ---\n{tail}") from None
        yield url, artifacts
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def test_serve_sh_refuses_without_settings():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out = subprocess.run(
        ["bash", str(ROOT / "mlflow" / "serve.sh")], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode != 0 and "MLFLOW_BACKEND_STORE_URI" in out.stderr


def test_team_server_on_postgres_records_a_sweep(
    server: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    url, artifacts = server
    exp = str(ROOT / "experiments" / "quickstart.yaml")
    small = [
        "--set",
        "data.params.subjects=6",
        "--set",
        "data.params.minutes_per_state=1.0",
        "--set",
        "training.max_epochs=2",
        "--set",
        "protocol.test_subjects=2",
        "--set",
        "protocol.val_subjects=2",
    ]
    assert (
        main(
            ["sweep", exp, "--workdir", str(tmp_path), "--trials", "2", "--no-progress", "--tracking-uri", url, *small]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["status", exp, "--workdir", str(tmp_path), "--json", *small]) == 0
    status = json.loads(capsys.readouterr().out)
    client = MlflowClient(url)
    runs = client.search_runs([status["mlflow_experiment_id"]])
    assert len([r for r in runs if r.data.tags.get("ape_nas.role") == "trial"]) == 2
    assert list(artifacts.rglob("spec.yaml"))  # artifacts went through the server into its directory
    assert not (tmp_path / "mlflow.db").exists()


def _serve_env(tmp: Path, port: int) -> dict[str, str]:
    """serve.sh's environment without any MLFLOW_* of the caller: settings come from the env file given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, "PYTHON": sys.executable, "TMPDIR": str(tmp)}


def _get(url: str, user: str | None = None, password: str | None = None) -> int:
    req = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def test_serve_sh_refuses_a_wide_bind_without_auth(tmp_path: Path):
    env_file = tmp_path / "server.env"
    env_file.write_text(
        f"MLFLOW_BACKEND_STORE_URI=sqlite:///{tmp_path}/mlflow.db\n"
        f"MLFLOW_ARTIFACTS_DESTINATION={tmp_path}/artifacts\n"
        "MLFLOW_HOST=0.0.0.0\n"
    )
    out = subprocess.run(
        ["bash", str(ROOT / "mlflow" / "serve.sh"), str(env_file)],
        env=_serve_env(tmp_path, free_port()),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert out.stderr.startswith("serve.sh: refusing to serve on 0.0.0.0 without authentication")
    assert "MLFLOW_AUTH=basic" in out.stderr and "MLFLOW_INSECURE=1" in out.stderr
    assert out.stdout == "" and not (tmp_path / "mlflow.db").exists()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """serve.sh with MLflow's basic-auth app over a SQLite store; the admin's credentials only in the env file."""
    tmp = tmp_path_factory.mktemp("auth-server")
    port = free_port()
    user, password = "ape-admin", f"pw-{secrets.token_hex(12)}"
    env_file = tmp / "server.env"
    env_file.write_text(
        f"MLFLOW_BACKEND_STORE_URI=sqlite:///{tmp}/mlflow.db\n"
        f"MLFLOW_ARTIFACTS_DESTINATION={tmp}/artifacts\n"
        f"MLFLOW_PORT={port}\n"
        "MLFLOW_WORKERS=1\n"
        "MLFLOW_AUTH=basic\n"
        f"MLFLOW_AUTH_ADMIN_USERNAME={user}\n"
        f"MLFLOW_AUTH_ADMIN_PASSWORD={password}\n"
    )
    log = tmp / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["bash", str(ROOT / "mlflow" / "serve.sh"), str(env_file)],
            env=_serve_env(tmp, port),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_http(f"{url}/health", proc, timeout_s=90)  # /health needs no credentials
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- server output ---\n{log.read_text()[-3000:]}") from None
        yield {"url": url, "user": user, "password": password, "proc": proc, "log": log, "tmp": tmp, "port": port}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


@pytest.mark.slow
def test_auth_server_refuses_requests_without_credentials(auth_server: dict):
    search = f"{auth_server['url']}/api/2.0/mlflow/experiments/search?max_results=10"
    assert _get(search) == 401
    assert _get(search, auth_server["user"], "not-the-password") == 401
    assert _get(search, auth_server["user"], auth_server["password"]) == 200


@pytest.mark.slow
def test_authenticated_sweep_logs_to_the_auth_server(
    auth_server: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    url, user, password = auth_server["url"], auth_server["user"], auth_server["password"]
    sweep = [sys.executable, "-m", "ape_nas", "sweep", QUICKSTART, "--tracking-uri", url, "--trials", "1"]
    sweep += ["--workdir", str(tmp_path), "--no-progress", *SMALL]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    # without credentials: refused, as one error, nothing logged
    denied = subprocess.run(sweep, env=env, capture_output=True, text=True, timeout=300)
    assert denied.returncode != 0
    # with MLflow's own client variables: MlflowClient reads them, ape-nas passes them through
    env.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password)
    ok = subprocess.run(sweep, env=env, capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert password not in ok.stdout + ok.stderr
    status = status_json(tmp_path, capsys, *SMALL)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    runs = MlflowClient(url).search_runs([status["mlflow_experiment_id"]])
    trials = [r for r in runs if r.data.tags.get("ape_nas.role") == "trial"]
    assert len(trials) == 1 and trials[0].info.status == "FINISHED"
    assert {r.data.tags["ape_nas.role"] for r in runs} == {"sweep", "trial"}


@pytest.mark.slow
def test_auth_server_keeps_credentials_off_argv_and_output(auth_server: dict):
    proc, password = auth_server["proc"], auth_server["password"]
    tree = [proc.pid, *descendants(proc.pid)]
    argvs = [cmdline(pid) for pid in tree]
    assert any("--app-name basic-auth" in a for a in argvs), argvs
    assert all(password not in a and auth_server["user"] not in a for a in argvs)
    assert password not in auth_server["log"].read_text()
    # the auth settings live in one private file (mode 600), named by MLFLOW_AUTH_CONFIG_PATH, not in the env
    (ini,) = list(auth_server["tmp"].glob("ape-nas-mlflow-auth.*/basic_auth.ini"))
    assert ini.stat().st_mode & 0o777 == 0o600 and ini.parent.stat().st_mode & 0o777 == 0o700
    assert password in ini.read_text()
    server = next(pid for pid, a in zip(tree, argvs, strict=True) if "-m mlflow server" in a)
    environ = Path(f"/proc/{server}/environ").read_bytes().split(b"\0")
    assert f"MLFLOW_AUTH_CONFIG_PATH={ini}".encode() in environ
    assert not [v for v in environ if password.encode() in v]


@pytest.mark.slow
def test_stopping_serve_sh_stops_its_server_and_removes_the_auth_file(auth_server: dict):
    """Last of the auth tests (module order): `kill <pid>` of serve.sh leaves no process and no secret behind."""
    proc = auth_server["proc"]
    tree = descendants(proc.pid)
    assert tree
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert [pid for pid in tree if alive(pid)] == []
    assert port_is_free(auth_server["port"])
    assert list(auth_server["tmp"].glob("ape-nas-mlflow-auth.*")) == []
