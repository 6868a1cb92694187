"""`ape-nas data inspect`: what a data set holds and what is wrong with it, before anyone trains on it.

Works on any loaded :class:`BenchmarkData`: subjects (natural order: S2 before S10), duration, channels and rates,
label balance per subject (or "unlabelled"), beat-interval gaps, and raw-signal quality problems (NaN runs, flat
lines, clipping plateaus), plus the subjects a reader skipped and why. A path is mapped to a reader by its layout
(:func:`detect_format`); :func:`open_data` reads a path or a built-in benchmark name for ``data inspect``,
``predict`` and ``evaluate`` (labels optional: only training needs them).
"""

from __future__ import annotations

import inspect as pyinspect
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.data.ids import natural_key
from ape_nas.data.intervals import continuous
from ape_nas.data.readers.e4 import SESSION_FILES
from ape_nas.data.runs import run_lengths
from ape_nas.data.types import UNLABELLED, BenchmarkData, SubjectRecording
from ape_nas.errors import KeyedError, UnknownNameError, UserError

FLAT_S = 2.0
# set by the command (labels are optional for inspect/predict/evaluate), never by --set
COMMAND_PARAMS = ("require_labels",)


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
    if (path / "Raw_data").is_dir() and ((path / "Processed_data").is_dir() or any(path.glob("Raw_data/S*/BVP.csv"))):
        return "stress-predict"  # as downloaded (Time_logs.xlsx) or with a converted csv; labels optional
    if (path / "DREAMER.mat").is_file():
        return "dreamer"
    if any(path.glob("*.hea")):
        return "wfdb"
    if any(path.glob("S*/S*.pkl")):
        return "wesad"
    if any((path / f).is_file() or any(path.glob(f"*/{f}")) for f in SESSION_FILES):
        return "e4"  # one E4 session folder, or a folder of them
    raise UserError(
        f"{path}: cannot tell the data format (no dataset.yaml, Raw_data/, *.hea, S*/S*.pkl, "
        "DREAMER.mat or E4 session files such as BVP.csv); see docs/DATA_FORMATS.md"
    )


def open_data(
    target: str | Path, params: dict[str, Any] | None = None, reader: str | None = None, *, require_labels: bool
) -> BenchmarkData:
    """Read a built-in benchmark by name (``synthetic``) or a data folder/file in any supported format.

    ``reader`` overrides format detection; ``params`` are the reader's own parameters (``--set name=value``).
    ``require_labels=False`` (``data inspect``, ``predict``, ``evaluate``): labels are read where they exist and
    are never needed; unlabelled subjects come back ``UNLABELLED`` and ``BenchmarkData.no_labels`` says why.

    Example:
        >>> open_data("synthetic", {"subjects": 2}, require_labels=False).subject_ids()
        ['S01', 'S02']
    """
    from ape_nas.data.benchmarks import BENCHMARKS, get_loader

    text = str(target)
    path = Path(text).expanduser()
    by_name = text in BENCHMARKS and not path.exists()
    if reader is not None and reader not in BENCHMARKS:
        raise UnknownNameError("reader", reader, list(BENCHMARKS))
    if by_name:
        name = text
        if reader is not None and reader != name:
            raise UserError(f"--benchmark {reader} and the benchmark name {name}: give one of them")
    else:
        if path.is_dir() and not any(not p.name.startswith(".") for p in path.iterdir()):
            raise UserError(
                f"{path}: empty folder: no recordings to read (expected a data folder, see docs/DATA_FORMATS.md)"
            )
        name = reader or detect_format(path)
    loader = get_loader(name)
    signature = pyinspect.signature(loader).parameters
    accepted = [p for p in signature if p not in COMMAND_PARAMS]
    params = dict(params or {})
    unknown = [k for k in params if k not in accepted]
    if unknown:
        hint = ""
        prefixed = [k for k in unknown if k.startswith("data.params.")]
        if prefixed:
            short = prefixed[0].removeprefix("data.params.")
            hint = f"; --set takes the reader's own parameter names, e.g. --set {short}=VALUE"
        raise UserError(
            f"reader {name!r} has no parameter(s) {', '.join(unknown)}; expected some of: {', '.join(accepted)}{hint}"
        )
    given = set(params)
    if not by_name:
        if "path" not in accepted:
            raise UserError(f"{name} is a built-in benchmark and reads no files: give its name, not {path}")
        params.setdefault("path", str(path))
    if "require_labels" in signature:  # the built-in synthetic benchmark is always labelled
        params["require_labels"] = require_labels
    try:
        return loader(**params)
    except KeyedError as err:  # keyed data.params.<name>: on the command line that is --set <name>=…
        key = err.keys[0][-1]
        raise UserError(f"--set {key}: {err.problem}" if key in given else f"{name}: {key}: {err.problem}") from None


