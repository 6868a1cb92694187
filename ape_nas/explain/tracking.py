"""Where ``explain`` logs: a trial source gets the results folder as artifacts of its own run (``explain/<date>``,
beside its checkpoint, so the MLflow UI shows a trial's explanations with it); a bundle source gets a run of its
own (role ``explain``) in ``--experiment``, deleted again if logging fails (no orphan run)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ape_nas.transfer.source import TransferSource
from ape_nas.transfer.tracking import own_experiment

ROLE = "explain"


def artifact_folder(record: dict[str, Any]) -> str:
    stamp = str(record["measured"]["date"]).replace(":", "").replace("-", "")[:15]
    return f"explain/{stamp}"


def log_explain(source: TransferSource, record: dict[str, Any], out: Path, args: argparse.Namespace) -> str:
    """Log ``out`` to MLflow; returns where, in words."""
    from ape_nas.tracking import TrialStore

    if source.kind == "trial" and source.tracking_uri and source.run_id:
        store = TrialStore(source.tracking_uri)
        folder = artifact_folder(record)
        store.log_artifacts(source.run_id, out, folder)
        store.set_tags(source.run_id, {"ape_nas.explain.last": folder})
        return f"artifacts {folder}/ of trial run {source.run_id} ({source.tracking_uri})"
    uri, experiment_id = own_experiment(args)
    store = TrialStore(uri)
    tags = {"ape_nas.explain.source": source.where, "ape_nas.explain.data": str(record["data"]["data"])}
    run = store.new_run(experiment_id, f"explain-{source.spec.model}", ROLE, source.spec, tags)
    try:
        run.log_params(
            {
                "explain.source": source.where,
                "explain.data": record["data"]["data"],
                "explain.methods": ",".join(record["methods"]),
                "explain.windows": len(record["windows"]),
                "explain.target": record["target"],
            }
        )
        metrics = {}
        for method, prof in record["beat_synchronous"].items():
            metrics[f"{method}/phase_locking"] = prof["phase_locking"]
            metrics[f"{method}/between_beats"] = prof["between_beats"]
        for row in (record.get("faithfulness") or {}).get("rows", []):
            for key, iv in row.items():
                if isinstance(iv, dict) and "point" in iv:
                    metrics[f"{row['method']}/{key}"] = iv["point"]
        run.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
        store.log_artifacts(run.run_id, out, "explain")
        run.close("complete")
    except BaseException:
        store.delete_run(run.run_id)
        raise
    return f"run {run.run_id} of experiment {experiment_id} ({uri})"
