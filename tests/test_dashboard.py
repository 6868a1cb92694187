"""`ape-nas dashboard` serves optuna-dashboard on a finished sweep's own study, as a person sees it in a browser
(headless Chromium renders the single-page app), labelled with its objective name and the way to its MLflow runs;
the sweep's parent run carries the exact command that opens it; Ctrl+C stops it cleanly (exit 0, port free).
Bad input is one line, exit 2: no such study, a busy port, an unreachable storage.

The browser test needs Chromium (``APE_NAS_TEST_CHROMIUM``, exported by ``.ci/install_chromium.sh``, or
``chromium`` on PATH): skipped without it, failed instead when ``APE_NAS_REQUIRE_SERVICES=1`` (CI)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _common import QUICKSTART, SMALL_SETS, cli, one_line_error, set_args
from _servers import free_port, port_is_free

from ape_nas.cli import build_parser
from ape_nas.dashboard import dashboard_command, find_study, label_study, metric_names
from ape_nas.experiments import load_experiment

# the smallest quickstart that still makes a study of two trials: one epoch each
TINY = set_args([s for s in SMALL_SETS if not s.startswith("training.max_epochs")] + ["training.max_epochs=1"])
START_TIMEOUT_S = 90.0


def _chromium() -> str:
    """The headless browser, or skip (fail in CI) with the reason."""
    path = os.environ.get("APE_NAS_TEST_CHROMIUM") or shutil.which("chromium")
    if path and Path(path).exists():
        return path
    reason = "no Chromium: APE_NAS_TEST_CHROMIUM unset and no `chromium` on PATH (source .ci/install_chromium.sh)"
    if os.environ.get("APE_NAS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}; APE_NAS_REQUIRE_SERVICES=1 requires it", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-trial quickstart sweep (one epoch per trial) in its own work directory."""
    workdir = tmp_path_factory.mktemp("dashboard")
    assert cli(["sweep", QUICKSTART, "--workdir", str(workdir), "--trials", "2", "--no-progress", *TINY]) == 0
    return workdir


@dataclass
class Served:
    proc: subprocess.Popen
    url: str  # the study's page, as printed
    lines: list[str]  # stdout lines read so far
    port: int


def _lines(proc: subprocess.Popen) -> queue.Queue[str | None]:
    out: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            out.put(line)
        out.put(None)

    threading.Thread(target=read, daemon=True).start()
    return out


def _parent_tag(workdir: Path, tag: str) -> str:
    """A tag of the sweep's parent run in the work directory's MLflow store."""
    from mlflow.tracking import MlflowClient

    from ape_nas.tracking import default_tracking_uri

    client = MlflowClient(default_tracking_uri(workdir))
    experiment = client.get_experiment_by_name("quickstart")
    parents = client.search_runs([experiment.experiment_id], "tags.`ape_nas.role` = 'sweep'")
    assert len(parents) == 1, parents
    return parents[0].data.tags[tag]