def signal_problems(x: np.ndarray, rate: float) -> dict[str, Any]:
    """NaN share and longest NaN run, flat-line time, clipping plateaus of one raw channel."""
    x = np.asarray(x, dtype=float)
    nan = np.isnan(x)
    out: dict[str, Any] = {
        "nan_frac": float(nan.mean()) if len(x) else 0.0,
        "longest_nan_s": float(run_lengths(nan).max(initial=0) / rate),
    }
    finite = x[~nan]
    if len(finite) < 3:
        return {**out, "flat_s": 0.0, "clipped_frac": 0.0}
    same = np.concatenate([[False], np.diff(x) == 0]) & ~nan
    flat = run_lengths(same) + 1
    out["flat_s"] = float(flat[flat >= max(5, FLAT_S * rate)].sum() / rate)
    lo, hi = finite.min(), finite.max()
    rail = (np.isclose(x, lo) | np.isclose(x, hi)) & ~nan if hi > lo else np.zeros_like(nan)
    plateaus = run_lengths(rail)
    out["clipped_frac"] = float(plateaus[plateaus >= 3].sum() / len(x))
    return out


def _event_problems(events: np.ndarray) -> dict[str, Any]:
    if len(events) < 2:
        return {"beats": len(events), "gaps": 0, "gap_s": 0.0}
    spacing = np.diff(events[:, 0])
    gap = ~continuous(events[:, 0], events[:, 1])
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
    duration = rec.duration_s()
    labelled = rec.is_labelled()
    return {
        "subject": rec.subject,
        "duration_s": duration,
        "t0": rec.t0,
        "channels": channels,
        "labelled": labelled,
        "label_seconds": seconds,
        # an unlabelled recording is unlabelled from start to end, whatever the length of its label array
        "unlabelled_s": float((lab == UNLABELLED).sum() / rec.label_rate) if labelled else duration,
        "no_labels": rec.meta.get("no_labels", ""),
        "problems": problems,
    }


def inspect_benchmark(bench: BenchmarkData) -> dict[str, Any]:
    """A JSON-ready report of a loaded benchmark; subjects in natural order (S2 before S10).

    Without any label, ``labelled`` is false, ``label_balance`` is ``None`` and ``no_labels`` says why.
    """
    recs = sorted(bench.subjects, key=lambda r: natural_key(r.subject))
    subjects = [_subject(rec, bench.class_names) for rec in recs]
    labelled = any(s["labelled"] for s in subjects)
    totals = {c: sum(s["label_seconds"][c] for s in subjects) for c in bench.class_names}
    all_s = sum(totals.values()) or 1.0
    return {
        "benchmark": bench.name,
        "params": bench.params,
        "class_names": bench.class_names,
        "n_subjects": len(subjects),
        "labelled": labelled,
        "no_labels": "" if labelled else bench.no_labels or "no labels",
        "subjects": subjects,
        "skipped": dict(sorted(bench.skipped.items(), key=lambda kv: natural_key(kv[0]))),
        "label_balance": {c: v / all_s for c, v in totals.items()} if labelled else None,
        "label_seconds": totals,
        "sources": len(bench.sources),
    }
