"""Write recordings in the generic folder format (``docs/DATA_FORMATS.md``), so that ``readers.folder`` reads them back.

:func:`write_folder` takes anything shaped like :class:`~ape_nas.data.types.BenchmarkData` (``name``,
``class_names`` and ``subjects``, an iterable of :class:`~ape_nas.data.types.SubjectRecording` that is consumed
once, so a generator can stream subjects one at a time) and writes::

    out/
      dataset.yaml        name, class_names, label_rate, channels {kind, rate, unit}, subjects {start, metadata}
      labels.csv          subject,start,end,label: one row per run of equal labels (seconds after the start)
      S01/<channel>.npy   signals: (n,) float64, or (n, 2) time_s,value when the channel has an offset;
      S01/ibi.npy         events: (n, 2) time_s,ibi_s float64
      ...

``fmt="csv"`` writes the same as text: a header line, then one row per sample or beat, every number written with
``repr`` (the shortest text that parses back to the same float64). Reading back through ``readers.folder`` gives
the same signals (float32, as every reader returns them), rates, offsets, beat events and labels; for ``.npy`` this
is exact for any values, for ``.csv`` it is exact for float32-valued signals (what every reader and generator of
this package produces) and for event times on a binary grid (k / 2^m s, like the E4's 1/64 s): the folder reader
parses text with pandas' fast parser, which can be one unit in the last place off on other 17-digit numbers.

The write is atomic: everything goes to a temporary folder next to ``out`` that is renamed into place at the end.
``out`` must not exist or be an empty folder (else :class:`~ape_nas.errors.UserError`); on any error or interrupt
the temporary folder (and any parent folder this call created) is removed, so no half-written data set is left.

Per-sample labels become intervals: each run of one label ``k`` over samples ``[i, j)`` is the row
``(label_offset + i / label_rate, label_offset + j / label_rate, class_names[k])``; ``UNLABELLED`` samples get no
row. All subjects must share the channels, each channel's rate, and the label rate (``dataset.yaml`` declares one).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ape_nas.data.types import UNLABELLED, SubjectRecording
from ape_nas.errors import UserError

FORMATS = ("npy", "csv")
CONFIG = "dataset.yaml"
LABELS = "labels.csv"
_META_SKIP = ("units", "files", "no_labels")  # reader bookkeeping, not subject metadata


class FolderData(Protocol):
    """What :func:`write_folder` needs of a data set (``BenchmarkData`` has it)."""

    name: str
    class_names: list[str]
    subjects: Iterable[SubjectRecording]


def check_out(out: str | Path) -> Path:
    """``out`` as a path, if it does not exist or is an empty folder; else a one-line :class:`UserError`."""
    path = Path(out)
    if path.is_dir():
        if any(path.iterdir()):
            raise UserError(f"{path} is not empty; expected a new or empty folder (nothing was written)")
    elif path.exists() or path.is_symlink():
        raise UserError(f"{path} exists and is not a folder; expected a new or empty folder (nothing was written)")
    return path


def write_folder(
    data: FolderData,
    out: str | Path,
    *,
    fmt: str = "npy",
    extra: Mapping[str, str | Callable[[], str]] | None = None,
    on_subject: Callable[[SubjectRecording], None] | None = None,
) -> list[Path]:
    """Write ``data`` in the generic folder format at ``out`` (atomic; see the module docstring).

    ``extra``: more text files at the top of the folder (name → text, or a function called after the last
    subject, e.g. a summary of every subject). ``on_subject`` is called after each subject is written (progress).
    Returns the files written, relative to ``out``, in the order written.
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    final = check_out(out)
    created = _missing_parents(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        files = _write_all(data, tmp, fmt, extra or {}, on_subject)
        check_out(final)  # still new or empty (another process may have written there meanwhile)
        os.replace(tmp, final)  # POSIX: replaces an empty folder in one step
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return files


def _missing_parents(path: Path) -> list[Path]:
    missing, parent = [], path.absolute().parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    return missing


class _Layout:
    """Channels, rates, units and label rate, fixed by the first subject and checked against every other."""

    def __init__(self) -> None:
        self.channels: dict[str, dict[str, Any]] = {}
        self.label_rate: float | None = None

    def add(self, rec: SubjectRecording) -> None:
        units = rec.meta.get("units") or {}
        spec = {
            ch: {"kind": "signal", "rate": float(rec.rates[ch]), "unit": str(units.get(ch, ""))} for ch in rec.signals
        }
        spec.update({ch: {"kind": "events", "unit": str(units.get(ch, "s"))} for ch in rec.events})
        if self.label_rate is None:
            self.channels, self.label_rate = spec, float(rec.label_rate)
            return
        if list(spec) != list(self.channels):
            raise UserError(
                f"subject {rec.subject} has channels {', '.join(spec)} but the first subject has "
                f"{', '.join(self.channels)}; expected the same channels for every subject "
                f"({CONFIG} declares them once)"
            )
        for ch, s in spec.items():
            if s.get("rate") != self.channels[ch].get("rate"):
                raise UserError(
                    f"subject {rec.subject}: channel {ch} at {s['rate']:g} Hz but {self.channels[ch]['rate']:g} Hz "
                    f"in the first subject; expected one rate per channel ({CONFIG} declares it once)"
                )
        if float(rec.label_rate) != self.label_rate:
            raise UserError(
                f"subject {rec.subject}: labels at {rec.label_rate:g} Hz but {self.label_rate:g} Hz in the first "
                f"subject; expected one label rate ({CONFIG} declares it once)"
            )


def _write_all(
    data: FolderData,
    root: Path,
    fmt: str,
    extra: Mapping[str, str | Callable[[], str]],
    on_subject: Callable[[SubjectRecording], None] | None,
) -> list[Path]:
    layout, subjects, rows, files = _Layout(), {}, [], []
    class_names = list(data.class_names)
    for rec in data.subjects:
        if rec.subject in subjects:
            raise UserError(f"subject {rec.subject} appears twice; expected distinct subject ids")
        layout.add(rec)
        folder = root / rec.subject
        folder.mkdir()
        for ch, x in rec.signals.items():
            files.append(_write_signal(folder, ch, x, rec.rates[ch], rec.offsets.get(ch, 0.0), fmt).relative_to(root))
        for ch, ev in rec.events.items():
            files.append(_write_events(folder, ch, ev, fmt).relative_to(root))
        rows += [(rec.subject, a, b, class_names[k]) for a, b, k in label_runs(rec)]
        subjects[rec.subject] = _subject_meta(rec)
        if on_subject is not None:
            on_subject(rec)
    if not subjects:
        raise UserError("no subjects to write")
    lines = ["subject,start,end,label"] + [f"{s},{a!r},{b!r},{label}" for s, a, b, label in rows]
    (root / LABELS).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / CONFIG).write_text(_dataset_yaml(data.name, class_names, layout, subjects), encoding="utf-8")
    files += [Path(LABELS), Path(CONFIG)]
    for name, text in extra.items():
        (root / name).write_text(text() if callable(text) else text, encoding="utf-8")
        files.append(Path(name))
    return files