@pytest.fixture(scope="module")
def served(swept: Path) -> Iterator[Served]:
    """`ape-nas dashboard` started with exactly the command the sweep's parent run records."""
    words = shlex.split(_parent_tag(swept, "ape_nas.dashboard"))
    assert words[:2] == ["ape-nas", "dashboard"], words
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ape_nas", *words[1:], "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        out, deadline = _lines(proc), time.monotonic() + START_TIMEOUT_S
        while not any("http://" in line for line in lines):
            try:
                line = out.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no URL within {START_TIMEOUT_S:.0f} s: {lines}") from None
            if line is None:
                raise AssertionError(f"exited with {proc.wait()} before the URL: {lines} {proc.stderr.read()}")
            lines.append(line)
        with contextlib.suppress(queue.Empty):  # the MLflow hint follows the URL at once
            while len(lines) < 2 and (line := out.get(timeout=5)) is not None:
                lines.append(line)
        url = next(w for w in lines[0].split() if w.startswith("http://"))
        yield Served(proc, url, lines, port)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _dump_dom(chromium: str, url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000", "--dump-dom", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def test_dashboard_command_names_the_experiment_workdir_and_only_a_needed_storage(tmp_path: Path):
    exp = load_experiment(QUICKSTART)
    workdir = tmp_path / "runs"
    default = f"sqlite:///{(workdir / 'optuna.db').resolve()}"
    plain = ["ape-nas", "dashboard", QUICKSTART, "--workdir", str(workdir.resolve())]
    assert shlex.split(dashboard_command(exp, workdir, default)) == plain
    server = dashboard_command(exp, workdir, "postgresql://me:secret@db.example/studies")
    assert shlex.split(server) == [*plain, "--storage", "postgresql://me:***@db.example/studies"]
    renamed = load_experiment(QUICKSTART, ["name=quick-2"])
    assert shlex.split(dashboard_command(renamed, workdir, default)) == [*plain, "--set", "name=quick-2"]
    args = build_parser().parse_args(shlex.split(server)[1:])
    assert (args.command, args.storage, args.port, args.host) == (
        "dashboard",
        "postgresql://me:***@db.example/studies",
        8080,
        "127.0.0.1",
    )


def test_help_imports_neither_optuna_nor_the_dashboard():
    code = (
        "import sys\nfrom ape_nas.cli import main\n"
        "try:\n    main(['dashboard', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('optuna', 'optuna_dashboard', 'mlflow')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert "--storage" in result.stdout and result.stdout.strip().splitlines()[-1] == "[]"


def test_a_journal_storage_is_found_and_lists_its_studies(tmp_path: Path):
    from ape_nas.errors import UserError

    url = _journal(tmp_path, {"quickstart": ["maximize"], "other": ["minimize"], "quickstart::lock:x": ["minimize"]})
    store, studies = find_study(load_experiment(QUICKSTART), tmp_path, url, explicit=True)
    assert studies == ["quickstart"] and sorted(store.studies) == ["other", "quickstart"]  # no lock studies
    with pytest.raises(UserError, match=r"no study 'nope' in journal://.*study.log \(its studies: other, quickstart\)"):
        find_study(load_experiment(QUICKSTART, ["name=nope"]), tmp_path, url, explicit=True)


def _journal(tmp_path: Path, studies: dict[str, list[str]]) -> str:
    """A journal storage holding ``studies`` (name → directions); its URL."""
    import optuna

    log = tmp_path / "study.log"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(log)))
    for name, directions in studies.items():
        optuna.create_study(study_name=name, storage=storage, directions=directions)
    return f"journal://{log}"


def test_a_multi_objective_study_gets_every_objective_named(tmp_path: Path):
    import optuna

    sets = ["objective.metrics=[f1_macro, params, latency_ms]", "backend.sampler=nsga2", "backend.pruner=none"]
    exp = load_experiment(QUICKSTART, [*sets, "backend.pruner_options={}"])
    url = _journal(tmp_path, {"quickstart": exp.directions})
    store, studies = find_study(exp, tmp_path, url, explicit=True)
    hint = label_study(store, studies[0], metric_names(exp), tmp_path / "runs")
    study = optuna.load_study(study_name="quickstart", storage=store.storage)
    assert study.metric_names == ["val_f1_macro", "params", "latency_ms"]
    # no tracking store recorded (a study from elsewhere): the work directory's
    assert study.user_attrs["mlflow_ui"] == hint and hint.startswith(f"ape-nas ui --workdir {tmp_path / 'runs'} ")


def test_a_nested_experiment_shows_its_outer_studies(tmp_path: Path):
    nested = ["protocol={kind: nested, outer_folds: 2, inner: {kind: holdout, val_subjects: 32}}"]
    url = _journal(tmp_path, {n: ["maximize"] for n in ("quickstart/outer-2", "quickstart/outer-1", "other")})
    _, studies = find_study(load_experiment(QUICKSTART, nested), tmp_path, url, explicit=True)
    assert studies == ["quickstart/outer-1", "quickstart/outer-2"]


