"""``explain --evaluate``: how far each method's maps can be trusted, measured on the explained windows.

* deletion / insertion (:func:`ape_nas.explain.faithfulness.faithfulness`): most salient segments removed (by
  linear interpolation across them, which keeps a 1-D signal on its manifold) or restored first, against a random
  segment order; every window explained.
* the cascading model-parameter randomisation (Adebayo et al. 2018) on at most ``RANDOMISATION_WINDOWS`` windows
  (it re-explains the network once per parameterised layer), with the model-independent ``edge`` control;
* localisation against a planted cue, on the windows that contain one (synthetic ``cue``), with the random-map row;
* Quantus' versions where they accept (channels, time) windows with our perturbation (region perturbation, pixel
  flipping, faithfulness correlation, relevance mass/rank, pointing game, MPRT; :mod:`quantus_metrics`) on at
  most ``QUANTUS_WINDOWS`` windows, as a cross-check in the JSON.

Intervals: mean over windows with a 95 % bootstrap interval that resamples subjects (a subject's windows are not
independent). The printed table keeps the columns a reader decides with; ``faithfulness.json`` holds them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

RANDOMISATION_WINDOWS = 24
QUANTUS_WINDOWS = 24
SHOWN = {  # column → header of the printed table
    "deletion_auc": "deletion AUC ↓",
    "deletion_gain": "vs random ↑",
    "insertion_auc": "insertion AUC ↑",
    "insertion_gain": "vs random ↑",
    "randomisation_rank_corr": "ρ randomised ↓",
    "mass_on_mask": "mass on cue ↑",
    "mask_fraction": "(chance)",
    "pointing_game": "pointing ↑",
}


def _subset(n: int, k: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int))


def evaluate_methods(
    net: Any,
    w: Any,
    ex: Any,
    *,
    layer: str | None,
    seed: int,
    stage: Path,
    title: str,
    console: Any = None,
) -> dict[str, Any]:
    """Every measure for every method of ``ex`` on the windows ``w``; writes ``faithfulness.json`` and
    ``faithfulness.png`` into ``stage``. Returns ``{"rows", "record", "table"}``."""
    import json

    import torch

    from ape_nas.explain import faithfulness as F
    from ape_nas.explain.plots import curves_figure
    from ape_nas.explain.quantus_metrics import NOT_USED, quantus_localisation, quantus_scores
    from ape_nas.explain.saliency import attribute

    x = torch.from_numpy(w.X)
    target = torch.as_tensor(ex.target, dtype=torch.long)
    feats = None if w.features is None else torch.from_numpy(w.features)
    status = console.status if console is not None else None

    def step(text: str) -> Any:
        from contextlib import nullcontext

        return status(f"explain --evaluate: {text}") if status else nullcontext()

    curves: dict[str, Any] = {}
    with step(f"deletion and insertion of {len(w)} windows"):
        per_window = F.faithfulness(net, x, target, ex.maps, seed=seed, features=feats, curves=curves)
    sub = _subset(len(w), RANDOMISATION_WINDOWS)
    f_sub = None if feats is None else feats[sub]

    def explainer(method: str) -> Any:
        def fn(n: Any, xx: Any, tt: Any) -> np.ndarray:
            return attribute(n, xx, tt, method, layer=layer, features=f_sub, rate=w.rate_hz)

        return fn

    with step(f"parameter randomisation ({len(sub)} windows)"):
        rand = F.randomisation_scores(net, x[sub], target[sub], {m: explainer(m) for m in ex.methods}, seed=seed)
    rand_full = {m: {k: _spread(v, sub, len(w)) for k, v in r.items()} for m, r in rand.items()}
    results = F.merge(per_window, rand_full)
    localised = None
    if w.cue is not None:
        has = np.flatnonzero(w.cue.any(axis=1))
        if len(has):
            with step(f"localisation on {len(has)} windows with a planted cue"):
                loc = F.localisation_scores({m: v[has] for m, v in ex.maps.items()}, w.cue[has], seed=seed)
            results = F.merge(results, {m: {k: _spread(v, has, len(w)) for k, v in r.items()} for m, r in loc.items()})
            localised = len(has)
    q_sub = _subset(len(w), QUANTUS_WINDOWS)
    with step(f"Quantus cross-check ({len(q_sub)} windows)"):
        quantus = quantus_scores(net, x[q_sub], target[q_sub], {m: v[q_sub] for m, v in ex.maps.items()}, seed=seed)
        quantus = {m: {k: _spread(v, q_sub, len(w)) for k, v in r.items()} for m, r in quantus.items()}
        if localised:  # Quantus' localisation metrics on the windows that hold a planted cue
            has = np.flatnonzero(w.cue.any(axis=1))[:QUANTUS_WINDOWS]
            q_loc = {
                m: {
                    k: _spread(v, has, len(w))
                    for k, v in quantus_localisation(x[has], target[has], maps[has], w.cue[has]).items()
                }
                for m, maps in ex.maps.items()
            }
            quantus = F.merge(quantus, q_loc)
    groups = np.asarray(w.subjects)
    table = F.summary_table(results, groups=groups, seed=seed)
    q_table = F.summary_table(quantus, groups=groups, seed=seed)
    rows = [{"method": m, **cells} for m, cells in table.items()]
    mean_curves = {
        m: {
            "fraction": c.fraction.mean(axis=0),
            "deletion": c.deletion.mean(axis=0),
            "insertion": c.insertion.mean(axis=0),
            "deletion_random": curves[F.RANDOM].deletion.mean(axis=0),
            "insertion_random": curves[F.RANDOM].insertion.mean(axis=0),
        }
        for m, c in curves.items()
        if m != F.RANDOM
    }
    png = curves_figure(mean_curves, f"deletion and insertion — {title}", stage / "faithfulness.png")
    record = {
        "windows": len(w),
        "subjects": sorted(set(w.subjects)),
        "randomisation_windows": len(sub),
        "localisation_windows": localised,
        "quantus_windows": len(q_sub),
        "interval": "mean over windows, 95 % bootstrap interval resampling subjects",
        "directions": F.DIRECTIONS,
        "rows": rows,
        "quantus": [{"method": m, **cells} for m, cells in q_table.items()],
        "quantus_not_used": NOT_USED,
        "curves": {m: {k: np.round(v, 4).tolist() for k, v in c.items()} for m, c in mean_curves.items()},
        "per_window": {m: {k: _json_floats(v) for k, v in r.items()} for m, r in results.items()},
        "figure": str(png.relative_to(stage)),
    }
    (stage / "faithfulness.json").write_text(json.dumps(record, indent=1) + "\n")
    return {"rows": rows, "record": record, "table": table}


def _spread(values: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    """Per-window values of a subset, as an array over all windows (NaN elsewhere: left out of the summary)."""
    out = np.full(n, np.nan)
    out[idx] = values
    return out


def _json_floats(values: np.ndarray) -> list[float | None]:
    return [round(float(v), 5) if np.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def print_table(rows: list[dict[str, Any]], title: str, console: Any) -> None:
    """The columns of :data:`SHOWN` that any row has: ``mean [low, high]`` with two decimals."""
    import math

    from rich.table import Table

    cols = [c for c in SHOWN if any(c in r for r in rows)]
    table = Table(title=title)
    table.add_column("method")
    for c in cols:
        table.add_column(SHOWN[c], justify="right")

    def cell(iv: dict[str, float] | None) -> str:
        if iv is None or not math.isfinite(iv["point"]):
            return "—"
        return f"{iv['point']:.2f} [{iv['low']:.2f}, {iv['high']:.2f}]"

    for r in rows:
        table.add_row(r["method"], *(cell(r.get(c)) for c in cols))
    console.print(table)
