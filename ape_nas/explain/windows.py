"""The windows ``explain`` looks at, cut exactly as the model's preprocessing says, with their beats. No torch.

Recordings are read with the readers of ``predict`` (labels optional: a window without a label is explained for
the class the model predicts, like any other), checked against the model's channels and rates, and windowed with
:func:`ape_nas.handoff.predict.window_recording`. Beats are detected once per recording on its first ECG/PPG
channel (:func:`ape_nas.hrv.beats.detect_beats`; an events channel gives its beat times as they are) and placed
in each window's samples. When the data plant a known cue (the synthetic benchmark's ``cue`` option), each window
gets its ground-truth mask. Subjects the model trained or validated on are left out when the data are its
benchmark: an explanation of a window the model has fitted says little about how it judges new people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ape_nas.data.types import UNLABELLED, SubjectRecording
from ape_nas.errors import UserError
from ape_nas.handoff.bundle import Bundle
from ape_nas.handoff.predict import check_recording, hrv_input, label_lookup, load_recordings, window_recording
from ape_nas.hrv.beats import channel_kind, detect_beats

CUE_KEY = "cue_spans_s"


@dataclass
class Windows:
    """The chosen windows, in one array, with where each comes from."""

    X: np.ndarray  # (n, channels, time) float32, as the model sees them
    labels: np.ndarray  # (n,) model class index, or UNLABELLED
    subjects: list[str]  # (n,)
    index: np.ndarray  # (n,) the window's index among its subject's windows (as predict numbers them)
    starts_s: np.ndarray  # (n,) start, s after the recording's start
    beats: list[np.ndarray]  # per window: beat positions in samples (float, within [0, time))
    features: np.ndarray | None  # (n, F) HRV features for a fusing model
    cue: np.ndarray | None  # (n, time) bool: samples of a planted cue (synthetic ``cue``), else None
    rate_hz: float
    channels: list[str]  # the model's input channels, in the order of X's axis 1
    beat_channel: str | None
    data: str
    reader: str
    left_out: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def beat_signal(self) -> np.ndarray:
        """(n, time): the channel whose beats were detected (the first channel when there is none)."""
        at = self.channels.index(self.beat_channel) if self.beat_channel in self.channels else 0
        return self.X[:, at, :]


def parse_windows(text: str | None) -> dict[str, list[int]] | None:
    """``--windows S01:3,S01:7,S04:0`` → {subject: [window indices]}."""
    if not text:
        return None
    out: dict[str, list[int]] = {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        subject, sep, idx = item.rpartition(":")
        if not sep or not subject or not idx.isdigit():
            raise UserError(f"--windows {item!r}: expected SUBJECT:INDEX (e.g. S01:3), comma-separated")
        out.setdefault(subject, []).append(int(idx))
    return out


def beat_channel(bundle: Bundle, rec: SubjectRecording) -> str | None:
    """The model's first ECG/PPG channel (or an events channel of beats), whose beats the plots mark."""
    for ch in bundle.channels:
        if ch in rec.events or (ch in rec.signals and channel_kind(ch)):
            return ch
    return None


def recording_beats(rec: SubjectRecording, channel: str | None) -> np.ndarray:
    """Beat times in s after the recording's start (empty when there is no beat source)."""
    if channel is None:
        return np.empty(0)
    if channel in rec.events:
        return np.asarray(rec.events[channel], dtype=np.float64).reshape(-1, 2)[:, 0]
    kind = channel_kind(channel)
    assert kind is not None
    return detect_beats(rec.signals[channel], float(rec.rates[channel]), kind) + rec.offsets.get(channel, 0.0)


def cue_spans(rec: SubjectRecording, channel: str | None) -> np.ndarray | None:
    """The planted cue's (n, 2) spans in s after the recording's start, for ``channel`` (None: no cue planted)."""
    spans = rec.meta.get(CUE_KEY)
    if spans is None:
        return None
    if isinstance(spans, dict):
        spans = spans.get(channel) if channel in spans else next(iter(spans.values()), None)
        if spans is None:
            return None
    return np.asarray(spans, dtype=np.float64).reshape(-1, 2)


def _mask(spans: np.ndarray, start_s: float, rate: float, length: int) -> np.ndarray:
    mask = np.zeros(length, dtype=bool)
    t = start_s + np.arange(length) / rate
    for a, b in spans[(spans[:, 1] > start_s) & (spans[:, 0] < t[-1] + 1.0 / rate)]:
        mask |= (t >= a) & (t < b)
    return mask


def _choose(labels: np.ndarray, per_class: int) -> np.ndarray:
    """``per_class`` windows of each label, spread evenly over the recording (deterministic); unlabelled windows
    only when the recording has no labelled one."""
    chosen = []
    present = np.unique(labels)
    if (present >= 0).any():
        present = present[present >= 0]
    for lab in present:
        idx = np.flatnonzero(labels == lab)
        k = min(per_class, len(idx))
        chosen.append(idx[np.unique(np.linspace(0, len(idx) - 1, k).round().astype(int))])
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=int)


