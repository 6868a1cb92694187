"""The HRV feature vector a hybrid network takes beside the raw window: the baseline's transform, as plain data.

A network with ``hrv_fusion`` other than ``none`` (:mod:`ape_nas.models.heads`) gets, for every window, the
window's HRV features (:data:`ape_nas.hrv.FEATURE_NAMES`, computed from the raw beats as for the HRV baseline)
transformed exactly as :mod:`ape_nas.baseline` transforms them:

1. ``mode`` ``subject`` (when ``data.normalize`` is ``subject``): every feature z-scored within each subject
   over that subject's windows, NaN ignored (:func:`ape_nas.hrv.subject_normalise`, the baseline's
   ``subjnorm`` variant); ``training``: left as they are;
2. keep the columns that are finite in at least one training window (LF on short windows never is);
3. ``sign(x)·log1p(|x|)``;
4. NaN → the median of the training windows whose kept columns are all finite;
5. ``(x - mean) / scale``, mean and scale (population SD, 1 where it is 0: sklearn's ``StandardScaler``) of
   those same training windows.

Everything fitted comes from the training subjects only: :class:`HrvTransform` holds it (column names,
medians, means, scales) as plain lists. Step 1 needs no fitted statistic and runs outside the network
(:func:`network_input`); steps 2-5 are the network's first layer (:class:`ape_nas.models.heads.FeatureInput`,
statistics as buffers loaded by :func:`attach`), so the network (its checkpoint, its ONNX graph) takes the raw
(or per-subject z-scored) feature vector, NaN included. The checkpoint also stores the transform
(``hrv_transform``) and a bundle's ``preprocessing.json`` describes the input (``hrv_features``), so ``predict``
(numpy + onnxruntime) computes the same vector from recordings (:func:`recording_features`). No torch here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

MODES = ("training", "subject")
TRANSFORM_FORMAT = "ape-nas-hrv-transform/1"


def mode_for(data_cfg: dict[str, Any]) -> str:
    """``subject`` when the signals are normalised per subject (``data.normalize: subject``), else ``training``."""
    return "subject" if data_cfg.get("normalize", "subject") == "subject" else "training"


def _log1p_signed(X: np.ndarray) -> np.ndarray:
    return np.sign(X) * np.log1p(np.abs(X))


def _subject_normalise(X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    from ape_nas.hrv import subject_normalise

    return subject_normalise(X, np.zeros(len(X), dtype=np.int64) if groups is None else groups)


@dataclass(frozen=True)
class HrvTransform:
    """The fitted transform (see the module docstring): raw features (n, len(names)) → (n, len(columns))."""

    mode: str  # "training" | "subject"
    names: tuple[str, ...]  # the raw feature columns, in order (ape_nas.hrv.FEATURE_NAMES when fitted)
    columns: tuple[str, ...]  # the columns the network takes, in order
    medians: tuple[float, ...]  # per column, after the log transform
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    @property
    def n_features(self) -> int:
        return len(self.columns)

    def apply(self, hrv: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Raw features ``hrv`` (n, len(names)) → float32 (n, n_features), finite. ``groups`` (n,): the subject of
        each window (mode ``subject`` normalises within each; None: all windows are one subject's)."""
        X = np.asarray(hrv, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.names):
            raise ValueError(f"HRV features must have shape (windows, {len(self.names)}), got {X.shape}")
        if self.mode == "subject" and len(X):
            X = _subject_normalise(X, groups)
        idx = [self.names.index(c) for c in self.columns]
        X = _log1p_signed(X[:, idx])
        X = np.where(np.isfinite(X), X, np.asarray(self.medians)[None, :])
        return ((X - np.asarray(self.mean)) / np.asarray(self.scale)).astype(np.float32)

    def stats(self) -> dict[str, list[float]]:
        """Per raw feature (``names``): ``keep`` (1 for a column the network takes, else 0), ``medians``, ``mean``,
        ``scale`` (0, 0, 1 for columns not taken): the buffers of :class:`ape_nas.models.heads.FeatureInput`."""
        out: dict[str, list[float]] = {"keep": [], "medians": [], "mean": [], "scale": []}
        for name in self.names:
            k = self.columns.index(name) if name in self.columns else -1
            out["keep"].append(1.0 if k >= 0 else 0.0)
            out["medians"].append(self.medians[k] if k >= 0 else 0.0)
            out["mean"].append(self.mean[k] if k >= 0 else 0.0)
            out["scale"].append(self.scale[k] if k >= 0 else 1.0)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data (strings, numbers, lists): for ``torch.load(weights_only=True)`` checkpoints and JSON."""
        return {
            "format": TRANSFORM_FORMAT,
            "mode": self.mode,
            "names": list(self.names),
            "columns": list(self.columns),
            "medians": [float(v) for v in self.medians],
            "mean": [float(v) for v in self.mean],
            "scale": [float(v) for v in self.scale],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HrvTransform:
        if d.get("format") != TRANSFORM_FORMAT:
            raise ValueError(f"HRV transform format {d.get('format')!r}; this version reads {TRANSFORM_FORMAT}")
        if d["mode"] not in MODES:
            raise ValueError(f"HRV transform mode {d['mode']!r}; expected one of {', '.join(MODES)}")
        t = cls(
            mode=str(d["mode"]),
            names=tuple(d["names"]),
            columns=tuple(d["columns"]),
            medians=tuple(float(v) for v in d["medians"]),
            mean=tuple(float(v) for v in d["mean"]),
            scale=tuple(float(v) for v in d["scale"]),
        )
        if not len(t.columns) == len(t.medians) == len(t.mean) == len(t.scale) or set(t.columns) - set(t.names):
            raise ValueError("HRV transform: columns, medians, mean and scale differ in length or name unknown columns")
        return t


def network_input(hrv: np.ndarray, groups: np.ndarray | None, mode: str) -> np.ndarray:
    """What a fusing network takes: the raw features (n, F), z-scored within each subject (``groups``; None: one
    subject) in mode ``subject``; float32, NaN kept (the network imputes them)."""
    X = np.asarray(hrv, dtype=np.float64)
    if mode == "subject" and len(X):
        X = _subject_normalise(X, groups)
    return X.astype(np.float32)


def fit_transform(
    hrv: np.ndarray, groups: np.ndarray, train: np.ndarray, names: list[str] | tuple[str, ...], mode: str
) -> HrvTransform:
    """Fit the transform on the training windows ``train`` (indices into ``hrv`` (n, len(names)) / ``groups``).

    Mode ``subject`` z-scores each subject over its own windows first (every subject's, as the baseline's
    ``subjnorm`` variant does: no labels are used); the columns, medians, means and scales come from the
    training windows only. A :class:`ValueError` when no training window has any HRV feature.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    X = np.asarray(hrv, dtype=np.float64)
    if mode == "subject":
        X = _subject_normalise(X, np.asarray(groups))
    Xt = X[np.asarray(train)]
    cols = np.flatnonzero(np.isfinite(Xt).any(axis=0)) if len(Xt) else np.zeros(0, dtype=np.int64)
    if cols.size == 0:
        raise ValueError("no training window has any finite HRV feature (too few beats, or no beat channel)")
    Xt = Xt[:, cols]
    rows = np.isfinite(Xt).all(axis=1)
    # the baseline's statistics: training windows with every kept column finite (NaN-aware over all training
    # windows in the rare case that none is complete)
    Xt = _log1p_signed(Xt[rows] if rows.any() else Xt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        medians, mean, sd = np.nanmedian(Xt, axis=0), np.nanmean(Xt, axis=0), np.nanstd(Xt, axis=0)
    return HrvTransform(
        mode=mode,
        names=tuple(names),
        columns=tuple(names[i] for i in cols),
        medians=tuple(float(v) for v in medians),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) if v > 0 else 1.0 for v in sd),
    )


