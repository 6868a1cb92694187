"""Transfer results: per protocol, method and K the mean over repeats of the pooled test metric, with a
subject-bootstrap interval, the per-subject values, the trained-parameter count and the adaptation time; the
curve (metric vs K, one line per method) as a figure. No torch.

The interval resamples *test subjects* (with replacement, all their windows): each bootstrap draw scores every
repeat on the drawn subjects that repeat tested and averages over repeats, exactly as the point estimate is made.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.metrics import classification_metrics
from ape_nas.stats import DEFAULT_BOOT, DEFAULT_LEVEL
from ape_nas.transfer.run import Outcome

METRIC = "balanced_accuracy"


def balanced_accuracy(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Macro recall over the classes present in the targets or the predictions (as :mod:`ape_nas.metrics`)."""
    recalls = []
    for c in range(k):
        pos = y == c
        if pos.any() or (pred == c).any():
            recalls.append(float((pred[pos] == c).mean()) if pos.any() else 0.0)
    return float(np.mean(recalls)) if recalls else float("nan")


def repeat_groups(outcomes: list[Outcome]) -> list[list[Outcome]]:
    """The outcomes of one method and K grouped by repeat (a personalise repeat has one outcome per subject)."""
    by: dict[int, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by[o.repeat].append(o)
    return [by[r] for r in sorted(by)]


def _repeat_table(group: list[Outcome]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    table: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for o in group:
        table.update(o.test)
    return table


def _score(tables: list[dict[str, tuple[np.ndarray, np.ndarray]]], draw: Sequence[str], k: int) -> float:
    values = []
    for table in tables:
        picked = [table[s] for s in draw if s in table]
        if picked:
            y = np.concatenate([p[0] for p in picked])
            pred = np.concatenate([p[1] for p in picked]).argmax(axis=1)
            values.append(balanced_accuracy(y, pred, k))
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def summarise(
    outcomes: list[Outcome], k_classes: int, n_boot: int = DEFAULT_BOOT, level: float = DEFAULT_LEVEL, seed: int = 0
) -> dict[str, Any]:
    """One cell of the results table (one protocol, method and K)."""
    tables = [_repeat_table(g) for g in repeat_groups(outcomes)]
    subjects = sorted({s for t in tables for s in t})
    point = _score(tables, subjects, k_classes)
    rng = np.random.default_rng(seed)
    boots = [
        _score(tables, [subjects[i] for i in rng.integers(0, len(subjects), len(subjects))], k_classes)
        for _ in range(n_boot)
    ]
    finite = [b for b in boots if math.isfinite(b)]
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha]) if finite else (math.nan, math.nan)
    others: dict[str, list[float]] = defaultdict(list)
    for table in tables:
        y = np.concatenate([v[0] for v in table.values()])
        p = np.concatenate([v[1] for v in table.values()])
        for name, value in classification_metrics(y, p, k_classes).items():
            others[name].append(value)
    per_subject = {
        s: float(np.mean([balanced_accuracy(t[s][0], t[s][1].argmax(axis=1), k_classes) for t in tables if s in t]))
        for s in subjects
    }
    first = outcomes[0]
    return {
        "protocol": first.protocol,
        "method": first.method,
        "k": first.k,
        METRIC: {
            "point": point,
            "low": min(float(low), point),
            "high": max(float(high), point),
            "level": level,
            "n_subjects": len(subjects),
            "n_boot": n_boot,
        },
        "mean_over_repeats": {name: float(np.mean(v)) for name, v in others.items()},
        "repeats": len(tables),
        "per_subject": per_subject,
        "test_windows": int(np.mean([sum(len(v[0]) for v in t.values()) for t in tables])),
        "trained_parameters": int(first.trained_parameters),
        "seconds_per_adaptation": float(np.mean([o.seconds for o in outcomes])),
    }


def results_table(outcomes: list[Outcome], k_classes: int, n_boot: int = DEFAULT_BOOT) -> list[dict[str, Any]]:
    cells: dict[tuple[str, str, int], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        cells[(o.protocol, o.method, o.k)].append(o)
    return [summarise(group, k_classes, n_boot) for group in cells.values()]


def calibration_record(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """Which windows calibrated each episode (once per protocol, K and repeat: every method used the same)."""
    seen, rows = set(), []
    for o in outcomes:
        key = (o.protocol, o.k, o.repeat, tuple(o.calibration))
        if key not in seen:
            seen.add(key)
            rows.append(
                {
                    "protocol": o.protocol,
                    "k": o.k,
                    "repeat": o.repeat,
                    "calibration_starts_s": o.calibration,
                    "test_subjects": list(o.test),
                }
            )
    return rows


def figure(rows: list[dict[str, Any]], k_classes: int, title: str) -> Any:
    """Balanced accuracy vs K (log axis), one line per method with its interval, one panel per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = list(dict.fromkeys(r["protocol"] for r in rows))
    fig, axes = plt.subplots(1, len(protocols), figsize=(6.2 * len(protocols), 4.4), squeeze=False, sharey=True)
    for ax, protocol in zip(axes[0], protocols, strict=True):
        mine = [r for r in rows if r["protocol"] == protocol]
        for i, method in enumerate(dict.fromkeys(r["method"] for r in mine)):
            pts = sorted((r for r in mine if r["method"] == method), key=lambda r: r["k"])
            ks = np.array([r["k"] for r in pts], dtype=float) * (1.0 + 0.03 * (i - 2))  # small dodge
            mid = np.array([r[METRIC]["point"] for r in pts])
            err = np.array([[m - r[METRIC]["low"], r[METRIC]["high"] - m] for m, r in zip(mid, pts, strict=True)]).T
            style = {"ls": "--", "color": "black"} if method == "source" else {}
            ax.errorbar(ks, mid, yerr=err, marker="o", ms=4, capsize=3, lw=1.4, label=method, **style)
        ax.axhline(1.0 / k_classes, color="grey", lw=0.8, ls=":", label="chance")
        ax.set_xscale("log")
        ks_all = sorted({r["k"] for r in mine})
        ax.set_xticks(ks_all, [str(k) for k in ks_all])
        ax.set_xlabel("labelled windows per class (K)")
        ax.set_title(protocol)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("balanced accuracy (test windows)")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(rows: list[dict[str, Any]], k_classes: int, title: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig = figure(rows, k_classes, title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
