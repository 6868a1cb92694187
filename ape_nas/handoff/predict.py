"""Prediction and evaluation from a bundle: recordings → the bundled preprocessing → onnxruntime. No torch.

``ape-nas predict BUNDLE --data PATH``: verify the bundle's checksums, read the recordings with the reader their
layout calls for (:func:`ape_nas.data.inspect.detect_format`; ``PATH`` may also name a built-in benchmark such as
``synthetic``), labels optional (prediction never needs them), cut them into windows exactly as in training
(:func:`ape_nas.data.windows.window_subject` with the configuration rebuilt from ``preprocessing.json``, keeping
unlabelled windows), run ``model.onnx`` and write one row per window.

``ape-nas evaluate`` (:mod:`ape_nas.handoff.evaluate`) scores the same run on labelled recordings.

This module and everything it imports stays free of torch and lightning (a product runs it with numpy, scipy
and onnxruntime only); a test checks ``sys.modules`` after a prediction.
"""

from __future__ import annotations

import csv
import datetime as dt
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.console import make_console
from ape_nas.data.ids import natural_key
from ape_nas.data.types import UNLABELLED, BenchmarkData, SubjectRecording
from ape_nas.errors import UserError
from ape_nas.handoff.bundle import Bundle, verify_bundle
from ape_nas.handoff.onnx_session import OnnxModel
from ape_nas.yamlio import parse_assignments

# ---------------------------------------------------------------------------------------------------------------
# reading recordings
# ---------------------------------------------------------------------------------------------------------------


def load_recordings(path: str | Path, params: dict[str, Any] | None = None, reader: str | None = None) -> BenchmarkData:
    """Recordings of a data folder or file in any supported format (reader detected from the layout), or of a
    built-in benchmark by name (``synthetic``), read with labels optional
    (:func:`ape_nas.data.inspect.open_data`): prediction never needs labels; unlabelled subjects are
    ``UNLABELLED`` and ``BenchmarkData.no_labels`` says why."""
    from ape_nas.data.inspect import open_data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped subjects are reported from bench.skipped
        bench = open_data(path, params, reader, require_labels=False)
    if not bench.subjects:
        raise UserError(f"{path}: no recordings found ({'; '.join(f'{s}: {r}' for s, r in bench.skipped.items())})")
    bench.subjects.sort(key=lambda r: natural_key(r.subject))
    return bench


def check_recording(rec: SubjectRecording, bundle: Bundle) -> None:
    """Channels and sample rates must fit the bundle: missing channels and too low rates are UserErrors."""
    from ape_nas.data.windows import has_channel  # derived channels (bvp_ibi) count as present

    missing = [c for c in bundle.channels if not has_channel(rec, c)]
    if missing:
        raise UserError(
            f"subject {rec.subject}: the recording has no channel(s) {', '.join(missing)}; the model needs "
            f"{', '.join(bundle.channels)}; available: {', '.join(rec.channel_names()) or 'none'}"
        )
    needs = bundle.preprocessing.get("min_rate_hz") or {}
    for ch in bundle.channels:
        if ch in rec.signals and ch in needs and float(rec.rates[ch]) < float(needs[ch]["hz"]):
            raise UserError(
                f"subject {rec.subject}: channel {ch} is sampled at {float(rec.rates[ch]):g} Hz; the model needs at "
                f"least {float(needs[ch]['hz']):g} Hz ({needs[ch]['why']}); a lower rate cannot be resampled up "
                "without the frequencies the model uses"
            )


def label_lookup(data_classes: list[str], bundle: Bundle, strict: bool) -> np.ndarray:
    """Data label index → model class index (``UNLABELLED`` for classes the model lacks, or an error if strict)."""
    lut = np.full(len(data_classes), UNLABELLED, dtype=np.int64)
    for i, name in enumerate(data_classes):
        if name in bundle.class_names:
            lut[i] = bundle.class_names.index(name)
        elif strict:
            raise UserError(
                f"the data's class {name!r} is not a class of the model; the model knows "
                f"{', '.join(bundle.class_names)} (rename the labels, or leave that class out)"
            )
    return lut


