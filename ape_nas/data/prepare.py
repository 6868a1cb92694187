"""Benchmark → windows for every subject, cached on disk under a content-derived key.

The cache entry is a folder ``<cache_dir>/<key>/`` holding ``X.npy`` (memory-mapped on load), ``y.npy``,
``groups.npy``, ``starts.npy`` and ``meta.json``. It is written to a temporary folder and renamed into place
only when complete, so an interrupted write is never read.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.data.benchmarks import BENCHMARKS, load_benchmark, path_params
from ape_nas.data.fingerprint import HashMemo, content_fingerprint, source_roots
from ape_nas.data.windows import window_subject
from ape_nas.errors import UserError

PREP_VERSION = 3  # bump when preprocessing changes meaning, so old cache entries are not reused


@dataclass
class WindowSet:
    """Windows of all subjects: ``X`` (n, channels, time), ``y`` (n,), ``groups`` (n,) index into ``subjects``."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    starts_s: np.ndarray
    subjects: list[str]
    class_names: list[str]
    channels: list[str]
    rate_hz: float
    fingerprint: str
    stats: dict[str, Any] = field(default_factory=dict)
    hrv: np.ndarray | None = None  # (n, len(stats["hrv_features"])) HRV features per window, NaN where too few beats

    def indices(self, subject_ids: tuple[str, ...] | list[str]) -> np.ndarray:
        wanted = np.array([self.subjects.index(s) for s in subject_ids], dtype=self.groups.dtype)
        return np.flatnonzero(np.isin(self.groups, wanted))


def fingerprint(data_cfg: dict[str, Any], memo: HashMemo | None = None) -> str:
    """Key of the windows: raw files' content + reader version + loader params + preprocessing config."""
    module = importlib.import_module(BENCHMARKS[data_cfg["benchmark"]].split(":")[0])
    roots = source_roots(data_cfg.get("params", {}), path_params(data_cfg["benchmark"]))
    content = content_fingerprint(roots, memo or HashMemo(None)) if roots else ""
    payload = {"prep": PREP_VERSION, "source": getattr(module, "VERSION", 0), "content": content, **data_cfg}
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _build(data_cfg: dict[str, Any], key: str, progress: Any = None) -> WindowSet:
    bench = load_benchmark(data_cfg["benchmark"], data_cfg["params"])
    from ape_nas import hrv

    xs, ys, gs, ss, hs, subjects, per_subject = [], [], [], [], [], [], {}
    skipped = dict(bench.skipped)
    hrv_note = ""
    rate = 0.0
    for rec in bench.subjects:
        sw, rate = window_subject(rec, data_cfg)
        if progress is not None:
            progress(rec.subject)
        if len(sw.labels) == 0:
            skipped[rec.subject] = f"no usable labelled windows (dropped: {sw.dropped})"
            warnings.warn(f"subject {rec.subject} skipped: {skipped[rec.subject]}", stacklevel=2)
            continue
        xs.append(sw.windows)
        ys.append(sw.labels)
        gs.append(np.full(len(sw.labels), len(subjects), dtype=np.int32))
        ss.append(sw.starts_s)
        try:  # HRV features of the same windows, from the raw beats, for the reference baseline
            hs.append(
                hrv.window_features(
                    *hrv.recording_rr(rec, data_cfg.get("hrv_source")), sw.starts_s, data_cfg["window_s"]
                )
            )
        except ValueError as exc:
            hrv_note = str(exc)
            hs.append(np.full((len(sw.labels), len(hrv.FEATURE_NAMES)), np.nan))
        subjects.append(rec.subject)
        per_subject[rec.subject] = {
            "windows": len(sw.labels),
            "dropped": sw.dropped,
            "counts": np.bincount(sw.labels, minlength=len(bench.class_names)).tolist(),
        }
    if not subjects:
        raise UserError(f"benchmark {data_cfg['benchmark']}: no subject has usable labelled windows ({skipped})")
    totals: dict[str, int] = {}
    for info in per_subject.values():
        for reason, count in info["dropped"].items():
            totals[reason] = totals.get(reason, 0) + count
    return WindowSet(
        X=np.concatenate(xs),
        y=np.concatenate(ys),
        groups=np.concatenate(gs),
        starts_s=np.concatenate(ss),
        subjects=subjects,
        class_names=list(bench.class_names),
        channels=list(data_cfg["channels"]),
        rate_hz=rate,
        fingerprint=key,
        stats={
            "per_subject": per_subject,
            "skipped": skipped,
            "dropped_total": totals,
            "hrv_features": list(hrv.FEATURE_NAMES),
            "hrv_note": hrv_note,
        },
        hrv=np.concatenate(hs),
    )


def _write(ws: WindowSet, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        for name in ("X", "y", "groups", "starts_s", "hrv"):
            np.save(tmp / f"{name}.npy", getattr(ws, name))
        meta = {
            "subjects": ws.subjects,
            "class_names": ws.class_names,
            "channels": ws.channels,
            "rate_hz": ws.rate_hz,
            "fingerprint": ws.fingerprint,
            "stats": ws.stats,
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first: its entry is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read(folder: Path) -> WindowSet:
    meta = json.loads((folder / "meta.json").read_text())
    arrays = {
        n: np.load(folder / f"{n}.npy", mmap_mode="r" if n == "X" else None)
        for n in ("X", "y", "groups", "starts_s", "hrv")
    }
    return WindowSet(**arrays, **meta)


_MEMO: dict[str, WindowSet] = {}


def prepare_windows(data_cfg: dict[str, Any], cache_dir: Path | None = None, progress: Any = None) -> WindowSet:
    """Windows for an experiment's ``data`` section: from memory, then the disk cache, else built (and cached).

    ``progress``, if given, is called with each subject id as it is windowed (cold builds only).
    """
    memo = HashMemo(Path(cache_dir) / ".hashes.json" if cache_dir is not None else None)
    key = fingerprint(data_cfg, memo)
    if key in _MEMO:
        return _MEMO[key]
    if cache_dir is None:
        ws = _build(data_cfg, key, progress)
    else:
        folder = Path(cache_dir) / key
        if not (folder / "meta.json").is_file():
            _write(_build(data_cfg, key, progress), folder)
        memo.save()
        ws = _read(folder)
    _MEMO[key] = ws
    return ws


def clear_memo() -> None:
    """Forget windows held in memory (the disk cache stays): for benchmarks and tests of the cache."""
    _MEMO.clear()
