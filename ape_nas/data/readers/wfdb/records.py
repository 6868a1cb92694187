"""Reading one WFDB record through the ``wfdb`` package: which records a folder holds, the ``.dat`` sizes against
the header, the header's checksums against the data, and wfdb's own digital → physical conversion."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.data.readers.wfdb.names import normalise_names
from ape_nas.errors import UserError

# bytes per sample of the WFDB storage formats whose size can be checked (FLAC formats 508/516/524 cannot)
_BYTES_PER_SAMPLE = {
    "8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5, "310": 4 / 3, "311": 4 / 3,
}  # fmt: skip


@dataclass
class Record:
    """One record read (and later labelled), on its own timeline (seconds after its start)."""

    name: str
    signals: dict[str, np.ndarray]
    rates: dict[str, float]
    original: dict[str, str]  # normalised -> header name
    units: dict[str, str]
    fs: float
    header_fs: float
    duration_s: float
    t0: float | None
    comments: list[str]
    labels: np.ndarray | None = None
    label_rate: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def keep(self, channels: list[str]) -> None:
        """Drop every channel not in ``channels`` (normalised names, all present)."""
        self.signals = {c: self.signals[c] for c in channels}
        self.rates = {c: self.rates[c] for c in channels}
        self.original = {c: self.original[c] for c in channels}
        self.units = {c: self.units[c] for c in channels}


def discover(root: Path) -> tuple[list[str], list[str], Path | None]:
    """(records with a header, records listed in RECORDS without one, the RECORDS file if any)."""
    listing = root / "RECORDS"
    if listing.is_file():
        names = [ln.strip().rstrip("/") for ln in listing.read_text(errors="replace").splitlines() if ln.strip()]
        present = [n for n in names if (root / f"{n}.hea").is_file()]
        absent = [n for n in names if not (root / f"{n}.hea").is_file()]
        return present, absent, listing
    names = sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.hea") if p.is_file())
    return names, [], None


def read_record(root: Path, name: str, fs_override: float | None) -> tuple[Record, list[str]]:
    """Record ``name`` of the folder ``root`` in physical units, and the files it was read from."""
    import wfdb  # deferred: only this benchmark needs it

    base = root / name
    hea = base.with_name(base.name + ".hea")
    header = _read_header(wfdb, base, hea, root, name)
    sources = [str(hea)]
    multi = hasattr(header, "seg_name")
    header_fs = float(header.fs) if header.fs is not None else float("nan")
    if not math.isfinite(header_fs) or header_fs <= 0:
        raise UserError(f"{hea}: line 1: sampling frequency {header.fs!r} is not a positive number")
    if not multi:
        if not header.n_sig:
            raise UserError(f"{hea}: the record has no signals; expected at least one signal line")
        sources += _check_sizes(root, name, header, hea)
    else:
        sources += [str(root / Path(name).parent / f"{s}.hea") for s in header.seg_name if s and s != "~"]
    # segments of a multi-segment record may differ in gain: wfdb converts each; a single one is checked first
    rec = _rdrecord(wfdb, base, hea, physical=multi)
    if multi:
        sources += sorted({str((root / name).parent / f) for f in (rec.file_name or [])})
        physical = rec.e_p_signal
    else:
        if rec.e_d_signal is None:
            raise UserError(f"{hea}: the record has no samples")
        _verify_checksums(rec, hea)
        physical = rec.dac(expanded=True)  # (digital - baseline) / gain, NaN where the format says "no sample"
    if physical is None:
        raise UserError(f"{hea}: the record has no samples")
    fs = float(fs_override) if fs_override is not None else header_fs
    norm = normalise_names(rec.sig_name)
    out = Record(
        name=name,
        signals={ch: np.asarray(x, dtype=np.float32) for ch, x in zip(norm, physical, strict=True)},
        rates={ch: fs * int(rec.samps_per_frame[i] or 1) for i, ch in enumerate(norm)},
        original=dict(zip(norm, rec.sig_name, strict=True)),
        units={ch: str(rec.units[i] or "") if rec.units else "" for i, ch in enumerate(norm)},
        fs=fs,
        header_fs=header_fs,
        duration_s=int(rec.sig_len) / fs,
        t0=_t0(header),
        comments=list(rec.comments or []),
    )
    return out, sources


def _read_header(wfdb: Any, base: Path, hea: Path, root: Path, name: str) -> Any:
    if not hea.is_file():
        raise UserError(f"{hea}: header not found; expected a WFDB record {name!r} in {root}")
    try:
        return wfdb.rdheader(str(base))
    except Exception as exc:  # wfdb raises assorted errors on malformed headers
        raise UserError(f"{hea}: not a valid WFDB header ({exc})") from None


def _rdrecord(wfdb: Any, base: Path, hea: Path, *, physical: bool) -> Any:
    try:  # smooth_frames=False: each channel at its own rate (samples per frame × frame rate)
        return wfdb.rdrecord(str(base), physical=physical, smooth_frames=False)
    except FileNotFoundError as exc:
        raise UserError(f"{hea}: a file of this record is missing ({exc.filename or exc})") from None
    except Exception as exc:
        raise UserError(f"{hea}: wfdb could not read the record ({exc})") from None


def _verify_checksums(rec: Any, hea: Path) -> None:
    """The header's 16-bit checksum of each signal against the data's (headers write it signed or unsigned)."""
    expected = getattr(rec, "checksum", None)
    if expected is None:
        return
    for i, (got, want) in enumerate(zip(rec.calc_checksum(expanded=True), expected, strict=False)):
        if want is not None and got != int(want) % 65536:
            signed = got - 65536 * (got >= 32768)
            raise UserError(
                f"{hea}: signal {i + 1} ({rec.sig_name[i]}): checksum of the data is {signed}, the header says "
                f"{want}; the .dat file does not match its header (corrupt, or wrong format or samples per frame)"
            )


def _t0(header: Any) -> float | None:
    date, time = getattr(header, "base_date", None), getattr(header, "base_time", None)
    if date is None or time is None:
        return None
    return datetime.combine(date, time, tzinfo=UTC).timestamp()


def _check_sizes(root: Path, name: str, header: Any, hea: Path) -> list[str]:
    """Compare each .dat file's size with what the header says; return the .dat paths."""
    files: dict[str, dict[str, Any]] = {}
    for i, fname in enumerate(header.file_name):
        entry = files.setdefault(fname, {"fmt": header.fmt[i], "spf": 0, "offset": 0})
        entry["spf"] += int(header.samps_per_frame[i] or 1)
        offsets = getattr(header, "byte_offset", None) or []
        if i < len(offsets) and offsets[i]:
            entry["offset"] = int(offsets[i])
    paths = []
    folder = (root / name).parent
    for fname, entry in files.items():
        dat = folder / fname
        paths.append(str(dat))
        if not dat.is_file():
            raise UserError(f"{dat}: data file named by {hea} not found; expected it next to the header")
        bps = _BYTES_PER_SAMPLE.get(str(entry["fmt"]))
        if bps is None or header.sig_len is None:
            continue
        n_samp = int(header.sig_len) * entry["spf"]
        need = entry["offset"] + math.floor(n_samp * bps)
        size = dat.stat().st_size
        frame = max(4, math.ceil(entry["spf"] * bps))
        says = f"{dat}: {size} bytes, but {hea} says {header.sig_len} frames × {entry['spf']} samples in format "
        if size < need:
            raise UserError(f"{says}{entry['fmt']} = {need} bytes; the file is truncated (download it again)")
        if size >= entry["offset"] + math.ceil(n_samp * bps) + frame:
            raise UserError(
                f"{says}{entry['fmt']} = {need} bytes; the header's length, format or samples per frame contradict "
                "the data"
            )
    return paths
