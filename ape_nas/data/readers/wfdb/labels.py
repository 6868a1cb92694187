"""Labels of WFDB records: the class names, annotation files (``wfdb.rdann``) and segments → per-sample labels."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.data.readers.labels import Interval
from ape_nas.data.readers.wfdb.params import DRIVEDB_ROUTE
from ape_nas.data.readers.wfdb.records import Record
from ape_nas.data.types import UNLABELLED
from ape_nas.errors import UserError


def segments_to_labels(bounds_s: Sequence[float], codes: Sequence[int], n: int, rate: float) -> np.ndarray:
    """Per-sample labels: segment ``i`` runs from ``bounds_s[i-1]`` (0 for i = 0) to ``bounds_s[i]``."""
    cuts = np.clip(np.round(np.asarray(bounds_s, dtype=np.float64) * rate), 0, n).astype(np.int64)
    seg = np.searchsorted(cuts, np.arange(n), side="right")
    return np.asarray(codes, dtype=np.int64)[seg]


def class_names(
    labels: str, classes: list[str] | None, annotation_classes: Any, marker_classes: Any, table: list[Interval]
) -> list[str]:
    """``classes`` if given (each must occur in the labels), else the mapped names in order of first appearance."""
    if labels == "none":
        found: list[str] = []
    elif labels == "annotations":
        found = [v for v in annotation_classes.values() if v is not None]
    elif labels == "marker":
        if marker_classes == "drivedb":
            found = list(DRIVEDB_ROUTE)
        elif isinstance(marker_classes, Mapping):
            found = [c for lst in marker_classes.values() for c in lst if c is not None]
        else:
            found = [c for c in marker_classes if c is not None]
    else:
        found = [iv.label for iv in table]
    found = list(dict.fromkeys(found))
    if classes is None:
        return found
    unused = [c for c in classes if c not in found]
    if labels != "none" and unused:
        raise UserError(
            f"wfdb: classes {', '.join(map(repr, unused))} never occur in the {labels} labels; they give: "
            f"{', '.join(found) or 'nothing'}"
        )
    return list(classes)


def label_annotations(
    rec: Record, root: Path, annotator: str, mapping: Mapping[str, str | None], names: list[str], rate: float
) -> tuple[np.ndarray, str]:
    """Labels at ``rate`` from ``<record>.<annotator>``: each mapped annotation starts a segment of its class."""
    import wfdb

    base = root / rec.name
    file = base.with_name(f"{base.name}.{annotator}")
    if not file.is_file():
        raise UserError(f"{file}: annotation file not found; expected annotator {annotator!r} for record {rec.name}")
    try:
        ann = wfdb.rdann(str(base), annotator)
    except Exception as exc:
        raise UserError(f"{file}: not a readable WFDB annotation file ({exc})") from None
    scale = rec.fs / rec.header_fs  # an fs_override applies to the annotation times too
    times = np.asarray(ann.sample, dtype=np.float64) / (_time_resolution(ann, rec, file) * scale)
    if len(times) and times.max() > rec.duration_s + 1.0 / rec.fs:
        raise UserError(
            f"{file}: an annotation lies at {times.max():.1f} s, after the record's end at {rec.duration_s:.1f} s; "
            "the annotation file and header disagree on the sample rate or length"
        )
    bounds, codes = [], [UNLABELLED]
    aux = ann.aux_note or [""] * len(times)
    for t, sym, note in zip(times, ann.symbol, aux, strict=True):
        note = (note or "").replace("\x00", "").strip()
        key = note if note and note in mapping else sym if sym in mapping else None
        if key is None:
            continue
        bounds.append(t)
        codes.append(names.index(mapping[key]) if mapping[key] in names else UNLABELLED)
    return segments_to_labels(bounds, codes, round(rec.duration_s * rate), rate), str(file)


def _time_resolution(ann: Any, rec: Record, file: Path) -> float:
    """The annotation file's own time resolution (the frame rate or a channel rate of the header), else frames."""
    if ann.fs is None or float(ann.fs) <= 0:
        return rec.header_fs
    scale = rec.fs / rec.header_fs
    allowed = {rec.header_fs} | {r / scale for r in rec.rates.values()}
    if not any(math.isclose(float(ann.fs), a, rel_tol=1e-6) for a in allowed):
        header_rates = ", ".join(f"{r / scale:g}" for r in sorted(set(rec.rates.values())))
        raise UserError(
            f"{file}: time resolution {float(ann.fs):g} Hz, but the record's header gives frame rate "
            f"{rec.header_fs:g} Hz and channel rates {header_rates} Hz; the annotation file and header "
            "contradict each other"
        )
    return float(ann.fs)
