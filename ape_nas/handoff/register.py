"""The bundle in MLflow: logged under ``bundle/`` of its trial run and registered as a new version of the model
``ape-nas-<study>`` (through :class:`ape_nas.tracking.TrialStore`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ape_nas.errors import UserError
from ape_nas.handoff import bundle as B
from ape_nas.tracking import TrialStore

ARTIFACT_PATH = "bundle"
REGISTERED_TAG = "ape_nas.registered_model"  # on the trial run: "<model name>/<version>"


def version_tags(folder: Path, info: dict[str, Any]) -> dict[str, str]:
    return {
        "ape_nas.bundle_format": B.BUNDLE_FORMAT,
        "ape_nas.spec_digest": info["spec_digest"],
        "ape_nas.model": info["model"]["family"],
        "sha256.model.onnx": B.read_checksums(folder)[B.MODEL_ONNX],
        "onnx_parity_max_abs": f"{info['checks']['onnx_parity_max_abs']:.3g}",
    }


def register_bundle(store: TrialStore, run_id: str, folder: Path, name: str, info: dict[str, Any]) -> tuple[str, str]:
    """Log the bundle under ``bundle/`` of the trial run, then register it as a new model version."""
    try:
        store.log_artifacts(run_id, folder, ARTIFACT_PATH)
        version = store.register_version(
            name,
            run_id,
            ARTIFACT_PATH,
            tags=version_tags(folder, info),
            description=info["title"],
            model_description=f"ape-nas hand-off bundles ({info['source']['study']}); see model_card.md",
        )
        store.set_tags(run_id, {REGISTERED_TAG: f"{name}/{version}"})
    except store.error_type() as exc:
        raise UserError(
            f"bundle written to {folder}, but logging/registering it in MLflow failed: {exc}; "
            "re-run with --no-register to skip the registry"
        ) from None
    return name, version
