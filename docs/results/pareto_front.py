"""The Pareto front the README shows (issue 11), kept with the date, commit and machine that produced it.

    ape-nas sweep experiments/stress_predict_pareto.yaml --workdir W
    ape-nas export experiments/stress_predict_pareto.yaml --trial N --workdir W --out B --no-register
    ape-nas evaluate B --data ../shared/data/stress-predict --set "subjects=[...test subjects...]" --labelled-only
    python docs/results/pareto_front.py experiments/stress_predict_pareto.yaml --workdir W --bundle B \
        --evaluation B/../evaluation/evaluation.json
    # → docs/results/stress_predict_pareto.json and .png

Reads the finished study (trials, their measured cost, the front = Optuna's ``best_trials``) and the sweep's
parent MLflow run (the HRV baselines on the same folds), and, with ``--bundle`` and ``--evaluation``, the
exported point's ``bundle.json``/``metrics.json`` and the ``evaluation.json`` that ``ape-nas evaluate`` wrote.
The plot is the one the sweep logs to MLflow (``plots/pareto.png``), the HRV baseline's validation score as the
reference line.
``tests/test_readme.py`` checks the README's figures against the JSON file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import provenance  # noqa: E402  (benchmarks/ is not a package)


def summarise(experiment: str, workdir: Path) -> tuple[dict[str, Any], list[Any], Any]:
    """The study's front and counts (plain data), its records and its experiment (for the plot)."""
    from ape_nas import pareto
    from ape_nas.stats import indistinguishable
    from ape_nas.sweep import comparable, load_status
    from ape_nas.tracking import PARENT_RUN_ATTR, TrialStore

    exp, backend = load_status(experiment, workdir=workdir)
    records = comparable(backend.records(), backend.attrs())
    metric = exp.objective["metric"]
    points = pareto.front(records, exp.directions)
    store = TrialStore(backend.attrs()["tracking_uri"])
    parent = backend.attrs()[PARENT_RUN_ATTR]
    with tempfile.TemporaryDirectory() as tmp:
        baseline = json.loads(store.download(parent, "hrv_baseline.json", tmp).read_text())
    durations = [r.duration_s or 0.0 for r in records]
    front = pareto.payload(points, exp.objectives, metric)
    for point, r in zip(front, points, strict=True):
        point["fold_scores"] = r.attrs.get("fold_scores")
        point["test_ci"] = (r.attrs.get("test_ci") or {}).get(metric)
        point["arch"] = (r.attrs.get("spec") or {}).get("arch")
    top = points[0] if points else None
    others = {
        r.number: r.attrs["fold_scores"]
        for r in records
        if r.state == "complete" and top is not None and r.number != top.number and r.attrs.get("fold_scores")
    }
    tied = indistinguishable(top.attrs["fold_scores"], others, exp.direction) if top is not None else []
    return (
        {
            "experiment": experiment,
            "indistinguishable_from_most_accurate": {"tied": len(tied), "of": len(others)},
            "objectives": exp.objectives,
            "directions": exp.directions,
            "constraints": exp.objective["constraints"],
            "sampler": exp.backend["sampler"],
            "trials": {s: sum(r.state == s for r in records) for s in ("complete", "rejected", "pruned", "failed")},
            "trial_seconds_total": round(sum(durations), 1),
            "front": front,
            "hrv_baseline": {
                "val": baseline["val"].get(metric),
                "test": baseline["test"].get(metric),
                "subject_normalised_val": baseline.get("subject_normalised", {}).get("val", {}).get(metric),
                "subject_normalised_test": baseline.get("subject_normalised", {}).get("test", {}).get(metric),
            },
            "all_trials": [
                {"trial": r.number, "state": r.state, "values": r.values, "cost": r.attrs.get("cost")}
                for r in backend.records()
            ],
        },
        records,
        exp,
    )


def exported(bundle: Path, evaluation_json: Path, metric: str) -> dict[str, Any]:
    info = json.loads((bundle / "bundle.json").read_text())
    evaluation = json.loads(evaluation_json.read_text())
    metrics = json.loads((bundle / "metrics.json").read_text())
    return {
        "source": info["source"]["how"],
        "cost": metrics.get("cost"),
        "evaluate": {
            "subjects": sorted(evaluation["per_subject"]),
            "windows": evaluation["overall"].get("windows"),
            metric: evaluation["overall"].get(metric),
        },
        "card_test": metrics["test"]["pooled"].get(metric),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", help="multi-objective experiment YAML file")
    ap.add_argument("--workdir", required=True, help="the sweep's work directory")
    ap.add_argument("--bundle", default=None, help="an exported point of the front")
    ap.add_argument("--evaluation", default=None, help="the evaluation.json `ape-nas evaluate BUNDLE` wrote")
    args = ap.parse_args()
    stem = Path(args.experiment).stem
    measured = provenance()  # before this script writes its files
    result, records, exp = summarise(args.experiment, Path(args.workdir))
    if args.bundle and args.evaluation:
        result["exported_point"] = exported(Path(args.bundle), Path(args.evaluation), exp.objective["metric"])
    from ape_nas import pareto

    fig = pareto.figure(records, exp.objectives, exp.directions, baseline=result["hrv_baseline"]["val"], title=exp.name)
    fig.savefig(HERE / f"{stem}.png", dpi=110)
    out = HERE / f"{stem}.json"
    out.write_text(json.dumps({**result, "measured": measured}, indent=2, default=str) + "\n")
    print(f"wrote {out} and {stem}.png")


if __name__ == "__main__":
    main()
