"""The hand-off bundle: a folder a product can run without our training code. No torch.

Layout (every file is listed with its SHA-256 in ``SHA256SUMS``, the ``sha256sum -c`` format)::

    bundle/
      model.onnx          the network with a softmax: input "x" (batch, channels, time) float32 [and, for a model
                          that fuses HRV features, "hrv_features" (batch, F) float32] → "probabilities"
      model.ts            the same network as TorchScript (torch.jit.trace), for PyTorch stacks
      preprocessing.json  the exact preprocessing: channels, rate, band-pass, normalisation, windows, quality,
                          class names, input and output names and shapes
      metrics.json        validation and test metrics per subject, confusion matrix, HRV baseline, export checks
      model_card.md       what the model is, what it was trained and tested on, what it can and cannot do
      bundle.json         format version, creation time, source MLflow run and tracking URI, spec digest, checks
      SHA256SUMS          checksums of all the files above

There are no pickles: no ``model.pt`` (``torch.save`` pickles), no ``.pkl``. :func:`verify_bundle` checks every
file against ``SHA256SUMS`` before anything is loaded; a missing or altered file is a one-line UserError.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ape_nas.errors import UserError

BUNDLE_FORMAT = "ape-nas-bundle/1"
PREPROCESSING_FORMAT = "ape-nas-preprocessing/1"

MODEL_ONNX = "model.onnx"
MODEL_TS = "model.ts"
PREPROCESSING = "preprocessing.json"
METRICS = "metrics.json"
CARD = "model_card.md"
INFO = "bundle.json"
SUMS = "SHA256SUMS"

#: the ONNX graph's input (windows, float32 (batch, channels, time)) and output (class probabilities)
INPUT_NAME = "x"
OUTPUT_NAME = "probabilities"
#: the second input of a model that fuses the windows' HRV features: float32 (batch, F), NaN allowed
#: (``preprocessing.json`` → ``hrv_features`` says how to compute it)
FEATURES_NAME = "hrv_features"

#: files every bundle has (besides SHA256SUMS), in the order they are listed
FILES = (MODEL_ONNX, MODEL_TS, PREPROCESSING, METRICS, CARD, INFO)
#: suffixes of pickle-based files that never go into a bundle
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_checksums(folder: Path) -> dict[str, str]:
    """Write ``SHA256SUMS`` for every file of ``folder`` (flat; sub-folders are not allowed); returns name → hash."""
    folder = Path(folder)
    names = sorted(p.name for p in folder.iterdir() if p.name != SUMS)
    for name in names:
        p = folder / name
        if not p.is_file():
            raise ValueError(f"bundle {folder}: {name} is not a plain file (bundles are flat folders of files)")
        if p.suffix.lower() in PICKLE_SUFFIXES:
            raise ValueError(f"bundle {folder}: {name} is a pickle-based file; bundles hold no pickles")
    sums = {name: sha256_file(folder / name) for name in names}
    (folder / SUMS).write_text("".join(f"{digest}  {name}\n" for name, digest in sums.items()))
    return sums


def read_checksums(folder: Path) -> dict[str, str]:
    path = Path(folder) / SUMS
    if not path.is_file():
        raise UserError(f"{path}: missing file: {SUMS} (not an ape-nas bundle, or bundle incomplete)")
    sums: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        name = name.strip().lstrip("*")
        if not sep or len(digest) != 64 or not name or "/" in name or "\\" in name or name in (".", ".."):
            raise UserError(f"{path}:{lineno}: not a checksum line (expected '<sha256>  <file name>'): {line[:80]!r}")
        sums[name] = digest.lower()
    return sums


@dataclass
class Bundle:
    """A verified bundle: its folder, ``bundle.json`` and ``preprocessing.json``."""

    path: Path
    info: dict[str, Any]
    preprocessing: dict[str, Any]

    @property
    def class_names(self) -> list[str]:
        return list(self.preprocessing["class_names"])

    @property
    def channels(self) -> list[str]:
        return list(self.preprocessing["channels"])

    @property
    def rate_hz(self) -> float:
        return float(self.preprocessing["rate_hz"])

    def window_config(self) -> dict[str, Any]:
        """The ``data`` config :func:`ape_nas.data.windows.window_subject` takes, rebuilt from preprocessing.json.

        ``rate_hz`` is always the model's rate (also when training used the channels' native rate), so
        recordings at another rate are resampled to it.
        """
        p = self.preprocessing
        return {
            "channels": list(p["channels"]),
            "rate_hz": float(p["rate_hz"]),
            "bandpass_hz": p["bandpass_hz"],
            "normalize": p["normalize"],
            "window_s": float(p["window_s"]),
            "stride_s": float(p["stride_s"]),
            "label_purity": float(p["label_purity"]),
            "quality": dict(p["quality"]),
        }

    @property
    def onnx_path(self) -> Path:
        return self.path / self.info.get("files", {}).get("onnx", MODEL_ONNX)

    @property
    def input_name(self) -> str:
        return str(self.preprocessing["input"]["name"])

    @property
    def output_name(self) -> str:
        return str(self.preprocessing["output"]["name"])

    @property
    def hrv_features(self) -> dict[str, Any] | None:
        """The HRV feature input (``preprocessing.json`` → ``hrv_features``: name, feature names, mode, beat
        source, window length), or None for a model that takes windows only."""
        return self.preprocessing.get("hrv_features") or None


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def verify_bundle(folder: str | Path) -> Bundle:
    """Check every file of a bundle against ``SHA256SUMS``, then load its JSON files.

    Raises a one-line UserError naming the file when a file is missing, altered, or not listed.
    """
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder (expected a bundle folder written by `ape-nas export`)")
    sums = read_checksums(root)
    for name in FILES:
        if name not in sums:
            raise UserError(f"{root / SUMS}: does not list {name} (bundle altered or incomplete)")
    for name, digest in sums.items():
        p = root / name
        if not p.is_file():
            raise UserError(f"missing file: {name} in {root} (bundle incomplete or altered)")
        if sha256_file(p) != digest:
            raise UserError(f"checksum mismatch: {name} (bundle altered or corrupted) in {root}")
    info = _load_json(root / INFO)
    if info.get("format") != BUNDLE_FORMAT:
        raise UserError(f"{root / INFO}: format {info.get('format')!r}; this version reads {BUNDLE_FORMAT}")
    prep = _load_json(root / PREPROCESSING)
    if prep.get("format") != PREPROCESSING_FORMAT:
        raise UserError(
            f"{root / PREPROCESSING}: format {prep.get('format')!r}; this version reads {PREPROCESSING_FORMAT}"
        )
    return Bundle(path=root, info=info, preprocessing=prep)


def pickle_files(folder: str | Path) -> list[str]:
    """Names of pickle-based files (by suffix) anywhere under ``folder``: must be empty for a bundle."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES)


def refuse_used_folder(out: Path) -> None:
    """Bundles are never merged: ``out`` must not exist, or be an empty folder."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(
            f"{out}: exists and is not an empty folder; choose a new --out folder (bundles are never merged)"
        )


def write_bundle(stage: Path, out: Path, records: dict[str, dict[str, Any]], card: str) -> None:
    """Write the JSON ``records`` (file name → content) and the card into ``stage`` (which already holds the
    models), checksum and verify it, then move it to ``out`` in one rename: a bundle is never half-written."""
    for name, record in records.items():
        (stage / name).write_text(json.dumps(record, indent=2, default=float if name == METRICS else str) + "\n")
    (stage / CARD).write_text(card)
    write_checksums(stage)
    verify_bundle(stage)
    if pickle_files(stage):
        raise AssertionError(f"pickle files in the bundle: {pickle_files(stage)}")
    if out.exists():
        out.rmdir()
    shutil.move(str(stage), str(out))
