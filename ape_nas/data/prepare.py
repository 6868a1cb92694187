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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.data.benchmarks import BENCHMARKS, load_benchmark, path_params
from ape_nas.data.fingerprint import HashMemo, content_fingerprint, source_roots
from ape_nas.data.windows import window_subject
from ape_nas.errors import KeyedError, UserError

PREP_VERSION = 4  # bump when preprocessing changes meaning, so old cache entries are not reused


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

    def subject_ids(self, idx: np.ndarray) -> np.ndarray:
        """The subject id (str) of each window ``idx``."""
        return np.asarray(self.subjects, dtype=object)[np.asarray(self.groups)[idx]].astype(str)


def fingerprint(data_cfg: dict[str, Any], memo: HashMemo | None = None) -> str:
    """Key of the windows: raw files' content + reader version + loader params + preprocessing config."""
    module = importlib.import_module(BENCHMARKS[data_cfg["benchmark"]].split(":")[0])
    roots = source_roots(data_cfg.get("params", {}), path_params(data_cfg["benchmark"]))
    content = content_fingerprint(roots, memo or HashMemo(None)) if roots else ""
    payload = {"prep": PREP_VERSION, "source": getattr(module, "VERSION", 0), "content": content, **data_cfg}
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


SHORT = "shorter than one window"


def _warning_summary(caught: list[warnings.WarningMessage]) -> list[str]:
    """Library warnings while reading and windowing, each message once with its count (never printed raw)."""
    counts: dict[str, int] = {}
    for w in caught:
        text = " ".join(str(w.message).split())[:200]
        counts[text] = counts.get(text, 0) + 1
    return [f"{text} (×{n})" if n > 1 else text for text, n in counts.items()]


def _build(data_cfg: dict[str, Any], key: str, progress: Any = None) -> WindowSet:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ws = _build_quietly(data_cfg, key, progress)
    ws.stats["warnings"] = _warning_summary(caught)
    return ws


def _no_windows_error(data_cfg: dict[str, Any], skipped: dict[str, str], longest: float) -> UserError:
    if skipped and all(why.startswith(SHORT) for why in skipped.values()):
        return KeyedError(
            [("data", "window_s")],
            f"{data_cfg['window_s']:g} s is longer than every recording (the longest, after alignment of its "
            f"channels, lasts {longest:.0f} s); expected a window_s shorter than that",
        )
    return UserError(
        f"benchmark {data_cfg['benchmark']}: no subject has usable labelled windows; {skip_summary(skipped)}"
    )


def skip_summary(skipped: dict[str, str], total: int | None = None) -> str:
    """``3 of 16 subjects skipped: shorter than one window (S01, S05, S09)``, one group per reason."""
    from ape_nas.data.ids import natural_key

    groups: dict[str, list[str]] = {}
    for subject, why in skipped.items():
        groups.setdefault(why.split(" (", 1)[0] if why.startswith(SHORT) else why, []).append(subject)
    of = f" of {total}" if total is not None else ""
    parts = [f"{why} ({', '.join(sorted(ids, key=natural_key))})" for why, ids in groups.items()]
    return f"{len(skipped)}{of} subject{'s' if len(skipped) != 1 else ''} skipped: " + "; ".join(parts)


def _build_quietly(data_cfg: dict[str, Any], key: str, progress: Any = None) -> WindowSet:
    bench = load_benchmark(data_cfg["benchmark"], data_cfg["params"])
    from ape_nas import hrv

    xs, ys, gs, ss, hs, subjects, per_subject = [], [], [], [], [], [], {}
    skipped = dict(bench.skipped)
    hrv_note = ""
    rate = 0.0
    longest = 0.0
    for rec in bench.subjects:
        duration = rec.duration_s() - max([0.0, *rec.offsets.values()])
        longest = max(longest, duration)
        if duration < data_cfg["window_s"]:
            skipped[rec.subject] = f"{SHORT} ({duration:.0f} s < window_s {data_cfg['window_s']:g} s)"
            continue
        sw, rate = window_subject(rec, data_cfg)
        if progress is not None:
            progress(rec.subject)
        if len(sw.labels) == 0:
            dropped = ", ".join(f"{r} {n}" for r, n in sw.dropped.items() if n)
            skipped[rec.subject] = f"no usable labelled windows (dropped: {dropped or 'none'})"
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
        raise _no_windows_error(data_cfg, skipped, longest)
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


def prepare_windows(
    data_cfg: dict[str, Any],
    cache_dir: Path | None = None,
    progress: Any = None,
    check: Callable[[WindowSet], None] | None = None,
) -> WindowSet:
    """Windows for an experiment's ``data`` section: from memory, then the disk cache, else built (and cached).

    ``progress``, if given, is called with each subject id as it is windowed (cold builds only). ``check``, if
    given, is called with the windows before anything is written to ``cache_dir``: when it raises, the cache
    is left as it was (no new entry, no new hash memo).
    """
    memo = HashMemo(Path(cache_dir) / ".hashes.json" if cache_dir is not None else None)
    key = fingerprint(data_cfg, memo)
    folder = Path(cache_dir) / key if cache_dir is not None else None
    if key in _MEMO:
        ws = _MEMO[key]
    elif folder is not None and (folder / "meta.json").is_file():
        ws = _read(folder)
    else:
        ws = _build(data_cfg, key, progress)
    if check is not None:
        check(ws)
    if folder is not None and not (folder / "meta.json").is_file():
        _write(ws, folder)
        ws = _read(folder)  # memory-mapped, as every later load
    if cache_dir is not None:
        memo.save()
    _MEMO[key] = ws
    return ws


def clear_memo() -> None:
    """Forget windows held in memory (the disk cache stays): for benchmarks and tests of the cache."""
    _MEMO.clear()
