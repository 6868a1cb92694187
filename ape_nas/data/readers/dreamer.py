"""Benchmark ``dreamer``: DREAMER (Katsigiannis & Ramzan, IEEE JBHI 2018) from the user's own ``DREAMER.mat``.

Layout (MATLAB v5 file, read with ``scipy.io.loadmat(..., squeeze_me=False, struct_as_record=False)``): a struct
``DREAMER`` with ``Data`` (1×23, a cell array of structs or a struct array: both read the same), ``ECG_SamplingRate``
(256), ``noOfSubjects``, ``noOfVideoSequences`` (18), … Each subject has ``ECG.baseline`` and ``ECG.stimuli`` (18×1
cell arrays of (n, 2) arrays: two ECG leads), ``ScoreValence``, ``ScoreArousal``, ``ScoreDominance`` (18×1,
self-assessment 1-5), ``Age`` and ``Gender``. ``path`` is the file or the folder holding ``DREAMER.mat``.

Recording: per subject (ids ``S01`` … in ``Data`` order) one recording with the 18 film clips in order, separated by
:data:`CLIP_GAP_S` seconds of NaN signal and ``UNLABELLED`` labels, so no window of up to that length holds
samples of two clips (and longer ones hold NaN, which the quality check rejects). ``meta["clips"]`` gives each
clip's span (``start_s``, ``end_s``) and scores. Channels: ``ecg`` = lead 1 (column 1 of each clip array),
``ecg2`` = lead 2 (column 2), both at ``ECG_SamplingRate``; ``t0`` is ``None``.

Labels: ``class_names = ["low", "high"]``; a clip is ``high`` when its ``target`` score (valence, arousal or
dominance) is greater than ``threshold`` (default 3: scores 4-5 are high, 1-3 low), else ``low``.

``use_baseline: true`` also loads each clip's baseline recording (the neutral film shown before it) and puts it,
``UNLABELLED``, before its clip (with gaps on both sides; spans in ``meta["baselines"]``): it gives no labelled
windows, only context for per-subject baseline statistics.

Checks (one-line :class:`~ape_nas.errors.UserError`): the file exists and is a MATLAB v5 file; every field used
exists (the message names it, e.g. ``DREAMER.Data{3}.ECG.stimuli``); clip arrays are (n, 2) numbers; there is one
score per clip, each 1-5; the number of clips matches ``noOfVideoSequences``. A subject with no ECG samples is
skipped with a warning.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.data.readers import params
from ape_nas.data.types import UNLABELLED, BenchmarkData, SubjectRecording
from ape_nas.errors import UserError
from ape_nas.schema import Field, ParamKeys

NAME = "dreamer"
VERSION = 1  # bump whenever the data produced for the same file and parameters changes (used in cache keys)

PATH_PARAMS = ("path",)  # parameters naming raw data files or folders (content-hashed for caching)
TARGETS = {"valence": "ScoreValence", "arousal": "ScoreArousal", "dominance": "ScoreDominance"}
CHANNELS = {"ecg": 0, "ecg2": 1}  # lead -> column of each clip array
CLASS_NAMES = ["low", "high"]
CLIP_GAP_S = 60.0
SCORE_RANGE = (1.0, 5.0)


def _field(node: Any, name: str, where: str, file: Path) -> Any:
    """``node.name`` of a MATLAB struct (a 1×1 struct array is unwrapped), or a UserError naming the field."""
    node = _one(node)
    if not hasattr(node, "_fieldnames") or name not in node._fieldnames:
        have = ", ".join(getattr(node, "_fieldnames", []) or []) or "none"
        raise UserError(
            f"{file}: {where} has no field {name!r} (fields: {have}); expected the published DREAMER layout"
        )
    return getattr(node, name)


def _one(node: Any) -> Any:
    while isinstance(node, np.ndarray) and node.dtype == object and node.size == 1:
        node = node.ravel()[0]
    return node


def _items(node: Any) -> list[Any]:
    """A cell or struct array (any shape) → its elements in order; a lone struct or array → [it]."""
    if isinstance(node, np.ndarray) and node.dtype == object:
        return list(node.ravel(order="F"))
    return [node]


def _number(node: Any, where: str, file: Path) -> float:
    arr = np.asarray(_one(node))
    if arr.dtype.kind not in "biuf" or arr.size != 1 or not np.isfinite(arr.astype(float)).all():
        raise UserError(f"{file}: {where} is {arr!r}; expected one number")
    return float(arr.ravel()[0])


def _text(node: Any) -> Any:
    node = _one(node)
    if isinstance(node, np.ndarray):
        if node.dtype.kind in "US":
            return str(node.ravel()[0]) if node.size else ""
        if node.size == 1 and node.dtype.kind in "biuf":
            return float(node.ravel()[0])
        return None
    return node if isinstance(node, str | int | float) else None


def _clips(node: Any, where: str, file: Path) -> list[np.ndarray]:
    out = []
    for k, item in enumerate(_items(node)):
        arr = np.asarray(_one(item))
        if arr.dtype.kind not in "biuf" or arr.ndim != 2 or arr.shape[1] != 2:
            raise UserError(
                f"{file}: {where}{{{k + 1}}} is a {arr.dtype} array of shape {arr.shape}; expected (n, 2) numbers "
                "(two ECG leads)"
            )
        out.append(arr)
    return out


def _scores(node: Any, where: str, n: int, file: Path) -> np.ndarray:
    arr = np.asarray(_one(node))
    if arr.dtype.kind not in "biuf":
        raise UserError(f"{file}: {where} is a {arr.dtype} array; expected {n} scores 1-5")
    s = arr.astype(np.float64).ravel()
    if s.size != n:
        raise UserError(f"{file}: {where} has {s.size} scores for {n} clips; expected one score per clip")
    bad = ~np.isfinite(s) | (s < SCORE_RANGE[0]) | (s > SCORE_RANGE[1])
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise UserError(f"{file}: {where}({k + 1}) = {s[k]:g}; expected a self-assessment score 1-5")
    return s


def _read(file: Path) -> Any:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        mat = loadmat(str(file), squeeze_me=False, struct_as_record=False, variable_names=["DREAMER"])
    except NotImplementedError:
        raise UserError(
            f"{file}: a MATLAB v7.3 (HDF5) file, which this reader cannot open; expected the published MATLAB v5 "
            "DREAMER.mat (or re-save it in MATLAB with -v7)"
        ) from None
    except (MatReadError, ValueError, OSError, EOFError, TypeError, IndexError) as exc:
        raise UserError(f"{file}: truncated or not a MATLAB file ({exc}); download DREAMER.mat again") from None
    if "DREAMER" not in mat:
        raise UserError(f"{file}: no variable 'DREAMER'; expected the published DREAMER.mat")
    return mat["DREAMER"]


FIELDS = {
    "path": params.path("DREAMER.mat or the folder holding it"),
    "target": Field(str, "valence", choices=list(TARGETS)),
    "threshold": Field(float, 3.0, check=params.finite, doc="scores above it are 'high'"),
    "channels": Field(list, ["ecg"], check=params.names(list(CHANNELS))),
    "use_baseline": Field(bool, False),
    "require_labels": params.REQUIRE_LABELS,
}


def load(
    *,
    path: str | None = None,
    target: str = "valence",
    threshold: float = 3.0,
    channels: tuple[str, ...] | list[str] = ("ecg",),
    use_baseline: bool = False,
    require_labels: bool = True,
) -> BenchmarkData:
    """Load DREAMER's ECG from ``path``; see the module docstring for layout, labels and checks.

    ``require_labels=False`` (prediction, inspection): a subject without its ``target`` scores is read
    ``UNLABELLED`` instead of stopping the load.
    """
    given = {"path": path, "target": target, "threshold": threshold, "channels": channels, "use_baseline": use_baseline}
    channels = params.check({**given, "require_labels": require_labels}, FIELDS)["channels"]
    if not path:
        raise ParamKeys().error(("path",), f"required: {FIELDS['path'].doc}")
    file = Path(path) / "DREAMER.mat" if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise UserError(f"dreamer: {file} not found; expected DREAMER.mat or the folder holding it")
    root = _read(file)
    data = _field(root, "Data", "DREAMER", file)
    rate = _number(_field(root, "ECG_SamplingRate", "DREAMER", file), "DREAMER.ECG_SamplingRate", file)
    if rate <= 0:
        raise UserError(f"{file}: DREAMER.ECG_SamplingRate is {rate:g}; expected a positive rate in Hz (256)")
    n_videos = None
    if "noOfVideoSequences" in (getattr(_one(root), "_fieldnames", None) or []):
        count = _field(root, "noOfVideoSequences", "DREAMER", file)
        n_videos = round(_number(count, "DREAMER.noOfVideoSequences", file))
    subjects, skipped = [], {}
    people = _items(data)
    for i, person in enumerate(people):
        sid = f"S{i + 1:02d}"
        where = f"DREAMER.Data{{{i + 1}}}"
        ecg = _field(person, "ECG", where, file)
        stimuli = _clips(_field(ecg, "stimuli", f"{where}.ECG", file), f"{where}.ECG.stimuli", file)
        if n_videos is not None and len(stimuli) != n_videos:
            raise UserError(
                f"{file}: {where}.ECG.stimuli has {len(stimuli)} clips but DREAMER.noOfVideoSequences is {n_videos}"
            )
        baselines = None
        if use_baseline:
            baselines = _clips(_field(ecg, "baseline", f"{where}.ECG", file), f"{where}.ECG.baseline", file)
            if len(baselines) != len(stimuli):
                raise UserError(
                    f"{file}: {where}.ECG.baseline has {len(baselines)} recordings for {len(stimuli)} clips; expected "
                    "one per clip"
                )
        field = TARGETS[target]
        scores = None
        if require_labels or field in (getattr(_one(person), "_fieldnames", None) or []):
            scores = _scores(_field(person, field, where, file), f"{where}.{field}", len(stimuli), file)
        all_scores = {
            t: _scores(getattr(_one(person), f), f"{where}.{f}", len(stimuli), file)
            for t, f in TARGETS.items()
            if f in (getattr(_one(person), "_fieldnames", None) or [])
        }
        if sum(len(c) for c in stimuli) == 0:
            _skip(skipped, sid, f"{where}.ECG.stimuli holds no samples")
            continue
        subjects.append(_subject(sid, person, stimuli, baselines, scores, all_scores, threshold, channels, rate))
    if not people:
        raise UserError(f"{file}: DREAMER.Data is empty; expected one entry per subject")
    if not subjects:
        raise UserError(f"dreamer: no usable subject in {file}: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    labelled = any(s.is_labelled() for s in subjects)
    return BenchmarkData(
        name=NAME,
        subjects=subjects,
        class_names=list(CLASS_NAMES),
        params={**given, "path": str(path), "channels": channels},
        sources=[str(file)],
        skipped=skipped,
        no_labels="" if labelled else f"dreamer: {file} has no {TARGETS[target]} scores",
    )


def _subject(
    sid: str,
    person: Any,
    stimuli: list[np.ndarray],
    baselines: list[np.ndarray] | None,
    scores: np.ndarray | None,
    all_scores: dict[str, np.ndarray],
    threshold: float,
    channels: list[str],
    rate: float,
) -> SubjectRecording:
    gap = round(CLIP_GAP_S * rate)
    pieces: list[tuple[np.ndarray, int, str, int]] = []  # (samples, label, kind, clip index)
    for k, clip in enumerate(stimuli):
        if baselines is not None:
            pieces.append((baselines[k], UNLABELLED, "baseline", k))
        label = UNLABELLED if scores is None else CLASS_NAMES.index("high") if scores[k] > threshold else 0
        pieces.append((clip, label, "clip", k))
    total = sum(len(p[0]) for p in pieces) + gap * (len(pieces) - 1)
    signals = {ch: np.full(total, np.nan, dtype=np.float32) for ch in channels}
    labels = np.full(total, UNLABELLED, dtype=np.int64)
    clips, bases, at = [], [], 0
    for samples, label, kind, k in pieces:
        n = len(samples)
        for ch in channels:
            signals[ch][at : at + n] = samples[:, CHANNELS[ch]]
        labels[at : at + n] = label
        span = {"clip": k + 1, "start_s": at / rate, "end_s": (at + n) / rate}
        if kind == "clip":
            span.update({t: float(s[k]) for t, s in all_scores.items()})
            span["label"] = CLASS_NAMES[label] if label != UNLABELLED else None
            clips.append(span)
        else:
            bases.append(span)
        at += n + gap
    p = _one(person)
    meta: dict[str, Any] = {
        "clips": clips,
        "age": _text(getattr(p, "Age", None)),
        "gender": _text(getattr(p, "Gender", None)),
        "clip_gap_s": CLIP_GAP_S,
    }
    if baselines is not None:
        meta["baselines"] = bases
    return SubjectRecording(
        subject=sid,
        signals=signals,
        rates=dict.fromkeys(channels, rate),
        labels=labels,
        label_rate=rate,
        meta=meta,
    )


def _skip(skipped: dict[str, str], sid: str, reason: str) -> None:
    skipped[sid] = reason
    warnings.warn(f"dreamer: skipping subject {sid}: {reason}", stacklevel=3)
