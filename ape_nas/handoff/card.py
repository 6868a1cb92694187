"""The model card of a bundle (``model_card.md``): what the model is, what it was trained and tested on, how well
it did per subject, how it compares with the HRV baseline, and what it was not tested for. No torch.

Everything in the card comes from ``bundle.json``, ``preprocessing.json`` and ``metrics.json`` of the same bundle
(written by :mod:`ape_nas.handoff.export`), so the card never claims more than the checks measured.
"""

from __future__ import annotations

from typing import Any

METRIC_NAMES = ("f1_macro", "balanced_accuracy", "auroc")


def _f(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _subject_table(per_subject: dict[str, Any], pooled: dict[str, Any], names: list[str]) -> list[str]:
    head = ["subject", "windows", *(f"{c} windows" for c in names), "F1 macro", "balanced acc.", "AUROC", "accuracy"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for subject, m in [*per_subject.items(), ("**pooled**", pooled)]:
        cells = [
            subject,
            str(m["windows"]),
            *map(str, m["counts"]),
            _f(m["f1_macro"]),
            _f(m["balanced_accuracy"]),
            _f(m["auroc"]),
            _f(m["accuracy"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _confusion(cm: list[list[int]], names: list[str]) -> list[str]:
    lines = ["| true \\ predicted | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for name, row in zip(names, cm, strict=True):
        total = sum(row) or 1
        lines.append(f"| {name} | " + " | ".join(f"{v} ({100 * v / total:.0f} %)" for v in row) + " |")
    return lines


def _degenerate(cm: list[list[int]], names: list[str]) -> list[str]:
    """A warning when the model never predicts some class on the test subjects."""
    predicted = [sum(row[j] for row in cm) for j in range(len(names))]
    never = [c for c, n in zip(names, predicted, strict=True) if n == 0]
    if not never:
        return []
    return [
        f"**Warning: on the test subjects the model never predicts {', '.join(never)}** "
        "— it has not learnt to separate the classes there.",
        "",
    ]


def _spread(per_subject: dict[str, Any], metric: str) -> str:
    values = [m[metric] for m in per_subject.values() if m.get(metric) is not None]
    if not values:
        return "n/a"
    return f"{min(values):.3f}–{max(values):.3f}" if len(values) > 1 else f"{values[0]:.3f} (one subject)"


def render_card(info: dict[str, Any], prep: dict[str, Any], metrics: dict[str, Any]) -> str:
    src, spec, checks = info["source"], info["spec"], metrics["checks"]
    names = list(prep["class_names"])
    data = spec["data"]
    split = metrics["split"]
    counts = metrics["windows_per_subject"]
    val, test = metrics["validation"], metrics["test"]
    metric = spec["training"].get("metric", "f1_macro")
    lat = metrics["latency_ms"]
    dyn = bool(prep["input"].get("accepts_other_lengths"))
    lengths = checks["onnx_other_lengths"]["lengths"]
    synthetic = data.get("benchmark") == "synthetic"
    protocol = spec["protocol"]
    n_classes = len(names)
    arch = ", ".join(f"{k}={v}" for k, v in spec["arch"].items())

    L: list[str] = [f"# Model card: {info['title']}", ""]
    L += [
        f"Exported {info['created']} from MLflow run `{src['run_id']}` ({src['how']}; tracking URI "
        f"`{src['tracking_uri']}`). Spec digest `{info['spec_digest']}`, data fingerprint `{info['data_fingerprint']}`"
        + (f", code commit `{src['git_commit']}`" if src.get("git_commit") else "")
        + ".",
        "",
        "| | |",
        "|---|---|",
        f"| model family | `{spec['model']}` ({arch or 'defaults'}) |",
        f"| parameters | {metrics['parameters']:,} |",
        f"| task | {n_classes}-class window classification: {', '.join(names)} |",
        f"| input | `{prep['input']['name']}` float32 {prep['input']['shape']} = (batch, channels "
        f"{', '.join(prep['channels'])}, time); {prep['window_s']:g} s windows at {prep['rate_hz']:g} Hz = "
        f"{prep['window_samples']} samples |",
        f"| output | `{prep['output']['name']}` float32 (batch, {n_classes}): softmax probabilities in the order "
        f"{', '.join(names)} |",
        f"| files | `model.onnx` (opset {checks['onnx_export']['opset']}, onnxruntime), `model.ts` (TorchScript), "
        "`preprocessing.json` (exact preprocessing), `metrics.json` (all numbers of this card) |",
        f"| trained | best epoch {info.get('best_epoch')} of at most {spec['training'].get('max_epochs')}, selected "
        f"on validation {metric}; seed {spec['seed']} |",
        "",
        "## Intended use",
        "",
        f"Research prototype: estimates, per {prep['window_s']:g}-s window of a recording, the probability of each "
        f"state ({', '.join(names)}) from {', '.join(prep['channels'])}. Use it to compare states within and "
        "between recordings made like the training data. It is **not** a medical device and was not evaluated for "
        "diagnosis, for decisions about individuals, or in real time.",
        "",
        "## Data and subjects",
        "",
        f"- Data set: `{data.get('benchmark')}` with parameters `{data.get('params')}`"
        + (
            " — **simulated** ECG (ape-nas's synthetic cardiac-affect generator), not recordings of people."
            if synthetic
            else "."
        ),
        f"- Channels {', '.join(prep['channels'])} at {prep['rate_hz']:g} Hz, band-pass {prep['bandpass_hz']} Hz, "
        f"normalisation `{prep['normalize']}`, windows {prep['window_s']:g} s every {prep['stride_s']:g} s, labels "
        f"kept when ≥ {100 * prep['label_purity']:.0f} % of a window is one class "
        "(full pipeline: `preprocessing.json`).",
    ]
    for part in ("train", "val", "test"):
        ids = split[part]
        n = sum(counts.get(s, 0) for s in ids)
        L.append(f"- {part} subjects ({len(ids)}, {n} windows): {', '.join(f'{s} ({counts.get(s, 0)})' for s in ids)}")
    L += [
        "",
        "## Protocol",
        "",
        f"Subject-independent `{protocol['kind']}` split (seed {protocol.get('seed')}): no subject appears in two "
        "partitions. The architecture search trained on the train subjects, chose this model by its validation "
        f"{metric}, and scored the test subjects once with the weights of the best epoch; test subjects never "
        "influenced training or selection.",
    ]
    if src.get("fold") is not None:
        L += [
            "",
            f"**Multi-fold trial ({src['folds']} folds): this bundle holds the fold-0 model only** "
            f"(`{src['checkpoint_artifact']}`). The trial's search score averaged all folds; the numbers below are "
            "fold 0's.",
        ]
    L += [
        "",
        "## Results",
        "",
        "Recomputed at export by running the exported network on the training pipeline's windows of each subject "
        "(metric definitions of training: macro F1, balanced accuracy = macro recall, macro one-vs-rest AUROC; a "
        "subject with windows of only one class has no AUROC: n/a).",
        "",
        "### Validation subjects (used to select the model: optimistic)",
        "",
        *_subject_table(val["per_subject"], val["pooled"], names),
        "",
        "### Test subjects (held out)",
        "",
        *_subject_table(test["per_subject"], test["pooled"], names),
        "",
        f"Spread over test subjects: F1 macro {_spread(test['per_subject'], 'f1_macro')}, balanced accuracy "
        f"{_spread(test['per_subject'], 'balanced_accuracy')}. With {len(split['test'])} test subject(s) these "
        "estimates are uncertain; expect other people to fall outside this range.",
        "",
        "Check against the values logged by the trial (pooled test windows): "
        + ", ".join(
            f"{m} {_f(v['recomputed'], 4)} (logged {_f(v['logged'], 4)})"
            for m, v in checks["recomputed_vs_logged_test"].items()
        )
        + ".",
        "",
        "### Confusion matrix (test subjects, windows; rows: true class)",
        "",
        *_confusion(test["pooled"]["confusion"], names),
        "",
        *_degenerate(test["pooled"]["confusion"], names),
        "### Comparison with the HRV baseline",
        "",
    ]
    base = metrics.get("hrv_baseline") or {}
    if base.get("val") and base.get("test"):
        L += [
            "Logistic regression on heart-rate-variability features of the same windows and the same split "
            "(the sweep's reference, from its parent run):",
            "",
            "| | " + " | ".join(METRIC_NAMES) + " |",
            "|---|" + "---:|" * len(METRIC_NAMES),
            "| this model, validation | " + " | ".join(_f(val["pooled"][m]) for m in METRIC_NAMES) + " |",
            "| HRV baseline, validation | " + " | ".join(_f(base["val"].get(m)) for m in METRIC_NAMES) + " |",
            "| this model, test | " + " | ".join(_f(test["pooled"][m]) for m in METRIC_NAMES) + " |",
            "| HRV baseline, test | " + " | ".join(_f(base["test"].get(m)) for m in METRIC_NAMES) + " |",
        ]
        if base.get("subjnorm_test"):
            L.append(
                "| HRV baseline, features z-scored per subject, test | "
                + " | ".join(_f(base["subjnorm_test"].get(m)) for m in METRIC_NAMES)
                + " |"
            )
        beats_val = (val["pooled"][metric] or 0) > (base["val"].get(metric) or 0)
        beats_test = (test["pooled"][metric] or 0) > (base["test"].get(metric) or 0)
        L += [
            "",
            f"On {metric} the model {'beats' if beats_val else '**does not beat**'} the baseline on the validation "
            f"subjects and {'beats' if beats_test else '**does not beat**'} it on the test subjects."
            + ("" if beats_test else " A product could use the cheaper HRV model instead."),
        ]
    else:
        L.append("No HRV baseline was recorded for this sweep (no beat source in the data, or an older sweep).")
    one, default = lat["1_thread"], lat["default_threads"]
    L += [
        "",
        "## Export checks",
        "",
        f"- ONNX: exported with {checks['onnx_export']['exporter']} (opset {checks['onnx_export']['opset']}); "
        f"onnxruntime vs PyTorch on all {checks['parity_windows']} windows of the test subjects "
        f"({', '.join(checks['parity_subjects'])}): max |Δ probability| = {checks['onnx_parity_max_abs']:.2e} "
        f"(tolerance {checks['parity_tolerance']:g}). TorchScript (`model.ts`) vs PyTorch: "
        f"{checks['torchscript_parity_max_abs']:.2e}.",
        "- Other window lengths: "
        + (
            "the ONNX graph has a dynamic time axis and reproduces PyTorch at "
            if dyn
            else "**the ONNX graph has a fixed time axis of "
            f"{prep['window_samples']} samples** (feed exactly that); tried "
        )
        + ", ".join(
            f"{n} samples ({'ok, ' + format(r['max_abs_diff'], '.1e') if r.get('ok') else 'failed'})"
            for n, r in lengths.items()
        )
        + ". The model was trained and validated only on "
        f"{prep['window_samples']}-sample windows: other lengths run, but their accuracy is unknown.",
        f"- Latency (onnxruntime {info['versions']['onnxruntime']}, CPU `{lat['cpu']}`, batch 1, one window of "
        f"{prep['window_samples']} samples): median {one['median_ms']:.3f} ms on 1 thread, "
        f"{default['median_ms']:.3f} ms with default threads (median of {one['runs']} runs; p90 "
        f"{one['p90_ms']:.3f} ms / {default['p90_ms']:.3f} ms). Preprocessing time is not included.",
        f"- Parameters: {metrics['parameters']:,}. Exporter attempts: "
        + "; ".join(
            f"{a['exporter']}: {'ok' if a['ok'] else a.get('error', 'failed')}"
            for a in checks["onnx_export"]["attempts"]
        )
        + ".",
        "",
        "## Known limitations",
        "",
        f"- **Subject-independent, small sample.** Trained on {len(split['train'])} subjects, selected on "
        f"{len(split['val'])}, tested on {len(split['test'])}. The test numbers are the only unbiased estimate, "
        "and they rest on few people.",
        "- **Data it was trained on.** "
        + (
            "Simulated ECG only: performance on real people, sensors and noise is unknown."
            if synthetic
            else f"Only recordings of `{data.get('benchmark')}`: other populations, sensors, placements, protocols "
            "and stressors are untested."
        ),
        f"- **Window length.** {prep['window_s']:g} s windows ({prep['window_samples']} samples at "
        f"{prep['rate_hz']:g} Hz); each window is classified on its own, without context.",
        "- **Normalisation needs the whole recording.** "
        + (
            "Each recording is z-scored with its own statistics over all its kept windows; at training those "
            "were labelled windows only, `ape-nas predict` uses every window that passes the quality checks. "
            "Short recordings (few windows) or recordings dominated by one state shift these statistics; "
            "streaming / window-by-window use was not tested."
            if prep["normalize"] == "subject"
            else f"Normalisation `{prep['normalize']}` (see preprocessing.json)."
        ),
        "- **Other sample rates.** Recordings are band-passed and resampled to the model's rate; rates below "
        + ", ".join(f"{ch} {v['hz']:g} Hz" for ch, v in prep.get("min_rate_hz", {}).items())
        + " are refused. Only the training data's native rate was tested.",
        f"- **Transitions and unlabelled stretches.** Windows less than {100 * prep['label_purity']:.0f} % one class "
        "were left out of training and evaluation: predictions on transitions are untested. Windows failing the "
        "quality checks are dropped, not predicted.",
        "- **Probabilities are not calibrated**; the predicted class is the argmax (no tuned threshold).",
        "- **Not tested:** other runtimes or hardware than onnxruntime/PyTorch on this CPU, quantisation, GPU "
        "inference, streaming, robustness to artefacts beyond the quality checks, medication or health conditions, "
        "fairness across age, sex or skin tone (not recorded in the data).",
        "",
        "## Files",
        "",
        "`SHA256SUMS` lists the SHA-256 of every file; `ape-nas predict` refuses a bundle whose files do not match. "
        "The bundle holds no pickles (the training checkpoint stays in MLflow).",
        "",
    ]
    return "\n".join(L)
