"""`ape-nas data inspect`: what a data set holds and what is wrong with it, before anyone trains on it.

Works on any loaded :class:`BenchmarkData`: subjects, duration, channels and rates, label balance per subject,
beat-interval gaps, and raw-signal quality problems (NaN runs, flat lines, clipping plateaus), plus the
subjects a reader skipped and why. A path is mapped to a reader by its layout (:func:`detect_format`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.data.types import UNLABELLED, BenchmarkData, SubjectRecording
from ape_nas.data.windows import MAX_BEAT_GAP_S
from ape_nas.errors import UserError

FLAT_S = 2.0


def detect_format(path: Path) -> str:
    """The benchmark/reader name for a data folder or file, from its layout."""
    if not path.exists():
        raise UserError(f"{path}: no such file or folder (expected a data folder or a benchmark name)")
    if path.is_file():
        if path.name.lower() == "dreamer.mat":
            return "dreamer"
        if path.suffix == ".hea":
            return "wfdb"
        raise UserError(f"{path}: unknown data file; expected DREAMER.mat, a WFDB .hea, or a folder")
    if (path / "dataset.yaml").is_file():
        return "folder"
    if (path / "Raw_data").is_dir() and (path / "Processed_data").is_dir():
        return "stress-predict"
    if (path / "DREAMER.mat").is_file():
        return "dreamer"
    if any(path.glob("*.hea")):
        return "wfdb"
    if any(path.glob("S*/S*.pkl")):
        return "wesad"
    if any(path.glob("*/BVP.csv")):
        return "e4"
    raise UserError(
        f"{path}: cannot tell the data format (no dataset.yaml, Raw_data/, *.hea, S*/S*.pkl, "
        "DREAMER.mat or E4 session folders); see docs/DATA_FORMATS.md"
    )


def _runs(mask: np.ndarray) -> np.ndarray:
    """Lengths of runs of True in a 1-D mask."""
    if not mask.any():
        return np.zeros(0, dtype=int)
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(d == -1) - np.flatnonzero(d == 1)


def signal_problems(x: np.ndarray, rate: float) -> dict[str, Any]:
    """NaN share and longest NaN run, flat-line time, clipping plateaus of one raw channel."""
    x = np.asarray(x, dtype=float)
    nan = np.isnan(x)
    out: dict[str, Any] = {
        "nan_frac": float(nan.mean()) if len(x) else 0.0,
        "longest_nan_s": float(_runs(nan).max(initial=0) / rate),
    }
    finite = x[~nan]
    if len(finite) < 3:
        return {**out, "flat_s": 0.0, "clipped_frac": 0.0}
    same = np.concatenate([[False], np.diff(x) == 0]) & ~nan
    flat = _runs(same) + 1
    out["flat_s"] = float(flat[flat >= max(5, FLAT_S * rate)].sum() / rate)
    lo, hi = finite.min(), finite.max()
    rail = (np.isclose(x, lo) | np.isclose(x, hi)) & ~nan if hi > lo else np.zeros_like(nan)
    plateaus = _runs(rail)
    out["clipped_frac"] = float(plateaus[plateaus >= 3].sum() / len(x))
    return out


def _event_problems(events: np.ndarray) -> dict[str, Any]:
    if len(events) < 2:
        return {"beats": len(events), "gaps": 0, "gap_s": 0.0}
    spacing = np.diff(events[:, 0])
    gap = (spacing > MAX_BEAT_GAP_S) | ~np.isclose(spacing, events[1:, 1], atol=0.05)
    return {
        "beats": len(events),
        "gaps": int(gap.sum()),
        "gap_s": float(spacing[gap].sum()),
        "mean_ibi_s": float(np.mean(events[:, 1])),
    }


def _subject(rec: SubjectRecording, class_names: list[str]) -> dict[str, Any]:
    lab = np.asarray(rec.labels)
    seconds = {c: float((lab == k).sum() / rec.label_rate) for k, c in enumerate(class_names)}
    channels = {
        ch: {
            "rate_hz": float(rec.rates[ch]),
            "offset_s": float(rec.offsets.get(ch, 0.0)),
            "duration_s": len(x) / rec.rates[ch],
            **signal_problems(x, rec.rates[ch]),
        }
        for ch, x in rec.signals.items()
    }
    channels.update(
        {ch: {"rate_hz": None, "offset_s": 0.0, **_event_problems(np.asarray(e))} for ch, e in rec.events.items()}
    )
    problems = []
    for ch, info in channels.items():
        if info.get("nan_frac", 0) > 0:
            problems.append(f"{ch}: {info['nan_frac']:.1%} NaN (longest run {info['longest_nan_s']:.1f} s)")
        if info.get("flat_s", 0) > 0:
            problems.append(f"{ch}: flat line {info['flat_s']:.1f} s")
        if info.get("clipped_frac", 0) > 0.001:
            problems.append(f"{ch}: clipping {info['clipped_frac']:.2%}")
        if info.get("gaps", 0) > 0:
            problems.append(f"{ch}: {info['gaps']} beat gaps, {info['gap_s']:.0f} s")
    return {
        "subject": rec.subject,
        "duration_s": rec.duration_s(),
        "t0": rec.t0,
        "channels": channels,
        "label_seconds": seconds,
        "unlabelled_s": float((lab == UNLABELLED).sum() / rec.label_rate),
        "problems": problems,
    }


def inspect_benchmark(bench: BenchmarkData) -> dict[str, Any]:
    """A JSON-ready report of a loaded benchmark."""
    subjects = [_subject(rec, bench.class_names) for rec in bench.subjects]
    totals = {c: sum(s["label_seconds"][c] for s in subjects) for c in bench.class_names}
    all_s = sum(totals.values()) or 1.0
    return {
        "benchmark": bench.name,
        "params": bench.params,
        "class_names": bench.class_names,
        "n_subjects": len(subjects),
        "subjects": subjects,
        "skipped": bench.skipped,
        "label_balance": {c: v / all_s for c, v in totals.items()},
        "label_seconds": totals,
        "sources": len(bench.sources),
    }
