"""The target people's labelled windows, cut exactly as the source model's preprocessing says. No torch.

Recordings are read with the readers of ``predict`` (any supported layout, or a built-in benchmark by name), every
recording is checked against the source's channels and rates before anything is cut (a mismatch is one line,
exit 2), and each subject's labelled windows are cut with :func:`ape_nas.handoff.predict.window_recording`, so
the adapted model sees what the source saw. The target's classes are its own (every method trains a new head);
a target with fewer than two classes is refused. Subjects the source trained or validated on are left out when
the target is the source's benchmark: adapting to them would not be transfer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.data.ids import natural_sorted
from ape_nas.errors import UserError
from ape_nas.handoff.bundle import Bundle
from ape_nas.handoff.predict import check_recording, hrv_input, load_recordings, window_recording


@dataclass
class SubjectWindows:
    subject: str
    X: np.ndarray  # (n, channels, time) float32
    y: np.ndarray  # (n,) target class index
    starts_s: np.ndarray  # (n,) window start, s after the recording's start
    features: np.ndarray | None  # (n, F) raw HRV features for a fusing source model, else None


@dataclass
class TargetData:
    data: str
    reader: str
    class_names: list[str]
    subjects: dict[str, SubjectWindows]
    left_out: dict[str, str] = field(default_factory=dict)  # subject → why it is not a target

    def counts(self) -> dict[str, list[int]]:
        k = len(self.class_names)
        return {s: np.bincount(w.y, minlength=k).tolist() for s, w in self.subjects.items()}


def source_subjects(bundle: Bundle) -> tuple[str | None, set[str]]:
    """The benchmark the source was trained on and every subject it trained or validated on."""
    data = bundle.preprocessing.get("source_data") or {}
    split = bundle.info.get("split") or {}
    seen = {s for part in ("train", "val") for s in split.get(part, [])}
    return data.get("benchmark"), seen


def load_target(
    bundle: Bundle,
    data: str | Path,
    params: dict[str, Any] | None = None,
    reader: str | None = None,
    subjects: list[str] | None = None,
) -> TargetData:
    """Read, check and window the target recordings (labelled windows only)."""
    bench = load_recordings(data, params, reader)
    for rec in bench.subjects:  # every recording must fit the source before anything is cut
        check_recording(rec, bundle)
    benchmark, seen = source_subjects(bundle)
    same = benchmark is not None and benchmark == bench.name
    available = [r.subject for r in bench.subjects]
    if subjects:
        unknown = [s for s in subjects if s not in available]
        if unknown:
            raise UserError(
                f"--subjects: no recording of {', '.join(unknown)} in {data} (subjects: {', '.join(available)})"
            )
        trained = [s for s in subjects if same and s in seen]
        if trained:
            raise UserError(
                f"--subjects: the source model was trained or validated on {', '.join(trained)} of {bench.name}; "
                "transfer targets must be people it has not seen"
            )
    left_out = {s: "the source trained or validated on this subject" for s in available if same and s in seen}
    wanted = [r for r in bench.subjects if r.subject not in left_out and (not subjects or r.subject in subjects)]
    feature_input = hrv_input(bundle)
    cut: dict[str, tuple[Any, np.ndarray | None]] = {}
    for rec in wanted:
        sw = window_recording(rec, bundle, labelled_only=True)  # labelled windows only: every label >= 0
        if not len(sw.labels):
            left_out[rec.subject] = "no labelled window passed the preprocessing"
            continue
        feats = feature_input(rec, sw.starts_s) if feature_input is not None else None
        cut[rec.subject] = (sw, feats)
    present = sorted({int(c) for sw, _ in cut.values() for c in np.unique(sw.labels)})
    if len(present) < 2:
        names = [bench.class_names[c] for c in present] or ["none"]
        raise UserError(
            f"{data}: the target's labelled windows hold one class only ({', '.join(names)}); adaptation and its "
            "test need at least two classes"
        )
    lut = np.full(max(present) + 1, -1, dtype=np.int64)
    lut[present] = np.arange(len(present))
    out = {}
    for subject in natural_sorted(cut):
        sw, feats = cut[subject]
        out[subject] = SubjectWindows(
            subject,
            np.ascontiguousarray(sw.windows, dtype=np.float32),
            lut[sw.labels],
            np.asarray(sw.starts_s, dtype=float),
            None if feats is None else np.asarray(feats, dtype=np.float32),
        )
    if not out:
        raise UserError(f"{data}: no target subject left ({'; '.join(f'{s}: {r}' for s, r in left_out.items())})")
    return TargetData(str(data), bench.name, [bench.class_names[c] for c in present], out, left_out)


def report_left_out(console: Any, left_out: dict[str, str], reader: str) -> None:
    """One line per reason: the subjects left out of ``reader``'s data and why."""
    reasons: dict[str, list[str]] = {}
    for subject, why in left_out.items():
        reasons.setdefault(why, []).append(subject)
    for why, subjects in reasons.items():
        console.print(f"left out {len(subjects)} subject(s) of {reader} ({why}): {', '.join(subjects)}")
