"""Pareto fronts of multi-objective studies: the trials no other trial beats on every objective.

A study with ``objective.metrics: [balanced_accuracy, latency_ms]`` has no single best trial but a front: each
point is the most accurate network for its cost. The front here is exactly Optuna's ``study.best_trials`` (the
non-dominated complete trials; a trial dominates another when it is at least as good on every objective and
strictly better on one, so trials with equal values are all on the front), computed from backend-neutral
:class:`~ape_nas.backends.base.TrialRecord` values so ``status``/``best`` need no study object. Trials rejected
before training never complete and are never on a front. Plain Python; matplotlib only for :func:`figure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ape_nas.backends.base import TrialRecord


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """Is ``a`` at least as good as ``b`` on every objective and better on at least one?"""
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    x = [s * v for s, v in zip(signs, a, strict=True)]
    y = [s * v for s, v in zip(signs, b, strict=True)]
    return all(p <= q for p, q in zip(x, y, strict=True)) and any(p < q for p, q in zip(x, y, strict=True))


def front(records: Sequence[TrialRecord], directions: Sequence[str]) -> list[TrialRecord]:
    """The non-dominated complete trials, best first objective first (then trial number)."""
    done = [r for r in records if r.state == "complete" and r.values is not None and len(r.values) == len(directions)]
    out = [r for r in done if not any(dominates(o.values, r.values, directions) for o in done if o is not r)]
    sign = -1.0 if directions[0] == "maximize" else 1.0
    return sorted(out, key=lambda r: (sign * r.values[0], r.number))


def payload(points: Sequence[TrialRecord], objectives: Sequence[str], metric: str) -> list[dict[str, Any]]:
    """The front as plain data (``pareto.json``, ``status --json``): trial, each objective, cost, test score."""
    out = []
    for r in points:
        test = (r.attrs.get("test_metrics") or {}).get(f"test_{metric}")
        out.append(
            {
                "trial": r.number,
                "values": dict(zip(objectives, r.values or [], strict=False)),
                "cost": r.attrs.get("cost") or {},
                f"test_{metric}": test,
                "model": r.model,
                "run_id": r.run_id,
            }
        )
    return out


LABELS = {"params": "parameters", "macs": "MACs per window", "latency_ms": "latency (ms, batch 1, onnxruntime)"}


def figure(
    records: Sequence[TrialRecord],
    objectives: Sequence[str],
    directions: Sequence[str],
    *,
    baseline: float | None = None,
    title: str = "",
) -> Any:
    """The first objective against each further one: every complete trial, the front joined as a step line, and
    the HRV baseline's validation score as a horizontal reference line (when given)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = front(records, directions)
    done = [r for r in records if r.state == "complete" and r.values is not None and len(r.values) == len(objectives)]
    n = max(1, len(objectives) - 1)
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 4.5), squeeze=False)
    for k, ax in enumerate(axes[0], start=1):
        ax.scatter([r.values[k] for r in done], [r.values[0] for r in done], s=18, c="0.7", label="trials")
        by_cost = sorted(pts, key=lambda r: r.values[k])
        xs, ys = [r.values[k] for r in by_cost], [r.values[0] for r in by_cost]
        ax.step(xs, ys, where="post", c="C0", lw=1)
        ax.scatter(xs, ys, s=30, c="C0", label="Pareto front", zorder=3)
        for r in by_cost:
            ax.annotate(
                str(r.number), (r.values[k], r.values[0]), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
        if baseline is not None:
            ax.axhline(baseline, ls="--", c="C3", lw=1, label=f"HRV baseline (val {baseline:.3f})")
        values = [r.values[k] for r in done]
        if values and min(values) > 0 and max(values) / min(values) > 30:
            ax.set_xscale("log")
        ax.set_xlabel(LABELS.get(objectives[k], objectives[k]))
        ax.set_ylabel(f"val {objectives[0]}")
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
