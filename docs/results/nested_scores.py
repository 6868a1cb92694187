"""The nested-CV figures the README quotes, kept with the date, commit and machine that produced them.

    python docs/results/nested_scores.py experiments/stress_predict_nested.yaml
    # → docs/results/stress_predict_nested.json

Runs the nested experiment as ``ape-nas sweep`` does (every outer fold's search, the refit of its best spec,
the HRV baselines on the same outer folds) in a work directory (``--workdir``; default a new temporary one, so
the figures do not depend on earlier runs; an existing one is resumed) and records the wall time, each outer
fold and the pooled results with their subject-bootstrap intervals. ``tests/test_readme.py`` checks the
README's figures against this file.
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


def nested_scores(experiment: str, workdir: Path) -> dict[str, Any]:
    from ape_nas.nested import result_dict, run_nested
    from ape_nas.sweep import prepare_sweep

    plan = prepare_sweep(experiment, workdir=workdir)
    started = time.perf_counter()
    outcome = run_nested(plan, progress=False)
    wall = time.perf_counter() - started
    if outcome.interrupted:
        raise SystemExit("interrupted: run the same command with --workdir to continue")
    return {"experiment": experiment, "nested_s": round(wall, 1), **result_dict(outcome)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", help="nested experiment YAML file")
    ap.add_argument("--workdir", default=None, help="work directory (default: a new temporary one)")
    ap.add_argument("--out", default=None, help="results file (default: docs/results/<experiment file stem>.json)")
    args = ap.parse_args()
    out = Path(args.out) if args.out else HERE / f"{Path(args.experiment).stem}.json"
    if args.workdir:
        result = nested_scores(args.experiment, Path(args.workdir))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = nested_scores(args.experiment, Path(tmp))
    out.write_text(json.dumps({**result, "measured": provenance()}, indent=2, default=str) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
