"""Time of ``ape-nas explain`` on 100 windows of a small CNN (issue 13), on this machine's cores.

    python benchmarks/explain_time.py [--windows 100] [--threads N]

The network is the transfer experiments' CNN (``cnn1d``, 29k parameters; ``benchmarks/transfer_time.py``) on one
PPG channel of 30-s windows at 32 Hz (960 samples), the shape of the Stress-Predict results. The windows are
generated PPG (``synthetic``, 6 subjects), beats detected on the recordings as ``explain`` does. Measured, in one
run: the prediction of the windows (the baseline every time is divided by), the four Captum methods, the
beat-synchronous profiles, 12 per-window PNGs, the beat PNG and ``explain.json`` — what ``ape-nas explain`` does
after reading the data — and, separately, ``--evaluate`` (deletion/insertion, randomisation on 24 windows,
Quantus on 24). Timing does not depend on the weights, so the network is freshly initialised (seeded).
The issue's target: explain (without --evaluate) on 100 windows under 30 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _report import report

from ape_nas.data.synthetic import generate
from ape_nas.explain.command import draw, explain_windows, window_records
from ape_nas.explain.evaluate import evaluate_methods
from ape_nas.explain.saliency import METHODS
from ape_nas.explain.windows import Windows
from ape_nas.hrv.beats import detect_beats
from ape_nas.models import build_model

ARCH = {"depth": 4, "width": 16, "growth": 1.5, "kernel_size": 9, "pool": 2, "dropout": 0.2, "hrv_fusion": "none"}
RATE, WINDOW_S = 32.0, 30.0
TARGET_S = 30.0


def windows(n: int) -> Windows:
    bench = generate(subjects=6, minutes_per_state=4.0, fs=64.0, ppg=True, cohort="typical", seed=5)
    length = int(RATE * WINDOW_S)
    X, labels, subjects, index, starts, beats = [], [], [], [], [], []
    per_subject = int(np.ceil(n / len(bench.subjects)))
    for rec in bench.subjects:
        ppg = rec.signals["ppg"][::2].astype(np.float32)  # 64 → 32 Hz
        beat_s = detect_beats(rec.signals["ppg"], 64.0, "ppg")
        for j in range(per_subject):
            a = j * length // 2
            if a + length > len(ppg):
                break
            w = ppg[a : a + length]
            X.append((w - w.mean()) / (w.std() or 1.0))
            labels.append(int(rec.labels[min(len(rec.labels) - 1, int(a * 2 + length))]))
            subjects.append(rec.subject)
            index.append(j)
            starts.append(a / RATE)
            inside = beat_s[(beat_s >= a / RATE) & (beat_s < (a + length) / RATE)]
            beats.append((inside - a / RATE) * RATE)
    keep = slice(0, n)
    return Windows(
        X=np.stack(X)[keep, None, :],
        labels=np.maximum(np.asarray(labels), 0)[keep],
        subjects=subjects[keep],
        index=np.asarray(index)[keep],
        starts_s=np.asarray(starts)[keep],
        beats=beats[keep],
        features=None,
        cue=None,
        rate_hz=RATE,
        channels=["ppg"],
        beat_channel="ppg",
        data="synthetic",
        reader="synthetic",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, = the cores)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = build_model("cnn1d", 1, 2, **ARCH).eval()
    w = windows(args.windows)
    x = torch.from_numpy(w.X)
    with torch.no_grad():
        net(x[:4])  # warm-up
        t0 = time.perf_counter()
        net(x)
        predict_s = time.perf_counter() - t0
    names = ["baseline", "stress"]
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        t0 = time.perf_counter()
        ex = explain_windows(net, w, list(METHODS), None, "predicted")
        t_maps = time.perf_counter() - t0
        drawn = draw(stage, w, ex, names, "benchmark", 12)
        (stage / "explain.json").write_text(json.dumps({"windows": window_records(w, ex, names), **drawn}))
        explain_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        evaluate_methods(net, w, ex, layer=None, seed=0, stage=stage, title="benchmark")
        evaluate_s = time.perf_counter() - t1
    result = {
        "network": f"cnn1d {ARCH}, {sum(p.numel() for p in net.parameters())} parameters",
        "windows": len(w),
        "window_samples": int(w.X.shape[2]),
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "predict_s": round(predict_s, 4),
        "seconds_per_method": {m: round(s, 3) for m, s in ex.seconds.items()},
        "maps_s": round(t_maps, 3),
        "explain_s": round(explain_s, 3),
        "explain_ratio_to_predict": round(explain_s / predict_s, 1),
        "evaluate_s": round(evaluate_s, 3),
        "evaluate_ratio_to_predict": round(evaluate_s / predict_s, 1),
        "target": f"explain on {args.windows} windows under {TARGET_S:g} s",
        "meets_target": explain_s < TARGET_S,
    }
    report("explain_time", result)


if __name__ == "__main__":
    main()
