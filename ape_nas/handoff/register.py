"""The bundle in MLflow: logged under ``bundle/`` of its trial run (or of its refit run; an ensemble under its own
folder, see :func:`ape_nas.handoff.export.log_target`) and registered as a new version of the model
``ape-nas-<study>`` (through :class:`ape_nas.tracking.TrialStore`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ape_nas.errors import UserError
from ape_nas.handoff import bundle as B
from ape_nas.tracking import TrialStore

ARTIFACT_PATH = "bundle"
REGISTERED_TAG = "ape_nas.registered_model"  # on the trial run: "<model name>/<version>"


def registered_tag(artifact_path: str) -> str:
    """The run tag naming the registered version of the bundle under ``artifact_path`` (``bundle``: the plain
    :data:`REGISTERED_TAG`; another folder gets its own tag, so an ensemble never overwrites the trial's)."""
    return REGISTERED_TAG if artifact_path == ARTIFACT_PATH else f"{REGISTERED_TAG}.{artifact_path}"


def version_tags(folder: Path, info: dict[str, Any]) -> dict[str, str]:
    return {
        "ape_nas.bundle_format": B.BUNDLE_FORMAT,
        "ape_nas.spec_digest": info["spec_digest"],
        "ape_nas.model": info["model"]["family"],
        "ape_nas.bundle_kind": info["source"].get("kind", "trial"),
        "sha256.model.onnx": B.read_checksums(folder)[B.MODEL_ONNX],
        "onnx_parity_max_abs": f"{info['checks']['onnx_parity_max_abs']:.3g}",
    }


def register_bundle(
    store: TrialStore, run_id: str, folder: Path, name: str, info: dict[str, Any], artifact_path: str = ARTIFACT_PATH
) -> tuple[str, str]:
    """Log the bundle under ``artifact_path`` of the run ``run_id``, then register it as a new model version."""
    try:
        store.log_artifacts(run_id, folder, artifact_path)
        version = store.register_version(
            name,
            run_id,
            artifact_path,
            tags=version_tags(folder, info),
            description=info["title"],
            model_description=f"ape-nas hand-off bundles ({info['source']['study']}); see model_card.md",
        )
        store.set_tags(run_id, {registered_tag(artifact_path): f"{name}/{version}"})
    except store.error_type() as exc:
        raise UserError(
            f"bundle written to {folder}, but logging/registering it in MLflow failed: {exc}; "
            "re-run with --no-register to skip the registry"
        ) from None
    return name, version