def load_windows(
    bundle: Bundle,
    data: str,
    params: dict[str, Any] | None = None,
    reader: str | None = None,
    *,
    subjects: list[str] | None = None,
    chosen: dict[str, list[int]] | None = None,
    per_class: int = 3,
    max_windows: int | None = None,
) -> Windows:
    """Read, check and window the recordings; choose ``per_class`` windows per subject and class (or exactly the
    ``chosen`` ones); place beats and any planted cue in them."""
    from ape_nas.transfer.target import source_subjects

    bench = load_recordings(data, params, reader)
    for rec in bench.subjects:  # every recording must fit the model before anything is cut
        check_recording(rec, bundle)
    available = [r.subject for r in bench.subjects]
    named = list(chosen or {}) + list(subjects or [])
    unknown = [s for s in dict.fromkeys(named) if s not in available]
    if unknown:
        raise UserError(f"no recording of {', '.join(unknown)} in {data} (subjects: {', '.join(available)})")
    benchmark, seen = source_subjects(bundle)
    same = benchmark is not None and benchmark == bench.name
    left_out = {}
    if not named:
        left_out = {s: "the model trained or validated on this subject" for s in available if same and s in seen}
    wanted = set(named) or (set(available) - set(left_out))
    lut = label_lookup(bench.class_names, bundle, strict=False)
    feature_input = hrv_input(bundle)
    rate = float(bundle.rate_hz)
    parts: dict[str, Any] = {k: [] for k in ("X", "labels", "subjects", "index", "starts", "beats", "feats", "cue")}
    any_cue = False
    channel = None
    for rec in bench.subjects:  # in natural order (load_recordings sorts them)
        if rec.subject not in wanted:
            continue
        lab = np.asarray(rec.labels, dtype=np.int64)
        mapped = np.full(lab.shape, UNLABELLED, dtype=np.int64)
        known = (lab >= 0) & (lab < len(lut))
        mapped[known] = lut[lab[known]]
        rec.labels = mapped
        sw = window_recording(rec, bundle)
        n = len(sw.starts_s)
        if chosen and rec.subject in chosen:
            bad = [i for i in chosen[rec.subject] if i >= n]
            if bad:
                raise UserError(f"--windows {rec.subject}:{bad[0]}: {rec.subject} has {n} windows (indices 0-{n - 1})")
            idx = np.asarray(sorted(set(chosen[rec.subject])), dtype=int)
        else:
            idx = _choose(np.asarray(sw.labels), per_class)
        if not len(idx):
            left_out[rec.subject] = "no window passed the preprocessing"
            continue
        channel = beat_channel(bundle, rec)
        beats_s = recording_beats(rec, channel)
        spans = cue_spans(rec, channel)
        length = int(sw.windows.shape[2])
        starts = np.asarray(sw.starts_s, dtype=float)[idx]
        parts["X"].append(np.asarray(sw.windows, dtype=np.float32)[idx])
        parts["labels"].append(np.asarray(sw.labels, dtype=np.int64)[idx])
        parts["subjects"] += [rec.subject] * len(idx)
        parts["index"].append(idx)
        parts["starts"].append(starts)
        for s in starts:
            inside = beats_s[(beats_s >= s) & (beats_s < s + length / rate)]
            parts["beats"].append((inside - s) * rate)
            if spans is not None:
                any_cue = True
            parts["cue"].append(_mask(spans, s, rate, length) if spans is not None else np.zeros(length, dtype=bool))
        if feature_input is not None:
            parts["feats"].append(np.asarray(feature_input(rec, np.asarray(sw.starts_s))[idx], dtype=np.float32))
    if not parts["X"]:
        raise UserError(f"{data}: no window to explain ({'; '.join(f'{s}: {r}' for s, r in left_out.items())})")
    X = np.concatenate(parts["X"])
    if max_windows is not None and len(X) > max_windows:
        keep = np.unique(np.linspace(0, len(X) - 1, max_windows).round().astype(int))
    else:
        keep = np.arange(len(X))
    return Windows(
        X=X[keep],
        labels=np.concatenate(parts["labels"])[keep],
        subjects=[parts["subjects"][i] for i in keep],
        index=np.concatenate(parts["index"])[keep],
        starts_s=np.concatenate(parts["starts"])[keep],
        beats=[parts["beats"][i] for i in keep],
        features=np.concatenate(parts["feats"])[keep] if parts["feats"] else None,
        cue=np.stack(parts["cue"])[keep] if any_cue else None,
        rate_hz=rate,
        channels=list(bundle.channels),
        beat_channel=channel,
        data=str(data),
        reader=bench.name,
        left_out=left_out,
    )