# ---------------------------------------------------------------------------------------------------------------
# running the model
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class SubjectPrediction:
    subject: str
    t0: float | None
    starts_s: np.ndarray  # (n,) window starts, s after the recording's start
    probs: np.ndarray  # (n, classes)
    labels: np.ndarray  # (n,) model class index, or UNLABELLED
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1) if len(self.probs) else np.zeros(0, dtype=np.int64)


@dataclass
class PredictionRun:
    bundle: Bundle
    data: str
    reader: str
    subjects: list[SubjectPrediction]
    skipped: dict[str, str]

    @property
    def n_windows(self) -> int:
        return sum(len(s.starts_s) for s in self.subjects)


def window_recording(rec: SubjectRecording, bundle: Bundle, labelled_only: bool = False) -> Any:
    """The bundled preprocessing of one recording: ``SubjectWindows`` (windows, labels, starts, dropped)."""
    from ape_nas.data.windows import window_subject

    check_recording(rec, bundle)
    sw, fs = window_subject(rec, bundle.window_config(), require_labels=labelled_only)
    expected = int(bundle.preprocessing["window_samples"])
    if abs(fs - bundle.rate_hz) > 1e-9 or (len(sw.windows) and sw.windows.shape[2] != expected):
        raise UserError(
            f"subject {rec.subject}: windows of {sw.windows.shape[2]} samples; the model expects {expected}"
        )
    return sw


def hrv_input(bundle: Bundle) -> Any:
    """For a bundle whose model also takes the windows' HRV features: ``f(recording, starts_s) -> (n, F)``, the
    features as training computed them (:func:`ape_nas.features.recording_features`, then
    :func:`ape_nas.features.network_input` over the recording's windows); None for a windows-only model."""
    from ape_nas.features import network_input, recording_features
    from ape_nas.hrv import FEATURE_NAMES

    spec = bundle.hrv_features
    if spec is None:
        return None
    if list(spec["names"]) != list(FEATURE_NAMES):
        raise UserError(
            f"{bundle.path}: the model takes the HRV features {', '.join(spec['names'])}; this version of ape-nas "
            f"computes {', '.join(FEATURE_NAMES)} (use the ape-nas version the bundle was exported with)"
        )

    def features(rec: SubjectRecording, starts_s: np.ndarray) -> np.ndarray:
        raw = recording_features(rec, starts_s, float(spec["window_s"]), spec.get("hrv_source"))
        return network_input(raw, None, str(spec["mode"]))

    return features


def run_prediction(
    bundle_dir: str | Path,
    data: str | Path,
    params: dict[str, Any] | None = None,
    reader: str | None = None,
    *,
    labelled_only: bool = False,
    need_labels: bool = False,
) -> PredictionRun:
    """Verify the bundle, read and window the recordings, run ``model.onnx``: probabilities per window."""
    bundle = verify_bundle(bundle_dir)
    bench = load_recordings(data, params, reader)
    if need_labels and not bench.is_labelled():
        raise UserError(
            f"evaluate needs labels: no labelled window in {data}: {bench.no_labels or 'the data holds no labels'}; "
            "`ape-nas predict` runs without labels"
        )
    for rec in bench.subjects:  # every recording must fit before anything runs
        check_recording(rec, bundle)
    lut = label_lookup(bench.class_names, bundle, strict=need_labels)
    model = OnnxModel(bundle.onnx_path, bundle.input_name, bundle.output_name)
    feature_input = hrv_input(bundle)
    out = []
    for rec in bench.subjects:
        lab = np.asarray(rec.labels, dtype=np.int64)
        mapped = np.full(lab.shape, UNLABELLED, dtype=np.int64)
        known = (lab >= 0) & (lab < len(lut))
        mapped[known] = lut[lab[known]]
        rec.labels = mapped
        sw = window_recording(rec, bundle, labelled_only)
        features = feature_input(rec, sw.starts_s) if feature_input is not None else None
        probs = (
            model(sw.windows, features) if len(sw.windows) else np.zeros((0, len(bundle.class_names)), dtype=np.float32)
        )
        out.append(SubjectPrediction(rec.subject, rec.t0, sw.starts_s, probs, sw.labels, dict(sw.dropped)))
    if not any(len(s.starts_s) for s in out):
        dropped = {s.subject: {k: v for k, v in s.dropped.items() if v} for s in out}
        raise UserError(
            f"{data}: no window passed the preprocessing in any recording (recordings shorter than "
            f"{bundle.preprocessing['window_s']:g} s, or windows rejected: {dropped})"
        )
    return PredictionRun(bundle, str(data), bench.name, out, dict(bench.skipped))


