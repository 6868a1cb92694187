"""``ape-nas reproduce``: retrain a recorded trial from its TrialSpec (MATCH/MISMATCH), or ``--final``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ape_nas.commands.common import (
    Command,
    console,
    set_args,
    tracking_uri_arg,
    workdir_arg,
)


def reproduce_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", help="experiment YAML file (with --trial) or an MLflow run id")
    p.add_argument("--trial", default="best", help="trial number or 'best' (default)")
    p.add_argument("--final", action="store_true", help="retrain on all non-test subjects, evaluate the test subjects")
    p.add_argument("--tolerance", type=float, default=1e-6, help="largest |difference| that still counts as MATCH")
    tracking_uri_arg(p, "the workdir's")
    p.add_argument("--json", action="store_true")
    workdir_arg(p)  # trials are read from MLflow: no study storage, no backend
    set_args(p)


def run_reproduce(args: argparse.Namespace) -> int:
    from ape_nas import reproduce as rep
    from ape_nas.tracking import default_tracking_uri

    if Path(args.target).is_file():
        run_id, tracking_uri = rep.find_trial(
            args.target, args.trial, workdir=args.workdir, tracking_uri=args.tracking_uri, overrides=args.overrides
        )
    else:
        run_id, tracking_uri = args.target, default_tracking_uri(Path(args.workdir))
    tracking_uri = args.tracking_uri or tracking_uri
    source = rep.load_source(run_id, tracking_uri)
    cache_dir = Path(args.workdir) / "cache"
    if args.final:
        return _print_final(rep.final(source, cache_dir=cache_dir), args.json)
    out = rep.reproduce(source, cache_dir=cache_dir, tolerance=args.tolerance)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        style = "green" if out["verdict"] == "MATCH" else "red"
        screen = console()
        screen.print(
            f"[{style}]{out['verdict']}[/{style}]: val {out['metric']} reproduced {out['reproduced']:.6f}, "
            f"recorded {out['recorded']:.6f}, |Δ| {out['abs_diff']:.2e} (tolerance {out['tolerance']:.0e})"
            f" · MLflow run {out['run_id']} (source {out['source_run']})"
        )
        if out["data_changed"]:
            screen.print(
                f"[yellow]the windows differ from the source run's (data fingerprint {out['data_fingerprint']} vs "
                f"{out['source_data_fingerprint']}): data or preprocessing changed since the trial[/yellow]"
            )
    return 0 if out["verdict"] == "MATCH" else 1


def _print_final(out: dict, as_json: bool) -> int:
    if as_json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    screen = console()
    screen.print(
        f"final model: trained {out['epochs']} epochs on {len(out['train_subjects'])} subjects; "
        f"test subjects {', '.join(out['test_subjects'])} (evaluated once)"
    )
    screen.print("  " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(out["test_metrics"].items())))
    for subject, metrics in out["per_subject"].items():
        screen.print(f"  {subject}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())))
    screen.print(f"MLflow run {out['run_id']} (source {out['source_run']})")
    return 0


REPRODUCE = Command(
    "reproduce",
    "retrain a recorded trial from its TrialSpec and compare the score (MATCH)",
    reproduce_arguments,
    run_reproduce,
)