def recording_features(rec: Any, starts_s: np.ndarray, window_s: float, hrv_source: str | None) -> np.ndarray:
    """Raw HRV features (n, len(FEATURE_NAMES)) of one recording's windows starting at ``starts_s`` (s on the
    recording's timeline), exactly as :mod:`ape_nas.data.prepare` computes them for training: beats from
    ``hrv_source`` (None: the reader's default), all NaN when none can be found."""
    from ape_nas import hrv

    try:
        return hrv.window_features(*hrv.recording_rr(rec, hrv_source), np.asarray(starts_s), float(window_s))
    except ValueError:
        return np.full((len(starts_s), len(hrv.FEATURE_NAMES)), np.nan)


# ---------------------------------------------------------------------------------------------------------------
# training: the transform of a spec's windows, carried by its network
# ---------------------------------------------------------------------------------------------------------------

#: the attribute of a trained network that holds its fitted :class:`HrvTransform` (a plain attribute, not state)
TRANSFORM_ATTR = "hrv_transform"


def fuses(arch: dict[str, Any]) -> bool:
    """Does a spec's architecture take HRV features (``hrv_fusion`` other than ``none``)?"""
    return arch.get("hrv_fusion", "none") != "none"


def fit_windows(ws: Any, train: np.ndarray, data_cfg: dict[str, Any]) -> HrvTransform:
    """The transform of a ``WindowSet``'s HRV features fitted on its windows ``train``, in the mode that
    ``data.normalize`` calls for (:func:`mode_for`); a one-line UserError when the windows have none."""
    from ape_nas.errors import UserError

    names = list(ws.stats.get("hrv_features") or [])
    if ws.hrv is None or not names:
        raise UserError("arch.hrv_fusion needs the windows' HRV features, but these windows have none")
    try:
        return fit_transform(np.asarray(ws.hrv), np.asarray(ws.groups), train, names, mode_for(data_cfg))
    except ValueError as exc:
        note = ws.stats.get("hrv_note") or "set data.hrv_source to a channel with beats"
        raise UserError(f"arch.hrv_fusion needs HRV features: {exc} ({note})") from None


def transform_of(net: Any) -> HrvTransform | None:
    """The transform attached to a trained network (None: it takes no HRV features)."""
    return getattr(net, TRANSFORM_ATTR, None)


def attach(net: Any, transform: HrvTransform | None) -> Any:
    """Load the fitted statistics into a fusing ``net``'s :class:`~ape_nas.models.heads.FeatureInput` and attach
    the transform (so evaluation and checkpoints know its mode and columns); returns ``net``."""
    if transform is not None and hasattr(net, "feature_input"):
        net.feature_input.load_stats(**transform.stats())
    object.__setattr__(net, TRANSFORM_ATTR, transform)
    return net


def checkpoint_input(ckpt: dict[str, Any], ws: Any) -> np.ndarray | None:
    """The HRV feature input of all of ``ws``'s windows for the network of a plain checkpoint (its
    ``hrv_transform``'s mode), or None when that network takes none (older checkpoints included)."""
    transform = ckpt.get("hrv_transform")
    if not transform:
        return None
    return network_input(np.asarray(ws.hrv), ws.groups, str(transform["mode"]))
