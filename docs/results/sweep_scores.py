"""The scores the README quotes for a sweep, kept with the date, commit and machine that produced them.

    python docs/results/sweep_scores.py experiments/quickstart.yaml       # → docs/results/quickstart.json
    python docs/results/sweep_scores.py experiments/stress_predict.yaml   # → docs/results/stress_predict.json

Runs the experiment's full sweep as ``ape-nas sweep`` does, in a new temporary work directory (a fresh study,
so the figures do not depend on earlier runs), and records the sweep's wall time, its best trial (number,
family, validation score, test-subject metrics) and the HRV baseline on the same splits (plain and with
features normalised per subject). ``tests/test_readme.py`` checks the README's figures against these files.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import provenance  # noqa: E402  (benchmarks/ is not a package)


def sweep_scores(experiment: str, workdir: Path) -> dict[str, Any]:
    from ape_nas.sweep import prepare_sweep, run_sweep

    plan = prepare_sweep(experiment, workdir=workdir)
    started = time.perf_counter()
    outcome = run_sweep(plan, progress=False)
    wall = time.perf_counter() - started
    exp = plan.experiment
    best, baseline = outcome.best, outcome.baseline
    return {
        "experiment": experiment,
        "metric": exp.objective["metric"],
        "trials": len(outcome.records),
        "sweep_s": round(wall, 1),
        "best": None
        if best is None
        else {"number": best.number, "model": best.model, "val": best.value, "test": best.attrs.get("test_metrics")},
        "hrv_baseline": None
        if baseline is None
        else {"val": baseline.val, "test": baseline.test, "subject_normalised": baseline.subject_normalised},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", help="experiment YAML file, e.g. experiments/quickstart.yaml")
    ap.add_argument("--out", default=None, help="results file (default: docs/results/<experiment name>.json)")
    args = ap.parse_args()
    out = Path(args.out) if args.out else HERE / f"{Path(args.experiment).stem}.json"
    with tempfile.TemporaryDirectory() as tmp:
        result = sweep_scores(args.experiment, Path(tmp))
    out.write_text(json.dumps({**result, "measured": provenance()}, indent=2, default=str) + "\n")
    print(f"{out}: best val {result['metric']} {result['best'] and result['best']['val']}")


if __name__ == "__main__":
    main()