def label_runs(rec: SubjectRecording) -> list[tuple[float, float, int]]:
    """Runs of one label as ``(start_s, end_s, label)`` after the recording start; ``UNLABELLED`` runs left out."""
    y = np.asarray(rec.labels)
    if y.size == 0:
        return []
    change = np.flatnonzero(np.diff(y)) + 1
    starts, ends = np.r_[0, change], np.r_[change, y.size]
    rate, off = float(rec.label_rate), float(rec.label_offset)
    runs = zip(starts.tolist(), ends.tolist(), strict=True)
    return [(off + a / rate, off + b / rate, int(y[a])) for a, b in runs if y[a] != UNLABELLED]


def _number_text(x: np.ndarray) -> str:
    return "\n".join(",".join(map(repr, row)) if isinstance(row, list) else repr(row) for row in x.tolist())


def _header(name: str) -> str:
    try:
        float(name)
    except ValueError:
        return name
    return "value"  # a channel called "nan" or "inf" would read as a number


def _write_signal(folder: Path, ch: str, x: np.ndarray, rate: float, offset: float, fmt: str) -> Path:
    values = np.asarray(x, dtype=np.float64).ravel()
    if not np.isfinite(values).all():
        raise UserError(f"{folder.name}/{ch}: missing or infinite values; the folder format allows none")
    header = _header(ch)
    if offset:
        values = np.c_[offset + np.arange(values.size) / float(rate), values]
        header = f"time_s,{header}"
    return _save(folder / ch, values, header, fmt)


def _write_events(folder: Path, ch: str, ev: np.ndarray, fmt: str) -> Path:
    values = np.asarray(ev, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(values).all():
        raise UserError(f"{folder.name}/{ch}: missing or infinite beat values; the folder format allows none")
    return _save(folder / ch, values, "time_s,ibi_s", fmt)


def _save(stem: Path, values: np.ndarray, header: str, fmt: str) -> Path:
    path = stem.with_suffix(f".{fmt}")
    if fmt == "npy":
        np.save(path, np.ascontiguousarray(values, dtype=np.float64))
    else:
        path.write_text(f"{header}\n{_number_text(values)}\n", encoding="utf-8")
    return path


def _subject_meta(rec: SubjectRecording) -> dict[str, Any]:
    """``subjects.<id>`` of dataset.yaml: ``start`` (t0) and the plain scalar metadata (str, number, bool)."""
    meta: dict[str, Any] = {}
    if rec.t0 is not None:
        meta["start"] = float(rec.t0)
    for key, value in rec.meta.items():
        if key in _META_SKIP or key == "start":
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool | int | float | str) and not (isinstance(value, float) and not np.isfinite(value)):
            meta[str(key)] = value
    return meta


def _dataset_yaml(name: str, class_names: list[str], layout: _Layout, subjects: dict[str, dict[str, Any]]) -> str:
    import yaml

    doc: dict[str, Any] = {
        "name": str(name),
        "class_names": [str(c) for c in class_names],
        "labels": LABELS,
        "label_rate": layout.label_rate,
        "channels": layout.channels,
    }
    kept = {sid: meta for sid, meta in subjects.items() if meta}
    if kept:
        doc["subjects"] = kept
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=1000, allow_unicode=True)
