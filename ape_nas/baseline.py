"""The reference every sweep reports: HRV features + logistic regression on exactly the sweep's splits.

Features come from the window cache (computed from the raw beats of the same windows); each fold fits on its
training subjects and is scored on its validation and test subjects with the deep models' metric definitions.
A search that does not beat this is visible in MLflow next to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ape_nas.data.prepare import WindowSet
from ape_nas.data.splits import make_splits

METRICS = ("f1_macro", "balanced_accuracy", "auroc")


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
        out = {f"hrv_baseline_{p}_{m}": v for p, d in parts.items() for m, v in d.items() if m in METRICS}
        for p, d in self.subject_normalised.items():
            out.update({f"hrv_baseline_subjnorm_{p}_{m}": v for m, v in d.items() if m in METRICS})
        return out


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


def _run_folds(ws: WindowSet, hrv: np.ndarray, splits: list[Any], seed: int) -> list[dict[str, Any]]:
    from ape_nas.hrv import fit_evaluate

    folds = []
    for k, split in enumerate(splits):
        idx = {p: ws.indices(getattr(split, p)) for p in ("train", "val", "test")}
        evals = {p: (hrv[idx[p]], ws.y[idx[p]]) for p in ("val", "test")}
        scores = fit_evaluate(hrv[idx["train"]], ws.y[idx["train"]], evals, num_classes=len(ws.class_names), seed=seed)
        folds.append({"fold": k, **scores})
    return folds


def _mean(folds: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {p: {m: float(np.mean([f[p][m] for f in folds])) for m in (*METRICS, "n", "n_nan")} for p in ("val", "test")}