@pytest.mark.slow
def test_the_parent_run_carries_the_dashboard_command(swept: Path):
    expected = ["ape-nas", "dashboard", QUICKSTART, "--workdir", str(swept.resolve())]
    assert shlex.split(_parent_tag(swept, "ape_nas.dashboard")) == expected


@pytest.mark.slow
def test_no_such_study_is_one_line_listing_the_studies_there(swept: Path, capsys: pytest.CaptureFixture[str]):
    rc = cli(["dashboard", QUICKSTART, "--workdir", str(swept), "--set", "name=nope"])
    one_line_error(capsys, rc, "no study 'nope'", str(swept / "optuna.db"), "its studies: quickstart")


def test_a_workdir_without_a_study_is_one_line_and_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    rc = cli(["dashboard", QUICKSTART, "--workdir", str(tmp_path / "empty")])
    one_line_error(capsys, rc, "no study 'quickstart'", "optuna.db does not exist", "ape-nas sweep")
    assert not (tmp_path / "empty").exists()


@pytest.mark.slow
def test_a_busy_port_is_one_line(swept: Path, capsys: pytest.CaptureFixture[str]):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        rc = cli(["dashboard", QUICKSTART, "--workdir", str(swept), "--port", str(port)])
    one_line_error(capsys, rc, f"port {port} on 127.0.0.1 is in use", "--port")


def test_an_unreachable_storage_is_one_quick_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    t0 = time.monotonic()
    rc = cli(["dashboard", QUICKSTART, "--workdir", str(tmp_path), "--storage", "postgresql://u:p@127.0.0.1:1/db"])
    err = one_line_error(capsys, rc, "storage postgresql://u:***@127.0.0.1:1/db", "cannot open", "refused")
    assert ":p@" not in err  # the password is never printed
    assert time.monotonic() - t0 < 30


@pytest.mark.slow
def test_the_study_is_labelled_for_the_dashboard(served: Served, swept: Path):
    assert "study 'quickstart'" in served.lines[0] and "/dashboard/studies/" in served.url, served.lines
    assert any(f"ape-nas ui --workdir {swept.resolve()}" in line for line in served.lines), served.lines
    with urllib.request.urlopen(served.url.replace("/dashboard/studies/", "/api/studies/"), timeout=30) as r:
        detail = json.load(r)
    assert detail["name"] == "quickstart" and detail["objective_names"] == ["val_f1_macro"]
    attrs = {a["key"]: a["value"] for a in detail["user_attrs"]}
    assert attrs["mlflow_ui"].startswith(f"ape-nas ui --workdir {swept.resolve()}"), attrs
    assert "experiment 'quickstart'" in attrs["mlflow_ui"]
    assert [t["number"] for t in detail["trials"]] == [0, 1]
    assert all(a["key"] != "mlflow_run_id" or a["value"] for t in detail["trials"] for a in t["user_attrs"])


@pytest.mark.slow
def test_a_browser_shows_the_study_and_its_trials(served: Served):
    chromium = _chromium()
    study, trials = _dump_dom(chromium, served.url), _dump_dom(chromium, f"{served.url}/trials")  # both at once
    study_dom, _ = study.communicate(timeout=120)
    trials_dom, _ = trials.communicate(timeout=120)
    for dom in (study_dom, trials_dom):
        assert "quickstart (id=" in dom, dom[-2000:]  # the app bar: the study is open
    assert "val_f1_macro" in study_dom and "Study User Attributes" in study_dom and "mlflow_ui" in study_dom
    assert "Trial 0" in trials_dom and "Trial 1" in trials_dom, trials_dom[-2000:]
    assert "mlflow_run_id" in trials_dom  # each trial's way to its MLflow run


@pytest.mark.slow
def test_ctrl_c_stops_the_dashboard_cleanly(served: Served):
    """Last: it stops the module's server."""
    assert served.proc.poll() is None, "the dashboard stopped by itself"
    served.proc.send_signal(signal.SIGINT)
    served.proc.wait(timeout=60)  # stdout: read by the fixture's thread
    err = served.proc.stderr.read()
    assert served.proc.returncode == 0, err
    assert "Traceback" not in err and err.strip() == "", err
    assert port_is_free(served.port)
