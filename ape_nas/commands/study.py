"""``ape-nas status`` (the trials of a sweep) and ``ape-nas best`` (its best trial and TrialSpec)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ape_nas.commands.common import Command, backend_arg, console, set_args, workdir_args
from ape_nas.errors import UserError

STATES = ("complete", "pruned", "rejected", "failed", "running", "interrupted")


def study_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment YAML file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    backend_arg(p)
    workdir_args(p)
    set_args(p)


def _nested(args: argparse.Namespace) -> bool:
    """``status`` / ``best`` of a nested experiment: every outer study and the pooled result (printed here)."""
    from ape_nas.config.flags import flag_overrides
    from ape_nas.experiments import load_experiment
    from ape_nas.nested import is_nested, status_payload, status_table

    exp = load_experiment(args.experiment, flag_overrides(args))
    if not is_nested(exp):
        return False
    payload = status_payload(exp, Path(args.workdir), args.storage)
    if not any(f["exists"] for f in payload["folds"]):
        raise UserError(
            f"nested experiment {exp.name!r} has no outer study in {args.workdir}; run `ape-nas sweep` first"
        )
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
        return True
    metric = exp.objective["metric"]
    out = console()
    out.print(status_table(payload, metric))
    pooled = payload["pooled"] or {}
    value = pooled.get(f"nested_test_{metric}")
    if value is None:
        out.print("pooled estimate: not yet (every outer fold needs its refit; run `ape-nas sweep` to finish)")
    else:
        low, high = pooled.get(f"nested_test_{metric}_ci_low"), pooled.get(f"nested_test_{metric}_ci_high")
        ref = pooled.get(f"hrv_subjnorm_nested_test_{metric}")
        out.print(
            f"nested estimate on unseen subjects: {metric} {value:.4f} [{low:.4f}, {high:.4f}] (95% subject bootstrap)"
            + (f" · per-subject-normalised HRV baseline {ref:.4f}" if ref is not None else "")
        )
    return True


def run_status(args: argparse.Namespace) -> int:
    from ape_nas.config.flags import flag_overrides

    if _nested(args):
        return 0
    from ape_nas.dburl import hide_password
    from ape_nas.progress import best_of, summary_table
    from ape_nas.sweep import comparable, load_status
    from ape_nas.tracking import EXPERIMENT_ATTR, PARENT_RUN_ATTR

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
            EXPERIMENT_ATTR: attrs.get(EXPERIMENT_ATTR),
            "parent_run_id": attrs.get(PARENT_RUN_ATTR),
            "direction": exp.direction,
            "metric": exp.objective["metric"],
            "counts": {s: sum(r.state == s for r in records) for s in STATES},
            "best": best.to_dict() if best else None,
            "trials": [r.to_dict() for r in records],
        }
        if exp.multi_objective:
            payload.update(_front_payload(exp, comparable(records, attrs)))
        print(json.dumps(payload, indent=2, default=str))
        return 0
    out = console()
    out.print(summary_table(records, exp.direction, exp.objective["metric"], limit=10_000))
    if exp.multi_objective:
        from ape_nas.commands.sweep import print_front

        print_front(out, exp, comparable(records, attrs))
    out.print(f"study {exp.name} · {backend.storage_label} · MLflow {hide_password(str(attrs.get('tracking_uri')))}")
    return 0


def run_best(args: argparse.Namespace) -> int:
    from ape_nas.config.flags import flag_overrides

    if _nested(args):  # each outer fold's best trial and its refit: the table is the answer
        return 0
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
    if exp.multi_objective:
        return _best_front(args, exp, comparable(records, backend.attrs()))
    spec = TrialSpec.from_dict(best.attrs["spec"])
    if args.json:
        print(
            json.dumps(
                {
                    **best.to_dict(),
                    "test_metrics": best.attrs.get("test_metrics"),
                    "test_ci": best.attrs.get("test_ci"),
                    "spec": spec.to_dict(),
                },
                indent=2,
                default=str,
            )
        )
        return 0
    out = console()
    out.print(
        f"[bold]best trial {best.number}[/bold] of {exp.name}: val {exp.objective['metric']} "
        f"{best.value:.4f} · MLflow run {best.run_id}"
    )
    test = best.attrs.get("test_metrics") or {}
    ci = best.attrs.get("test_ci") or {}

    def shown(key: str, value: float) -> str:
        low_high = ci.get(key.removeprefix("test_"))
        return f"{key} {value:.4f}" + (f" [{low_high[0]:.3f}, {low_high[1]:.3f}]" if low_high else "")

    if test:
        out.print(
            "test subjects (never used by the search): "
            + ", ".join(shown(k, v) for k, v in sorted(test.items()))
            + (" — 95% subject-bootstrap intervals; with few test subjects ±10 points is normal" if ci else "")
        )
    out.print(spec.to_yaml(), highlight=False, markup=False)
    return 0


def _front_payload(exp: Any, records: list[Any]) -> dict[str, Any]:
    from ape_nas import pareto

    points = pareto.front(records, exp.directions)
    return {
        "objectives": exp.objectives,
        "directions": exp.directions,
        "constraints": exp.objective["constraints"],
        "pareto_front": pareto.payload(points, exp.objectives, exp.objective["metric"]),
    }


def _best_front(args: argparse.Namespace, exp: Any, records: list[Any]) -> int:
    """``best`` of a multi-objective study: there is no one best trial, there is the Pareto front."""
    from ape_nas import pareto
    from ape_nas.commands.sweep import print_front

    if args.json:
        by_number = {r.number: r for r in records}
        payload = _front_payload(exp, records)
        for point in payload["pareto_front"]:
            point["spec"] = by_number[point["trial"]].attrs.get("spec")
        print(json.dumps({"study": exp.name, **payload}, indent=2, default=str))
        return 0
    out = console()
    print_front(out, exp, records)
    points = pareto.front(records, exp.directions)
    out.print(
        f"{len(points)} trials on the front of {exp.name}: export any with "
        f"`ape-nas export {args.experiment} --trial N`; `ape-nas show {args.experiment} --trial N` prints its network"
    )
    return 0


STATUS = Command("status", "trials of a sweep with state, value, duration and MLflow run", study_arguments, run_status)
BEST = Command("best", "the best trial of a sweep and its TrialSpec", study_arguments, run_best)
