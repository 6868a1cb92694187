"""Benchmark ``wesad``: WESAD (Schmidt et al., ICMI 2018) from the user's own copy of the published files.

Layout: ``<path>/SX/SX.pkl`` (S2 … S17 in the release), each a pickled dict (Python 2, read with latin-1 string
decoding) ``{"subject": "SX", "signal": {"chest": {...}, "wrist": {...}}, "label": (n,)}``, with the chest (RespiBAN)
signals and the labels at 700 Hz and the wrist (Empatica E4) signals at their own rates, synchronised by the
authors (both start at the same instant: ``offsets`` are 0, ``t0`` is ``None``).

Pickles run code when loaded, so :func:`load` refuses unless ``trust_pickle: true``: set it only for files from a
source you trust (the published WESAD download). Even then only plain containers and numpy arrays are rebuilt
(any other class in the file is refused), as a second guard.

Channels (``channels``; the first two are the cardiac ones), with their source and rate:

* ``ecg``: chest ``ECG`` (mV), 700 Hz
* ``bvp``: wrist ``BVP`` (photoplethysmogram), 64 Hz
* ``chest_eda``, ``emg``, ``resp``, ``chest_temp``: chest ``EDA``, ``EMG``, ``Resp``, ``Temp``, 700 Hz
* ``chest_acc_x``, ``chest_acc_y``, ``chest_acc_z``: the columns of chest ``ACC``, 700 Hz
* ``wrist_eda``, ``wrist_temp``: wrist ``EDA``, ``TEMP``, 4 Hz
* ``wrist_acc_x``, ``wrist_acc_y``, ``wrist_acc_z``: the columns of wrist ``ACC``, 32 Hz

Labels (700 Hz, stored as int8): the study protocol codes 1 = baseline, 2 = stress, 3 = amusement, 4 = meditation
become class names; ``classes`` picks and orders the classes (index = position in ``classes``). Code 0 (not
defined / transient), 5, 6 and 7 (to be ignored, per the dataset's readme) and every code whose class is not in
``classes`` become ``UNLABELLED``. A subject with no labelled sample is skipped with a warning.

Checks (one-line :class:`~ape_nas.errors.UserError`): the folder and each subject's ``.pkl`` exist, the dict has
the published keys, the label values are 0-7, and every loaded channel lasts as long as the labels at the rate
above (within :data:`DURATION_TOLERANCE_S`): a mismatch means the file's rates are not WESAD's.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.data.ids import natural_sorted
from ape_nas.data.readers import params
from ape_nas.data.types import UNLABELLED, BenchmarkData, SubjectRecording
from ape_nas.errors import UserError
from ape_nas.schema import Field, ParamKeys

NAME = "wesad"
VERSION = 1  # bump whenever the data produced for the same files and parameters changes (used in cache keys)

PATH_PARAMS = ("path",)  # parameters naming raw data files or folders (content-hashed for caching)
LABEL_RATE = 700.0
LABEL_CODES = {1: "baseline", 2: "stress", 3: "amusement", 4: "meditation"}  # 0, 5, 6, 7: UNLABELLED
MAX_CODE = 7
DURATION_TOLERANCE_S = 2.0

# channel -> (device, key in signal[device], rate Hz, column or None)
CHANNELS: dict[str, tuple[str, str, float, int | None]] = {
    "ecg": ("chest", "ECG", 700.0, None),
    "bvp": ("wrist", "BVP", 64.0, None),
    "chest_eda": ("chest", "EDA", 700.0, None),
    "emg": ("chest", "EMG", 700.0, None),
    "resp": ("chest", "Resp", 700.0, None),
    "chest_temp": ("chest", "Temp", 700.0, None),
    "chest_acc_x": ("chest", "ACC", 700.0, 0),
    "chest_acc_y": ("chest", "ACC", 700.0, 1),
    "chest_acc_z": ("chest", "ACC", 700.0, 2),
    "wrist_eda": ("wrist", "EDA", 4.0, None),
    "wrist_temp": ("wrist", "TEMP", 4.0, None),
    "wrist_acc_x": ("wrist", "ACC", 32.0, 0),
    "wrist_acc_y": ("wrist", "ACC", 32.0, 1),
    "wrist_acc_z": ("wrist", "ACC", 32.0, 2),
}

# what a WESAD pickle may rebuild: numpy arrays, dtypes and scalars (module paths of numpy 1 and 2)
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
}


class _Refused(pickle.UnpicklingError):
    """The pickle names a class outside :data:`_ALLOWED`."""


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise _Refused(f"refusing to rebuild {module}.{name}")
        return super().find_class(module, name)


def _unpickle(file: Path) -> Any:
    try:
        with file.open("rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core paths in numpy 2
            return _ArraysOnly(fh, encoding="latin1").load()
    except OSError as exc:
        raise UserError(f"{file}: cannot read ({exc.strerror})") from None
    except _Refused as exc:
        raise UserError(f"{file}: not a WESAD pickle ({exc}); expected dicts of numpy arrays") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
    ) as exc:
        raise UserError(
            f"{file}: truncated or corrupt pickle ({type(exc).__name__}: {exc}); download it again"
        ) from None


FIELDS = {
    "path": params.path("the unpacked WESAD folder holding S2/S2.pkl, S3/S3.pkl, …"),
    "trust_pickle": Field(bool, False),
    "channels": Field(list, ["ecg"], check=params.names(list(CHANNELS))),
    "classes": Field(list, ["baseline", "stress"], check=params.names(list(LABEL_CODES.values()))),
    "subjects": Field(list, None, nullable=True, check=params.names()),
    "require_labels": params.REQUIRE_LABELS,
}


def _array(d: Any, keys: tuple[str, ...], file: Path) -> np.ndarray:
    node = d
    for i, k in enumerate(keys):
        if not isinstance(node, dict) or k not in node:
            where = ".".join(keys[:i]) or "the top level"
            raise UserError(
                f"{file}: {where} has no key {k!r}; expected the published WESAD layout "
                "{subject, signal: {chest: {ECG, EDA, EMG, Resp, Temp, ACC}, wrist: {BVP, EDA, TEMP, ACC}}, label}"
            )
        node = node[k]
    arr = np.asarray(node)
    if arr.dtype.kind not in "biuf" or arr.ndim not in (1, 2) or arr.size == 0:
        raise UserError(
            f"{file}: {'.'.join(keys)} is a {arr.dtype} array of shape {arr.shape}; expected numbers, (n,) or (n, k)"
        )
    return arr


def _subject(file: Path, sid: str, channels: list[str], classes: list[str]) -> SubjectRecording:
    d = _unpickle(file)
    if not isinstance(d, dict):
        raise UserError(f"{file}: holds a {type(d).__name__}; expected the published WESAD dict")
    raw = _array(d, ("label",), file).reshape(-1)
    if raw.dtype.kind == "f" and not np.all(np.isfinite(raw) & (raw == np.round(raw))):
        raise UserError(f"{file}: label holds non-integer values; expected protocol codes 0-{MAX_CODE}")
    codes = raw.astype(np.int64)
    bad = (codes < 0) | (codes > MAX_CODE)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"{file}: label[{i}] = {codes[i]}; expected protocol codes 0-{MAX_CODE}")
    label_s = len(codes) / LABEL_RATE
    signals, rates = {}, {}
    for ch in channels:
        device, key, rate, col = CHANNELS[ch]
        arr = _array(d, ("signal", device, key), file)
        if col is not None:
            if arr.ndim != 2 or arr.shape[1] <= col:
                raise UserError(
                    f"{file}: signal.{device}.{key} has shape {arr.shape}; expected (n, 3) for channel {ch}"
                )
            x = arr[:, col]
        else:
            if arr.ndim == 2 and arr.shape[1] != 1:
                raise UserError(f"{file}: signal.{device}.{key} has shape {arr.shape}; expected (n,) or (n, 1)")
            x = arr.reshape(-1)
        dur = len(x) / rate
        if abs(dur - label_s) > DURATION_TOLERANCE_S:
            raise UserError(
                f"{file}: signal.{device}.{key} has {len(x)} samples = {dur:.1f} s at {rate:g} Hz, but label has "
                f"{len(codes)} samples = {label_s:.1f} s at {LABEL_RATE:g} Hz; the rates contradict the data "
                "(expected WESAD's published rates)"
            )
        signals[ch] = np.ascontiguousarray(x, dtype=np.float32)
        rates[ch] = rate
    lut = np.full(MAX_CODE + 1, UNLABELLED, dtype=np.int8)
    for code, name in LABEL_CODES.items():
        if name in classes:
            lut[code] = classes.index(name)
    labels = lut[codes]
    present = {LABEL_CODES[c]: round(float((codes == c).sum()) / LABEL_RATE, 1) for c in LABEL_CODES}
    meta = {
        "file": str(file),
        "pkl_subject": str(d.get("subject", "")),
        "seconds_per_condition": present,
    }
    return SubjectRecording(subject=sid, signals=signals, rates=rates, labels=labels, label_rate=LABEL_RATE, meta=meta)


def load(
    *,
    path: str | None = None,
    trust_pickle: bool = False,
    channels: tuple[str, ...] | list[str] = ("ecg",),
    classes: tuple[str, ...] | list[str] = ("baseline", "stress"),
    subjects: list[str] | None = None,
    require_labels: bool = True,
) -> BenchmarkData:
    """Load WESAD from ``path`` (the folder holding ``S2/S2.pkl`` …); see the module docstring.

    ``require_labels=False`` (prediction, inspection): a subject with no sample of ``classes`` is kept,
    ``UNLABELLED``, rather than skipped.
    """
    given = {"path": path, "trust_pickle": trust_pickle, "channels": channels, "classes": classes, "subjects": subjects}
    p = params.check({**given, "require_labels": require_labels}, FIELDS)
    channels, classes, subjects = p["channels"], p["classes"], p["subjects"]
    if not p["path"]:
        raise ParamKeys().error(("path",), f"required: {FIELDS['path'].doc}")
    root = Path(p["path"])
    if not root.is_dir():
        what = "is a file" if root.exists() else "not found"
        raise UserError(f"wesad: path {root}: {what}; expected the unpacked WESAD folder holding S2/S2.pkl, …")
    found = {p.name: p / f"{p.name}.pkl" for p in root.iterdir() if p.is_dir() and re.fullmatch(r"S\d+", p.name)}
    skipped: dict[str, str] = {}
    if subjects is None:
        wanted = natural_sorted(found)
        for sid in list(wanted):
            if not found[sid].is_file():
                wanted.remove(sid)
                _skip(skipped, sid, f"{found[sid]} not found")
    else:
        unknown = [s for s in subjects if s not in found]
        if unknown:
            raise UserError(
                f"wesad: subject(s) {', '.join(map(repr, unknown))} not in {root}; found: "
                f"{', '.join(natural_sorted(found)) or 'none'}"
            )
        wanted = list(dict.fromkeys(subjects))
        for sid in wanted:
            if not found[sid].is_file():
                raise UserError(f"wesad: {found[sid]} not found; expected the subject's pickle in its folder")
    if not wanted:
        raise UserError(f"wesad: no subject folders SX/SX.pkl in {root}; expected the unpacked WESAD folder")
    if not trust_pickle:
        raise UserError(
            f"wesad: refusing to unpickle {found[wanted[0]]}: loading a pickle can run code stored in the file; "
            "set trust_pickle: true only for files from a source you trust (the published WESAD download)"
        )
    recs, sources = [], []
    for sid in wanted:
        file = found[sid]
        sources.append(str(file))
        rec = _subject(file, sid, channels, classes)
        if not rec.is_labelled():
            reason = f"no samples of the classes {', '.join(classes)}"
            if require_labels:
                _skip(skipped, sid, reason)
                continue
            rec.meta["no_labels"] = reason
        recs.append(rec)
    if not recs:
        raise UserError(f"wesad: no usable subject in {root}: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    no_labels = "" if any(r.is_labelled() for r in recs) else f"wesad: no sample of the classes {', '.join(classes)}"
    return BenchmarkData(
        name=NAME,
        subjects=recs,
        class_names=classes,
        params={**given, "path": str(path), "channels": channels, "classes": classes, "subjects": subjects},
        sources=sources,
        skipped=skipped,
        no_labels=no_labels,
    )


def _skip(skipped: dict[str, str], sid: str, reason: str) -> None:
    skipped[sid] = reason
    warnings.warn(f"wesad: skipping subject {sid}: {reason}", stacklevel=3)