def iso_utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_predictions(run: PredictionRun, path: str | Path) -> Path:
    """One row per window: subject, start_s, start_utc (when the recording's start time is known), p_<class>…,
    predicted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = run.bundle.class_names
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject", "start_s", "start_utc", *(f"p_{c}" for c in names), "predicted"])
        for s in run.subjects:
            for start, p, k in zip(s.starts_s, s.probs, s.predicted, strict=True):
                utc = iso_utc(s.t0 + float(start)) if s.t0 is not None else ""
                w.writerow([s.subject, f"{start:.3f}", utc, *(f"{v:.8f}" for v in p), names[int(k)]])
    return path


def summary(run: PredictionRun) -> list[dict[str, Any]]:
    """Per subject: windows, share of windows per predicted class, mean probability per class."""
    names = run.bundle.class_names
    rows = []
    for s in run.subjects:
        n = len(s.starts_s)
        counts = np.bincount(s.predicted, minlength=len(names)) if n else np.zeros(len(names))
        rows.append(
            {
                "subject": s.subject,
                "windows": n,
                "share": {c: float(counts[k] / n) if n else 0.0 for k, c in enumerate(names)},
                "mean_prob": {c: float(s.probs[:, k].mean()) if n else float("nan") for k, c in enumerate(names)},
                "dropped": {k: v for k, v in s.dropped.items() if v},
            }
        )
    return rows


def print_summary(run: PredictionRun, console: Any = None) -> None:
    from rich.table import Table

    console = console or make_console()
    names = run.bundle.class_names
    table = Table(title=f"predictions of {run.bundle.info.get('title', 'the bundled model')} on {run.data}")
    for col in ("subject", "windows", *(f"{c} %" for c in names), *(f"mean p({c})" for c in names), "dropped"):
        table.add_column(col, justify="left" if col in ("subject", "dropped") else "right")
    for row in summary(run):
        table.add_row(
            row["subject"],
            str(row["windows"]),
            *(f"{100 * row['share'][c]:.1f}" for c in names),
            *(f"{row['mean_prob'][c]:.3f}" if row["windows"] else "—" for c in names),
            ", ".join(f"{k} {v}" for k, v in row["dropped"].items()) or "—",
        )
    console.print(table)
    for subject in sorted(run.skipped, key=natural_key):
        console.print(f"[yellow]skipped {subject}: {run.skipped[subject]}[/yellow]")


# ---------------------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------------------


def cli_predict(args: Any) -> int:
    """``ape-nas predict BUNDLE --data PATH [--out predictions.csv] [--benchmark NAME] [--set name=value]``."""
    run = run_prediction(
        args.bundle, args.data, parse_assignments(getattr(args, "overrides", None)), getattr(args, "benchmark", None)
    )
    path = write_predictions(run, getattr(args, "out", None) or "predictions.csv")
    console = make_console()
    print_summary(run, console)
    console.print(f"{run.n_windows} windows of {len(run.subjects)} recordings → {path}")
    return 0
