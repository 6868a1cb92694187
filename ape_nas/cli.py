"""Command line: a table of thin subcommands (parse, call, print). Heavy imports happen inside commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ape_nas.errors import UserError

DEFAULT_WORKDIR = "runs"


def _console() -> Any:
    from ape_nas.console import make_console

    return make_console()


def _workdir_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workdir",
        default=DEFAULT_WORKDIR,
        help=f"work directory: study, MLflow store, cache (default: ./{DEFAULT_WORKDIR})",
    )
    p.add_argument("--storage", default=None, help="Optuna storage URL (default: SQLite in the work directory)")


def _backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend", default=None, help="the backend whose store holds the study (when several stores hold one)"
    )


def _set_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an experiment key, e.g. --set budget.trials=5 (repeatable)",
    )


def cmd_sweep(args: argparse.Namespace) -> int:
    from ape_nas.config.flags import flag_overrides
    from ape_nas.progress import summary_table
    from ape_nas.sweep import prepare_sweep, run_sweep

    plan = prepare_sweep(
        args.experiment,
        overrides=flag_overrides(args),
        workdir=args.workdir,
        tracking_uri=args.tracking_uri,
        storage=args.storage,
        new_study=args.new_study,
    )
    exp = plan.experiment
    console = _console()
    console.print(
        f"[bold]ape-nas sweep[/bold] {exp.name}: space {plan.space.name} "
        f"({', '.join(plan.space.family_names)}), {exp.budget['trials']} trials, "
        f"objective val {exp.objective['metric']} ({exp.direction}), backend {exp.backend['name']} "
        f"{_search_label(exp.backend)}"
    )
    outcome = run_sweep(plan, progress=not args.no_progress)
    exp = plan.experiment  # --new-study may have moved the sweep to a derived study name
    console.print(summary_table(outcome.records, exp.direction, exp.objective["metric"]))
    if outcome.best is not None:
        console.print(
            f"best: trial {outcome.best.number}  val {exp.objective['metric']} = "
            f"{outcome.best.value:.4f}  (mlflow run {outcome.best.run_id})"
        )
    if outcome.baseline is not None and outcome.best is not None:
        console.print(
            _baseline_comparison(outcome.baseline, outcome.best.value, exp.objective["metric"], exp.direction)
        )
    console.print(f"new trials this run: {len(outcome.new_trials)}  ·  study: {outcome.storage}")
    console.print(f"MLflow: {_mlflow_hint(outcome.tracking_uri, args.workdir)}  (parent run {outcome.parent_run_id})")
    if outcome.interrupted:
        from ape_nas.interrupts import LINE, exit_code

        console.print(f"[yellow]{LINE}[/yellow]")
        return exit_code()
    return 0


def _search_label(backend: dict[str, Any]) -> str:
    """``\\[tpe / median]`` (escaped: rich would read the brackets as markup); Ray adds its scheduler."""
    parts = [str(backend["sampler"]), str(backend["pruner"])]
    if backend["name"] == "ray":
        parts = [str(backend["sampler"]), f"scheduler {backend.get('scheduler')}"]
    return "\\[" + " / ".join(parts) + "]"


def _baseline_comparison(baseline: Any, best: float, metric: str, direction: str) -> str:
    ref = baseline.val.get(metric)
    if ref is None:
        return "HRV baseline: see hrv_baseline.json on the parent run"
    beats = (best > ref) == (direction == "maximize")
    text = (
        f"HRV baseline on the same splits: val {metric} {ref:.4f} (test {baseline.test[metric]:.4f}) → best deep "
        f"model {'beats' if beats else 'does NOT beat'} it"
    )
    norm = baseline.subject_normalised.get("val", {}).get(metric)
    if norm is not None:
        ahead = (norm > best) == (direction == "maximize") and norm != best
        text += f"; with per-subject feature normalisation the baseline reaches val {norm:.4f}" + (
            " — ahead of the best deep model" if ahead else ""
        )
    return text


def _mlflow_hint(tracking_uri: str, workdir: str) -> str:
    from ape_nas.dburl import hide_password

    if tracking_uri.startswith(("http://", "https://")):
        return hide_password(tracking_uri)
    return f"{tracking_uri}  →  browse with: ape-nas ui --workdir {workdir}"


def cmd_worker(args: argparse.Namespace) -> int:
    from ape_nas.workers import cli_worker

    return cli_worker(args)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from ape_nas import reproduce as rep
    from ape_nas.tracking import default_tracking_uri

    if Path(args.target).is_file():
        run_id, tracking_uri = rep.find_trial(
            args.target, args.trial, workdir=args.workdir, storage=args.storage, overrides=args.overrides
        )
    else:
        run_id, tracking_uri = args.target, default_tracking_uri(Path(args.workdir))
    tracking_uri = args.tracking_uri or tracking_uri
    source = rep.load_source(run_id, tracking_uri)
    cache_dir = Path(args.workdir) / "cache"
    console = _console()
    if args.final:
        out = rep.final(source, cache_dir=cache_dir)
        if args.json:
            print(json.dumps(out, indent=2, default=str))
            return 0
        console.print(
            f"final model: trained {out['epochs']} epochs on {len(out['train_subjects'])} subjects; "
            f"test subjects {', '.join(out['test_subjects'])} (evaluated once)"
        )
        console.print("  " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(out["test_metrics"].items())))
        for subject, metrics in out["per_subject"].items():
            console.print(f"  {subject}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())))
        console.print(f"MLflow run {out['run_id']} (source {out['source_run']})")
        return 0
    out = rep.reproduce(source, cache_dir=cache_dir, tolerance=args.tolerance)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        style = "green" if out["verdict"] == "MATCH" else "red"
        console.print(
            f"[{style}]{out['verdict']}[/{style}]: val {out['metric']} reproduced {out['reproduced']:.6f}, "
            f"recorded {out['recorded']:.6f}, |Δ| {out['abs_diff']:.2e} (tolerance {out['tolerance']:.0e})"
            f" · MLflow run {out['run_id']} (source {out['source_run']})"
        )
        if out["data_changed"]:
            console.print(
                f"[yellow]the windows differ from the source run's (data fingerprint {out['data_fingerprint']} vs "
                f"{out['source_data_fingerprint']}): data or preprocessing changed since the trial[/yellow]"
            )
    return 0 if out["verdict"] == "MATCH" else 1


def cmd_status(args: argparse.Namespace) -> int:
    from ape_nas.config.flags import flag_overrides
    from ape_nas.progress import best_of, summary_table
    from ape_nas.sweep import comparable, load_status

    exp, backend = load_status(
        args.experiment, workdir=args.workdir, storage=args.storage, overrides=flag_overrides(args)
    )
    records = backend.records()
    attrs = backend.attrs()
    best = best_of(comparable(records, attrs), exp.direction)
    if args.json:
        payload = {
            "study": exp.name,
            "storage": backend.storage_label,
            "tracking_uri": attrs.get("tracking_uri"),
            "mlflow_experiment_id": attrs.get("mlflow_experiment_id"),
            "parent_run_id": attrs.get("mlflow_parent_run_id"),
            "direction": exp.direction,
            "metric": exp.objective["metric"],
            "counts": {
                s: sum(r.state == s for r in records)
                for s in ("complete", "pruned", "failed", "running", "interrupted")
            },
            "best": best.to_dict() if best else None,
            "trials": [r.to_dict() for r in records],
        }
        print(json.dumps(payload, indent=2, default=str))
        return 0
    console = _console()
    console.print(summary_table(records, exp.direction, exp.objective["metric"], limit=10_000))
    from ape_nas.dburl import hide_password

    console.print(
        f"study {exp.name} · {backend.storage_label} · MLflow {hide_password(str(attrs.get('tracking_uri')))}"
    )
    return 0


def cmd_best(args: argparse.Namespace) -> int:
    from ape_nas.config.flags import flag_overrides
    from ape_nas.progress import best_of
    from ape_nas.spec import TrialSpec
    from ape_nas.sweep import comparable, load_status

    exp, backend = load_status(
        args.experiment, workdir=args.workdir, storage=args.storage, overrides=flag_overrides(args)
    )
    records = backend.records()
    best = best_of(comparable(records, backend.attrs()), exp.direction)
    if best is None:
        raise UserError(f"study {exp.name!r} has no complete trial yet")
    spec = TrialSpec.from_dict(best.attrs["spec"])
    if args.json:
        print(
            json.dumps(
                {**best.to_dict(), "test_metrics": best.attrs.get("test_metrics"), "spec": spec.to_dict()},
                indent=2,
                default=str,
            )
        )
        return 0
    console = _console()
    console.print(
        f"[bold]best trial {best.number}[/bold] of {exp.name}: val {exp.objective['metric']} "
        f"{best.value:.4f} · mlflow run {best.run_id}"
    )
    test = best.attrs.get("test_metrics") or {}
    if test:
        console.print(
            "test subjects (never used by the search): " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(test.items()))
        )
    console.print(spec.to_yaml(), highlight=False, markup=False)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from ape_nas.models import get_family, list_models

    families = [get_family(n) for n in list_models()]
    if args.json:
        print(
            json.dumps(
                {f.name: {"description": f.description, "arch": f.arch_defaults} for f in families},
                indent=2,
                default=str,
            )
        )
        return 0
    from rich.table import Table

    table = Table(title="model families")
    for col in ("name", "description", "architecture arguments (defaults)"):
        table.add_column(col)
    for f in families:
        table.add_row(f.name, f.description, ", ".join(f"{k}={v!r}" for k, v in f.arch_defaults.items()))
    _console().print(table)
    return 0


def cmd_spaces(args: argparse.Namespace) -> int:
    from ape_nas.space import load_space

    folder = Path(args.dir)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder (expected the folder holding search-space YAML files)")
    spaces = [load_space(p) for p in sorted(folder.glob("*.yaml"))]
    if args.json:
        print(
            json.dumps(
                {
                    s.name: {
                        "path": s.path,
                        "description": s.description,
                        "families": s.family_names,
                        "parameters": {p.name: p.describe() for p in s.parameters()},
                    }
                    for s in spaces
                },
                indent=2,
            )
        )
        return 0
    from rich.table import Table

    table = Table(title=f"search spaces in {folder}")
    for col in ("name", "families", "searched parameters", "description"):
        table.add_column(col)
    for s in spaces:
        searched = [p for p in s.parameters() if p.kind != "fixed"]
        table.add_row(s.name, ", ".join(s.family_names), str(len(searched) + (len(s.families) > 1)), s.description)
    _console().print(table)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from ape_nas.ui import serve_ui

    return serve_ui(Path(args.workdir), args.host, args.port)


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for text in pairs:
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise UserError(f"--set {text}: expected name=value, e.g. --set task=phases")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise UserError(f"--set {text}: value {raw!r} is not a valid YAML scalar or list") from None
    return out


def cmd_data_inspect(args: argparse.Namespace) -> int:
    import warnings

    from ape_nas.data.inspect import inspect_benchmark, open_data

    params = _parse_params(args.overrides)
    if args.trust_pickle:
        params["trust_pickle"] = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bench = open_data(args.target, params, args.benchmark, require_labels=False)
    report = inspect_benchmark(bench)
    report["warnings"] = [str(w.message) for w in caught]
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    _print_inspect(report)
    return 0


def _print_inspect(report: dict[str, Any]) -> None:
    from rich.table import Table

    console = _console()
    classes = report["class_names"] if report["labelled"] else []
    if report["labelled"]:
        balance = "classes " + ", ".join(f"{c} {report['label_balance'][c]:.1%}" for c in classes)
    else:
        balance = f"unlabelled (label balance: none; {report['no_labels']})"
    console.print(f"[bold]{report['benchmark']}[/bold]: {report['n_subjects']} subjects · {balance}")
    table = Table(show_lines=False)
    for col in ("subject", "minutes", "channels (Hz)", *(f"{c} min" for c in classes), "unlabelled min", "problems"):
        table.add_column(col, justify="right" if "min" in col else "left", overflow="fold")
    for s in report["subjects"]:
        chans = ", ".join(
            f"{ch} {info['rate_hz']:g}" if info["rate_hz"] else f"{ch} ({info.get('beats', 0)} beats)"
            for ch, info in s["channels"].items()
        )
        table.add_row(
            s["subject"],
            f"{s['duration_s'] / 60:.1f}",
            chans,
            *(f"{s['label_seconds'][c] / 60:.1f}" for c in classes),
            f"{s['unlabelled_s'] / 60:.1f}",
            "; ".join(s["problems"]) or "—",
        )
    console.print(table)
    for subject, why in report["skipped"].items():
        console.print(f"[yellow]skipped {subject}: {why}[/yellow]")
    for w in report["warnings"]:
        console.print(f"[yellow]warning: {w}[/yellow]")


def cmd_data_prepare(args: argparse.Namespace) -> int:
    import time

    from rich.progress import Progress
    from rich.table import Table

    from ape_nas.config.experiment import load_experiment
    from ape_nas.data.prepare import prepare_windows

    exp = load_experiment(args.experiment, args.overrides)
    console = _console()
    started = time.perf_counter()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"windows of {exp.data['benchmark']}", total=None)
        ws = prepare_windows(
            exp.data,
            Path(args.workdir) / "cache",
            progress=lambda s: bar.update(task, advance=1, description=f"windows of {exp.data['benchmark']}: {s}"),
        )
    elapsed = time.perf_counter() - started
    table = Table(
        title=f"{exp.name}: {len(ws.y)} windows of {ws.X.shape[2]} samples at {ws.rate_hz:g} Hz, "
        f"channels {', '.join(ws.channels)}"
    )
    reasons = list(ws.stats["dropped_total"])
    for col in ("subject", "windows", *ws.class_names, *(f"dropped {r}" for r in reasons)):
        table.add_column(col, justify="left" if col == "subject" else "right")
    for subject, info in ws.stats["per_subject"].items():
        table.add_row(
            subject, str(info["windows"]), *map(str, info["counts"]), *(str(info["dropped"].get(r, 0)) for r in reasons)
        )
    console.print(table)
    for subject, why in ws.stats.get("skipped", {}).items():
        console.print(f"[yellow]skipped {subject}: {why}[/yellow]")
    console.print(f"cache {Path(args.workdir) / 'cache' / ws.fingerprint} ({elapsed:.2f} s)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ape_nas.handoff.export import cli_export

    return cli_export(args)


def cmd_predict(args: argparse.Namespace) -> int:
    from ape_nas.handoff.predict import cli_predict

    return cli_predict(args)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ape_nas.handoff.evaluate import cli_evaluate

    return cli_evaluate(args)


def _reader_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", default=None, help="reader to use instead of detecting it from the layout")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="reader parameter by its own name, e.g. --set labels=PATH or --set task=phases (repeatable)",
    )


def _recordings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="bundle folder written by `ape-nas export`")
    p.add_argument(
        "--data",
        required=True,
        help="recordings: a folder or file in any supported reader format, or a built-in benchmark name (synthetic)",
    )
    _reader_args(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ape-nas",
        description="Architecture search for cardiac-emotion models: "
        "sweeps with Optuna or Ray Tune, every trial tracked in MLflow.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__import__('ape_nas').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
        "sweep": (cmd_sweep, "run (or resume) a sweep of an experiment file"),
        "status": (cmd_status, "trials of a sweep with state, value, duration and MLflow run"),
        "best": (cmd_best, "the best trial of a sweep and its TrialSpec"),
        "models": (cmd_models, "registered model families and their architecture arguments"),
        "spaces": (cmd_spaces, "search-space files and their parameters"),
        "ui": (cmd_ui, "MLflow UI on 127.0.0.1 for a work directory"),
        "reproduce": (cmd_reproduce, "retrain a recorded trial from its TrialSpec and compare the score (MATCH)"),
        "worker": (cmd_worker, "join a study as one more Optuna worker (or spawn --workers N on this machine)"),
        "export": (cmd_export, "write a self-contained bundle (ONNX, TorchScript, preprocessing, model card)"),
        "predict": (cmd_predict, "run a bundle on new recordings through onnxruntime (probabilities per window)"),
        "evaluate": (cmd_evaluate, "run a bundle on labelled recordings: metrics per subject, confusion matrix"),
        "data": (None, "inspect data sets and build the window cache"),
    }
    parsers = {}
    for name, (fn, help_text) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if fn is not None:
            p.set_defaults(func=fn)
        parsers[name] = p
    data = parsers["data"].add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    p = data.add_parser(
        "inspect",
        help="subjects, duration, channels and rates, label balance, quality problems",
        description="Inspect a data folder/file (format detected) or a benchmark by name.",
    )
    p.set_defaults(func=cmd_data_inspect)
    p.add_argument("target", help="data folder or file, or a benchmark name (e.g. synthetic)")
    _reader_args(p)
    p.add_argument("--trust-pickle", action="store_true", help="allow unpickling (WESAD): only for trusted files")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p = data.add_parser(
        "prepare",
        help="build the window cache of an experiment (once; later runs load it)",
        description="Preprocess an experiment's data into cached windows.",
    )
    p.set_defaults(func=cmd_data_prepare)
    p.add_argument("experiment", help="experiment YAML file")
    p.add_argument("--workdir", default=DEFAULT_WORKDIR)
    _set_args(p)
    p = parsers["sweep"]
    p.add_argument("experiment", help="experiment YAML file")
    p.add_argument("--trials", type=int, default=None, help="trials to add (default: budget.trials)")
    p.add_argument("--timeout", type=float, default=None, help="seconds after which no new trial starts")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: SQLite in the work directory)")
    p.add_argument("--no-progress", action="store_true", help="no live progress bar")
    p.add_argument("--backend", default=None, help="search backend: optuna or ray (default: backend.name)")
    p.add_argument("--address", default=None, help="ray: address of a running cluster (ray start --head)")
    p.add_argument(
        "--new-study",
        action="store_true",
        help="the experiment's study was made on other data/protocol: continue in a derived study (<name>-2, ...)",
    )
    _workdir_args(p)
    _set_args(p)
    p = parsers["reproduce"]
    p.add_argument("target", help="experiment YAML file (with --trial) or an MLflow run id")
    p.add_argument("--trial", default="best", help="trial number or 'best' (default)")
    p.add_argument("--final", action="store_true", help="retrain on all non-test subjects, evaluate the test subjects")
    p.add_argument("--tolerance", type=float, default=1e-6, help="largest |difference| that still counts as MATCH")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: the study's, or the workdir's)")
    p.add_argument("--json", action="store_true")
    _workdir_args(p)
    _set_args(p)
    p = parsers["worker"]
    p.add_argument("experiment", help="experiment YAML file")
    p.add_argument("--trials", type=int, default=None, help="trials this worker adds (default: budget.trials)")
    p.add_argument("--timeout", type=float, default=None, help="seconds after which this worker starts no trial")
    p.add_argument("--workers", type=int, default=1, help="spawn N worker processes on this machine")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: SQLite in the work directory)")
    _workdir_args(p)
    _set_args(p)
    p = parsers["export"]
    p.add_argument("target", help="MLflow run id of a trial, or an experiment YAML file (its best trial)")
    p.add_argument("--out", required=True, help="bundle folder to write (must not exist or be empty)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: the study's, or the workdir's)")
    p.add_argument("--model-name", default=None, help="registered model name (default: ape-nas-<experiment>)")
    p.add_argument("--no-register", action="store_true", help="do not register the bundle in the MLflow registry")
    p.add_argument("--latency-runs", type=int, default=200, help="timed batch-1 runs for the model card")
    _workdir_args(p)
    _set_args(p)
    _recordings_args(parsers["predict"])
    parsers["predict"].add_argument("--out", default="predictions.csv", help="CSV of per-window probabilities")
    p = parsers["evaluate"]
    _recordings_args(p)
    p.add_argument("--out", default=None, help="folder for evaluation.json and .png (default: next to the bundle)")
    p.add_argument(
        "--labelled-only",
        action="store_true",
        help="keep only labelled windows, as in training (per-subject normalisation then uses the same windows)",
    )
    for name in ("status", "best"):
        p = parsers[name]
        p.add_argument("experiment", help="experiment YAML file")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        _backend_arg(p)
        _workdir_args(p)
        _set_args(p)
    for name in ("reproduce", "export"):
        _backend_arg(parsers[name])
    parsers["models"].add_argument("--json", action="store_true")
    parsers["spaces"].add_argument("--dir", default="search_spaces", help="folder of space files")
    parsers["spaces"].add_argument("--json", action="store_true")
    p = parsers["ui"]
    p.add_argument("--workdir", default=DEFAULT_WORKDIR, help=f"work directory (default: ./{DEFAULT_WORKDIR})")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000; a busy port is an error)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from ape_nas.interrupts import LINE, Interrupted, catch_signals, exit_code

    args = build_parser().parse_args(argv)
    if getattr(args, "backend", None) and args.command in ("reproduce", "export"):
        from ape_nas.config.flags import flag_overrides

        args.overrides = flag_overrides(args)  # they read the study through --set overrides
    try:
        with catch_signals():
            return int(args.func(args) or 0)
    except UserError as err:
        print(f"ape-nas: error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        print(f"ape-nas: {LINE}", file=sys.stderr)
        return exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
