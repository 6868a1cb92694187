"""The reference every sweep reports: HRV features + logistic regression on exactly the sweep's splits.

Features come from the window cache (computed from the raw beats of the same windows, :mod:`ape_nas.hrv`); each
fold fits on its training subjects only and is scored on its validation and test subjects with the deep models'
metric definitions (:func:`ape_nas.metrics.classification_metrics`). A search that does not beat this is visible
in MLflow next to it.

Model (:func:`fit_model`): ``sign(x)·log1p(|x|)`` (HRV powers and SDs are log-normal; the time-domain features
barely change) → ``StandardScaler`` → ``LogisticRegression(class_weight="balanced", C=C)`` (lbfgs, multinomial;
deterministic, ``random_state=seed``). Feature columns that are NaN in every training window (e.g. LF on short
windows) are dropped; training windows with any NaN are dropped; at evaluation, NaNs are imputed with the
training medians so that every window is scored. If the usable training windows hold a single class, that class
is predicted for everything; with none, class probabilities are uniform.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ape_nas.data.prepare import WindowSet
from ape_nas.data.splits import Split, make_splits
from ape_nas.metrics import CLASS_METRICS, classification_metrics

PARTS = ("val", "test")  # the partitions each fold scores


@dataclass
class BaselineResult:
    val: dict[str, float]
    test: dict[str, float]
    folds: list[dict[str, Any]] = field(default_factory=list)
    n_features: int = 0
    note: str = ""
    subject_normalised: dict[str, dict[str, float]] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow: ``hrv_baseline_val_f1_macro``, ``hrv_baseline_test_auroc``, ...

        ``hrv_baseline_subjnorm_*``: the same model on features z-scored within each subject (uses each
        subject's own unlabelled windows, as per-subject signal normalisation does): how much knowing a
        subject's typical HRV is worth.
        """
        parts = {"val": self.val, "test": self.test}
        out = {f"hrv_baseline_{p}_{m}": v for p, d in parts.items() for m, v in d.items() if m in CLASS_METRICS}
        for p, d in self.subject_normalised.items():
            out.update({f"hrv_baseline_subjnorm_{p}_{m}": v for m, v in d.items() if m in CLASS_METRICS})
        return out


# ---------------------------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------------------------


def _log1p_signed(X: np.ndarray) -> np.ndarray:
    return np.sign(X) * np.log1p(np.abs(X))


@dataclass
class HrvModel:
    """Everything fitted on the training windows: used columns, imputation medians, scaler and classifier."""

    columns: np.ndarray  # feature columns used (finite in at least one training window)
    medians: np.ndarray  # imputation values for NaN at evaluation (after the log transform)
    classes: np.ndarray  # classes among the usable training windows
    n_train: int  # usable training windows
    log_transform: bool
    scaler: Any = None  # StandardScaler, None when there is nothing to fit
    model: Any = None  # LogisticRegression, None when there is nothing to fit

    def _transform(self, X: np.ndarray) -> np.ndarray:
        X = X[:, self.columns]
        return _log1p_signed(X) if self.log_transform else X

    def predict_proba(self, X: np.ndarray, num_classes: int) -> np.ndarray:
        """Class probabilities ``(n, num_classes)`` of windows ``X`` (n, all features); NaN → training medians."""
        probs = np.zeros((X.shape[0], num_classes))
        if self.model is not None and X.shape[0]:
            Xe = self._transform(X)
            Xe = np.where(np.isfinite(Xe), Xe, self.medians[None, :])
            probs[:, self.model.classes_] = self.model.predict_proba(self.scaler.transform(Xe))
        elif self.classes.size == 1:
            probs[:, self.classes[0]] = 1.0
        else:
            probs[:] = 1.0 / num_classes
        return probs


