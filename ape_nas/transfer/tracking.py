"""One MLflow run per ``ape-nas transfer``: nested under the source trial's run in its experiment (a trial
source), or in an experiment of its own (a bundle source; ``--experiment``). Params (source, methods, shots,
protocols, repeats), one metric per protocol, method and K (with its interval bounds), the results JSON, the
curve under ``plots/`` and the adapted bundle under ``bundle/`` (``--out``). The run is written after the work is
done and deleted again if writing it fails: no orphan run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ape_nas.transfer.results import METRIC
from ape_nas.transfer.source import TransferSource

ROLE = "transfer"


def metric_key(row: dict[str, Any], suffix: str = "") -> str:
    method = row["method"].replace("+", "_plus_")
    return f"{row['protocol']}/{method}/k{row['k']}/{METRIC}{suffix}"


def run_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in rows:
        iv = row[METRIC]
        out[metric_key(row)] = iv["point"]
        out[metric_key(row, "_low")] = iv["low"]
        out[metric_key(row, "_high")] = iv["high"]
    return out


def own_experiment(args: argparse.Namespace) -> tuple[str, str]:
    """(tracking URI, experiment id) of ``--experiment`` in ``--tracking-uri`` or the workdir's store (created if
    needed): where a consumer command logs the run of a bundle source, which has no trial run of its own."""
    from ape_nas.tracking import SweepTracker, default_tracking_uri

    workdir = Path(args.workdir)
    uri = args.tracking_uri or default_tracking_uri(workdir)
    if not args.tracking_uri:
        workdir.mkdir(parents=True, exist_ok=True)
    return uri, SweepTracker(uri, args.experiment, artifact_root=workdir / "artifacts").experiment_id


def log_transfer(
    source: TransferSource,
    record: dict[str, Any],
    rows: list[dict[str, Any]],
    files: list[Path],
    bundle: Path | None,
    args: argparse.Namespace,
) -> tuple[str, str, str]:
    """(experiment id, run id, tracking URI) of the transfer run."""
    from ape_nas.tracking import PARENT_TAG, TrialStore

    tags: dict[str, str] = {
        "ape_nas.transfer.source": source.where,
        "ape_nas.transfer.data": str(record["target"]["data"]),
    }
    if source.kind == "trial" and source.tracking_uri and source.experiment_id:
        uri, experiment_id = source.tracking_uri, source.experiment_id
        tags[PARENT_TAG] = str(source.run_id)
    else:
        uri, experiment_id = own_experiment(args)
    store = TrialStore(uri)
    req = record["request"]
    name = f"transfer-{'+'.join(req['methods'])}"
    run = store.new_run(experiment_id, name, ROLE, source.spec, tags)
    try:
        run.log_params(
            {
                "transfer.source": source.where,
                "transfer.data": record["target"]["data"],
                "transfer.methods": ",".join(req["methods"]),
                "transfer.shots": ",".join(map(str, req["shots"])),
                "transfer.protocols": ",".join(req["protocols"]),
                "transfer.repeats": req["repeats"],
                "transfer.adapt_subjects": req["adapt_subjects"],
                "transfer.seed": req["seed"],
                "transfer.target_subjects": ",".join(record["target"]["subjects"]),
            }
        )
        run.log_metrics(run_metrics(rows))
        for path in files:
            run.log_artifact(path, "plots" if path.suffix == ".png" else None)
        if bundle is not None:
            store.log_artifacts(run.run_id, bundle, "bundle")
        run.close("complete")
    except BaseException:
        store.delete_run(run.run_id)
        raise
    return experiment_id, run.run_id, uri
