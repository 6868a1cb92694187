"""The PNGs of ``explain``: a window with its saliency as colour bands beneath it and its beats marked, and the
beat-synchronous view (mean beat and mean relevance over the cardiac cycle, per class and method)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.explain.beatsync import BeatProfile

LABELS = {
    "gradcam": "Grad-CAM",
    "integrated_gradients": "Integrated Gradients",
    "occlusion": "Occlusion",
    "gradient": "gradient",
    "prototypes": "prototypes",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _band(values: np.ndarray) -> tuple[np.ndarray, float, float, str]:
    """A map as one colour row: signed maps on a diverging scale centred on 0, non-negative ones on a sequential."""
    v = np.asarray(values, dtype=float)
    top = float(np.max(np.abs(v))) or 1.0
    if (v < 0).any():
        return v[None, :], -top, top, "RdBu_r"
    return v[None, :], 0.0, top, "magma"


def window_figure(
    signal: np.ndarray,
    maps: dict[str, np.ndarray],
    beats: np.ndarray,
    rate: float,
    title: str,
    path: Path,
    cue: np.ndarray | None = None,
    channel: str = "signal",
) -> Path:
    """One window: the signal (beats as dots, a planted cue shaded) and one colour band per method beneath it."""
    plt = _pyplot()
    t = np.arange(len(signal)) / rate
    rows = 1 + len(maps)
    fig, axes = plt.subplots(
        rows, 1, figsize=(11, 2.2 + 0.55 * len(maps)), sharex=True, gridspec_kw={"height_ratios": [4] + [1] * len(maps)}
    )
    ax = axes[0]
    ax.plot(t, signal, lw=0.8, color="black")
    if len(beats):
        at = np.clip(np.round(beats).astype(int), 0, len(signal) - 1)
        ax.plot(beats / rate, signal[at], "o", ms=3, color="tab:red", label="detected beats")
    if cue is not None and cue.any():
        ax.fill_between(t, 0, 1, where=cue, transform=ax.get_xaxis_transform(), color="tab:green", alpha=0.15, lw=0)
        ax.plot([], [], color="tab:green", alpha=0.3, lw=6, label="planted cue")
    ax.set_ylabel(channel)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7)
    for ax, (method, values) in zip(axes[1:], maps.items(), strict=True):
        img, lo, hi, cmap = _band(values)
        ax.imshow(img, aspect="auto", cmap=cmap, vmin=lo, vmax=hi, extent=(t[0], t[-1] + 1 / rate, 0, 1))
        ax.set_yticks([])
        ax.set_ylabel(LABELS.get(method, method), rotation=0, ha="right", va="center", fontsize=8)
    axes[-1].set_xlabel("time in window (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def beat_figure(profiles: dict[str, BeatProfile], title: str, path: Path) -> Path:
    """Columns: methods. Top row: the mean beat per class; bottom row: the mean relevance over the cycle."""
    plt = _pyplot()
    methods = list(profiles)
    fig, axes = plt.subplots(2, len(methods), figsize=(3.4 * len(methods), 5), sharex="col", squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, method in enumerate(methods):
        prof = profiles[method]
        x = prof.ms if np.isfinite(prof.median_rr_s) else prof.phase
        for k, cls in enumerate(sorted(prof.saliency)):
            c = colours[k % len(colours)]
            axes[0, j].plot(x, prof.signal[cls], color=c, lw=1.2, label=f"{cls} ({prof.beats[cls]} beats)")
            axes[1, j].plot(x, prof.saliency[cls], color=c, lw=1.2)
        for ax in axes[:, j]:
            ax.axvline(0.0, color="grey", lw=0.6, ls=":")
        axes[1, j].axhline(1.0, color="grey", lw=0.6, ls="--")
        axes[0, j].set_title(
            f"{LABELS.get(method, method)}\nphase-locked {prof.phase_locking:.2f}, between beats "
            f"{prof.between_beats:.2f}",
            fontsize=8,
        )
        axes[1, j].set_xlabel("ms from beat peak" if np.isfinite(prof.median_rr_s) else "fraction of interval")
        axes[0, j].legend(fontsize=7)
    axes[0, 0].set_ylabel("mean beat (z)")
    axes[1, 0].set_ylabel("relevance (1 = window mean)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curves_figure(curves: dict[str, dict[str, np.ndarray]], title: str, path: Path) -> Path:
    """Deletion and insertion curves per method (mean over windows), salient order against random order.

    ``curves[method]`` holds ``fraction``, ``deletion``, ``deletion_random``, ``insertion``, ``insertion_random``
    (each (steps,), the mean target probability)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (method, c) in enumerate(curves.items()):
        col = colours[k % len(colours)]
        for ax, kind in zip(axes, ("deletion", "insertion"), strict=True):
            ax.plot(c["fraction"], c[kind], color=col, lw=1.4, label=LABELS.get(method, method))
            ax.plot(c["fraction"], c[f"{kind}_random"], color=col, lw=0.9, ls=":")
    for ax, kind in zip(axes, ("deletion (lower is better)", "insertion (higher is better)"), strict=True):
        ax.set_title(kind, fontsize=9)
        ax.set_xlabel("fraction of the window removed / restored (most salient first; dotted: random order)")
    axes[0].set_ylabel("probability of the explained class")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