def fit_model(
    X_train: np.ndarray, y_train: np.ndarray, seed: int, *, C: float = 1.0, log_transform: bool = True
) -> HrvModel:
    """Fit the HRV baseline on training windows only (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    Xt = np.asarray(X_train, dtype=np.float64)
    yt = np.asarray(y_train).astype(np.int64).ravel()
    if Xt.ndim != 2 or Xt.shape[0] != yt.size:
        raise ValueError(f"X_train must be (n, features) matching y_train: got {Xt.shape} and {yt.shape}")
    cols = np.flatnonzero(np.isfinite(Xt).any(axis=0))
    Xt = Xt[:, cols]
    rows = np.isfinite(Xt).all(axis=1)
    Xt, yt = Xt[rows], yt[rows]
    if log_transform:
        Xt = _log1p_signed(Xt)
    fitted = HrvModel(
        columns=cols,
        medians=np.median(Xt, axis=0) if Xt.shape[0] else np.zeros(len(cols)),
        classes=np.unique(yt),
        n_train=int(yt.size),
        log_transform=log_transform,
    )
    if len(cols) and fitted.classes.size >= 2:
        fitted.scaler = StandardScaler().fit(Xt)
        fitted.model = LogisticRegression(C=C, class_weight="balanced", max_iter=5000, random_state=seed)
        fitted.model.fit(fitted.scaler.transform(Xt), yt)
    return fitted


def score(fitted: HrvModel, X: np.ndarray, y: np.ndarray, num_classes: int) -> dict[str, float]:
    """Metrics of ``fitted`` on windows ``(X, y)``, plus ``n``, ``n_nan``, ``n_train`` and ``n_features``."""
    Xe = np.asarray(X, dtype=np.float64)
    ye = np.asarray(y).astype(np.int64).ravel()
    if Xe.ndim != 2 or Xe.shape[0] != ye.size:
        raise ValueError(f"X must be (n, features) matching y: got {Xe.shape} and {ye.shape}")
    cols = fitted.columns
    nan_rows = ~np.isfinite(Xe[:, cols]).all(axis=1) if len(cols) else np.zeros(ye.size, dtype=bool)
    metrics = classification_metrics(ye, fitted.predict_proba(Xe, num_classes), num_classes)
    metrics.update(
        n=float(ye.size), n_nan=float(nan_rows.sum()), n_train=float(fitted.n_train), n_features=float(len(cols))
    )
    return metrics


def fit_evaluate(
    X_train: np.ndarray,
    y_train: np.ndarray,
    evals: Mapping[str, tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    seed: int,
    *,
    C: float = 1.0,
    log_transform: bool = True,
) -> dict[str, dict[str, float]]:
    """Fit the HRV baseline on training windows and score every evaluation set.

    Returns ``{name: {"f1_macro", "balanced_accuracy", "auroc", "n", "n_nan", "n_train", "n_features"}}``:
    metrics as in :func:`classification_metrics`; ``n`` windows scored, ``n_nan`` of them with at least one NaN
    feature (imputed); ``n_train`` training windows used, ``n_features`` feature columns used.
    """
    fitted = fit_model(X_train, y_train, seed, C=C, log_transform=log_transform)
    results = {}
    for name, (X, y) in evals.items():
        try:
            results[name] = score(fitted, X, y, num_classes)
        except ValueError as exc:
            raise ValueError(f"evals[{name!r}]: {exc}") from None
    return results


# ---------------------------------------------------------------------------------------------------------------
# the sweep's folds
# ---------------------------------------------------------------------------------------------------------------


def hrv_baseline(ws: WindowSet, protocol: dict[str, Any], seed: int) -> BaselineResult | None:
    """Fit and score the HRV baseline on every fold of ``protocol``; None when no window has HRV features."""
    from ape_nas.hrv import subject_normalise

    if ws.hrv is None or not np.isfinite(ws.hrv).any():
        return None
    splits = make_splits(protocol, ws.subjects)
    hrv = np.asarray(ws.hrv)
    folds = _run_folds(ws, hrv, splits, seed)
    normed = _run_folds(ws, subject_normalise(hrv, ws.groups), splits, seed)
    mean = _mean(folds)
    return BaselineResult(
        val=mean["val"],
        test=mean["test"],
        folds=folds,
        n_features=int(folds[0]["val"].get("n_features", 0)),
        note=ws.stats.get("hrv_note", ""),
        subject_normalised=_mean(normed),
    )


def fold_models(ws: WindowSet, hrv: np.ndarray, splits: list[Split], seed: int) -> list[HrvModel]:
    """One model per fold, each fitted on that fold's training subjects' windows only."""
    models = []
    for split in splits:
        train = ws.indices(split.train)
        models.append(fit_model(hrv[train], ws.y[train], seed))
    return models


def _run_folds(ws: WindowSet, hrv: np.ndarray, splits: list[Split], seed: int) -> list[dict[str, Any]]:
    folds = []
    for k, (split, fitted) in enumerate(zip(splits, fold_models(ws, hrv, splits, seed), strict=True)):
        scores = {}
        for p in PARTS:
            idx = ws.indices(getattr(split, p))
            scores[p] = score(fitted, hrv[idx], ws.y[idx], len(ws.class_names))
        folds.append({"fold": k, **scores})
    return folds


def _mean(folds: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    keys = (*CLASS_METRICS, "n", "n_nan")
    return {p: {m: float(np.mean([f[p][m] for f in folds])) for m in keys} for p in PARTS}
