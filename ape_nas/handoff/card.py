"""The model card of a bundle (``model_card.md``): what the model is, what it was trained and tested on, how well
it did per subject, how it compares with the HRV baseline, and what it was not tested for. No torch.

The prose is the template ``templates/model_card.md`` (``string.Template``); the functions here compute its
values. Everything in the card comes from ``bundle.json``, ``preprocessing.json`` and ``metrics.json`` of the same
bundle (written by :mod:`ape_nas.handoff.export`), so the card never claims more than the checks measured.
"""

from __future__ import annotations

from importlib import resources
from string import Template
from typing import Any

from ape_nas.metrics import CLASS_METRICS

TEMPLATE = "model_card.md"
LABELS = {"f1_macro": "F1 macro", "balanced_accuracy": "balanced acc.", "auroc": "AUROC"}


def fmt(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def subject_table(per_subject: dict[str, Any], pooled: dict[str, Any], names: list[str]) -> str:
    head = ["subject", "windows", *(f"{c} windows" for c in names), *(LABELS[m] for m in CLASS_METRICS), "accuracy"]
    lines = [row(head), "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for subject, m in [*per_subject.items(), ("**pooled**", pooled)]:
        metrics = [fmt(m[k]) for k in (*CLASS_METRICS, "accuracy")]
        lines.append(row([subject, str(m["windows"]), *map(str, m["counts"]), *metrics]))
    return "\n".join(lines)


def confusion_table(cm: list[list[int]], names: list[str]) -> str:
    lines = ["| true \\ predicted | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for name, counts in zip(names, cm, strict=True):
        total = sum(counts) or 1
        lines.append(f"| {name} | " + " | ".join(f"{v} ({100 * v / total:.0f} %)" for v in counts) + " |")
    return "\n".join(lines)


def degenerate_warning(cm: list[list[int]], names: list[str]) -> str:
    """A warning paragraph when the model never predicts some class on the test subjects ("" otherwise)."""
    predicted = [sum(r[j] for r in cm) for j in range(len(names))]
    never = [c for c, n in zip(names, predicted, strict=True) if n == 0]
    if not never:
        return ""
    return (
        f"**Warning: on the test subjects the model never predicts {', '.join(never)}** "
        "— it has not learnt to separate the classes there.\n\n"
    )


def spread(per_subject: dict[str, Any], metric: str) -> str:
    values = [m[metric] for m in per_subject.values() if m.get(metric) is not None]
    if not values:
        return "n/a"
    return f"{min(values):.3f}–{max(values):.3f}" if len(values) > 1 else f"{values[0]:.3f} (one subject)"


def baseline_section(base: dict[str, Any], val: dict[str, Any], test: dict[str, Any], metric: str) -> str:
    """The comparison with the HRV baseline the sweep logged (a table and a verdict on ``metric``)."""
    if not (base.get("val") and base.get("test")):
        return "No HRV baseline was recorded for this sweep (no beat source in the data, or an older sweep)."

    def scores(label: str, values: dict[str, Any]) -> str:
        return row([label, *(fmt(values.get(m)) for m in CLASS_METRICS)])

    val_rows = [scores("this model, validation", val["pooled"])] if val.get("pooled") else []
    lines = [
        "Logistic regression on heart-rate-variability features of the same windows and the same split "
        "(the sweep's reference, from its parent run):",
        "",
        "| | " + " | ".join(CLASS_METRICS) + " |",
        "|---|" + "---:|" * len(CLASS_METRICS),
        *val_rows,
        scores("HRV baseline, validation", base["val"]),
        scores("this model, test", test["pooled"]),
        scores("HRV baseline, test", base["test"]),
    ]
    if base.get("subjnorm_test"):
        lines.append(scores("HRV baseline, features z-scored per subject, test", base["subjnorm_test"]))
    here = base.get("this_split") or {}
    if here.get("intervals") and test.get("intervals"):
        level = next(iter(test["intervals"].values()))["level"]
        lines += [
            "",
            f"On this bundle's test subjects, with {100 * level:.0f} % subject-bootstrap intervals (the baseline "
            "refitted at export on this bundle's training subjects):",
            "",
            f"- this model: {interval_text(test['intervals'])}",
            f"- HRV baseline: {interval_text(here['intervals'])}",
        ]
    beats_test = (test["pooled"][metric] or 0) > (base["test"].get(metric) or 0)
    on_test = f"{'beats' if beats_test else '**does not beat**'} it on the test subjects."
    if val.get("pooled"):
        beats_val = (val["pooled"][metric] or 0) > (base["val"].get(metric) or 0)
        verdict = f"the baseline on the validation subjects and {on_test}"
        verdict = f"{'beats' if beats_val else '**does not beat**'} {verdict}"
    else:
        verdict = on_test.replace(" it ", " the baseline ", 1)
    lines += [
        "",
        f"On {metric} the model {verdict}"
        + ("" if beats_test else " A product could use the cheaper HRV model instead."),
    ]
    return "\n".join(lines)


def subject_lines(split: dict[str, list[str]], counts: dict[str, int]) -> str:
    lines = []
    for part in ("train", "val", "test"):
        ids = split[part]
        n = sum(counts.get(s, 0) for s in ids)
        listed = ", ".join(f"{s} ({counts.get(s, 0)})" for s in ids)
        lines.append(f"- {part} subjects ({len(ids)}, {n} windows): {listed}")
    return "\n".join(lines)


def fold_note(src: dict[str, Any], info: dict[str, Any]) -> str:
    """What this bundle holds when it is not simply the trial's one model: fold 0, the refit, or an ensemble."""
    kind = src.get("kind", "trial")
    if kind == "final":
        final = src["final"]
        why = (
            "the trial's recorded best epoch + 1"
            if final["epochs_from"] == "best_epoch"
            else "`training.max_epochs`: the trial recorded no best epoch"
        )
        trial = (
            f"The trial was cross-validated ({src['folds']} folds)"
            if src.get("folds", 1) > 1
            else "The trial chose its epochs on validation subjects"
        )
        epochs = f"{final['epochs']} epoch{'s' if final['epochs'] != 1 else ''}"
        return (
            f"\n\n**Refitted model.** {trial}; this bundle holds its spec retrained on every non-test subject "
            f"(train + validation) for {epochs} ({why}), MLflow run `{final['refit_run_id']}`. Nothing was "
            "selected on this training run; the test subjects were scored once. There are no validation subjects."
        )
    if kind == "folds":
        return (
            f"\n\n**Ensemble of the trial's {src['folds']} fold models**: the output is the mean of their softmax "
            "probabilities (one ONNX graph). Each fold validated on subjects the other folds trained on, so the "
            "ensemble has no clean validation subjects; its numbers below are the test subjects'."
        )
    if kind == "top_k":
        n = info.get("ensemble", {}).get("size", "K")
        return (
            f"\n\n**Ensemble of the {n} best distinct trials of the sweep** (different spec digests, ranked by "
            "validation score): the output is the mean of their softmax probabilities (one ONNX graph). The members "
            "were chosen on the validation subjects, so the validation numbers are optimistic."
        )
    if src.get("fold") is None:
        return ""
    return (
        f"\n\n**Multi-fold trial ({src['folds']} folds): this bundle holds the fold-0 model only** "
        f"(`{src['checkpoint_artifact']}`). The trial's search score averaged all folds; the numbers below are "
        "fold 0's."
    )


def members_section(info: dict[str, Any], metrics: dict[str, Any], metric: str) -> str:
    """The members of an ensemble: where each comes from, its validation score and its own test scores."""
    members = metrics.get("members")
    if not members:
        return ""
    head = ["member", "MLflow run", "model", f"val {metric}", *(f"test {LABELS[m]}" for m in CLASS_METRICS)]
    gap = fmt_sci(metrics["checks"].get("ensemble_vs_mean_of_members_max_abs"))
    lines = [
        "### Ensemble members",
        "",
        "Each member scored on its own on the same test windows (recomputed; the ensemble's output differs from the "
        f"mean of these members' probabilities by at most {gap}):",
        "",
        row(head),
        "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|",
    ]
    for m in members:
        name = member_name(m)
        arch = ", ".join(f"{k}={v}" for k, v in m["arch"].items()) or "defaults"
        cells = [name, f"`{m['run_id']}`", f"`{m['model']}` ({arch})", fmt(m.get("val_score"), 4)]
        lines.append(row(cells + [fmt(m["test"].get(k)) for k in CLASS_METRICS]))
    return "\n".join(lines) + "\n\n"


def fmt_sci(v: Any) -> str:
    return "n/a" if v is None else f"{v:.2e}"


def interval_text(intervals: dict[str, Any]) -> str:
    return ", ".join(
        f"{LABELS[m]} {iv['point']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]" for m, iv in intervals.items()
    )


def uncertainty_text(test: dict[str, Any]) -> str:
    """The pooled test metrics with subject-bootstrap intervals, the per-subject distribution, and what such an
    interval means with few subjects."""
    intervals = test.get("intervals")
    if not intervals:
        return ""
    first = next(iter(intervals.values()))
    dist = test.get("subject_distribution", {})
    spread = "; ".join(
        f"{LABELS[m]} median {d['median']:.3f} (min {d['min']:.3f}, max {d['max']:.3f}, sd {d['sd']:.3f}, "
        f"{d['n_subjects']} subject(s))"
        for m, d in dist.items()
        if d.get("median") is not None
    )
    return (
        f"\n\nPooled test metrics with {100 * first['level']:.0f} % confidence intervals from a subject bootstrap "
        f"({first['n_boot']} resamples of the {first['n_subjects']} test subjects, each drawn with all its windows; "
        f"windows of one person are not independent): {interval_text(intervals)}. Per-subject distribution: "
        f"{spread or 'n/a'}. With 6–7 test subjects a ±10-point interval is normal: it is the honest size of the "
        "uncertainty, not a defect of this model; differences between models smaller than that are not "
        "established by these numbers."
    )


def lengths_values(prep: dict[str, Any], lengths: dict[str, Any]) -> dict[str, str]:
    note = (
        "the ONNX graph has a dynamic time axis and reproduces PyTorch at "
        if prep["input"].get("accepts_other_lengths")
        else f"**the ONNX graph has a fixed time axis of {prep['window_samples']} samples** (feed exactly that); tried "
    )
    tried = ", ".join(
        f"{n} samples ({'ok, ' + format(r['max_abs_diff'], '.1e') if r.get('ok') else 'failed'})"
        for n, r in lengths.items()
    )
    return {"lengths_note": note, "lengths": tried}


def limitation_values(data: dict[str, Any], prep: dict[str, Any]) -> dict[str, str]:
    if data.get("benchmark") == "synthetic":
        trained_on = "Simulated ECG only: performance on real people, sensors and noise is unknown."
    else:
        trained_on = (
            f"Only recordings of `{data.get('benchmark')}`: other populations, sensors, placements, protocols "
            "and stressors are untested."
        )
    if prep["normalize"] == "subject":
        normalisation = (
            "Each recording is z-scored with its own statistics over all its kept windows; at training those "
            "were labelled windows only, `ape-nas predict` uses every window that passes the quality checks. "
            "Short recordings (few windows) or recordings dominated by one state shift these statistics; "
            "streaming / window-by-window use was not tested."
        )
    else:
        normalisation = f"Normalisation `{prep['normalize']}` (see preprocessing.json)."
    return {
        "data_limitation": trained_on,
        "normalisation_limitation": normalisation,
        "min_rates": ", ".join(f"{ch} {v['hz']:g} Hz" for ch, v in prep.get("min_rate_hz", {}).items()),
    }


def cost_line(cost: dict[str, Any] | None) -> str:
    """The network's measured cost per window (``metrics.json`` ``cost``; bundles from before it: not measured)."""
    if not cost:
        return "not measured (bundle exported before ape-nas measured costs)"
    return (
        f"{cost['macs']:,} multiply-accumulates per window, {cost['params']:,} parameters, batch-1 latency "
        f"{cost['latency_ms']:.3f} ms (onnxruntime, 1 thread, this CPU), peak activation memory "
        f"{cost['peak_memory_mb']:.2f} MB (batch 1)"
    )


def check_values(info: dict[str, Any], checks: dict[str, Any], lat: dict[str, Any]) -> dict[str, str]:
    one, default = lat["1_thread"], lat["default_threads"]
    return {
        "exporter": checks["onnx_export"]["exporter"],
        "opset": str(checks["onnx_export"]["opset"]),
        "parity_windows": str(checks["parity_windows"]),
        "parity_subjects": ", ".join(checks["parity_subjects"]),
        "onnx_parity": f"{checks['onnx_parity_max_abs']:.2e}",
        "parity_tolerance": f"{checks['parity_tolerance']:g}",
        "ts_parity": f"{checks['torchscript_parity_max_abs']:.2e}",
        "ort_version": info["versions"]["onnxruntime"],
        "cpu": lat["cpu"],
        "median_1": f"{one['median_ms']:.3f}",
        "median_default": f"{default['median_ms']:.3f}",
        "latency_runs": str(one["runs"]),
        "p90_1": f"{one['p90_ms']:.3f}",
        "p90_default": f"{default['p90_ms']:.3f}",
        "attempts": "; ".join(
            f"{a['exporter']}: {'ok' if a['ok'] else a.get('error', 'failed')}"
            for a in checks["onnx_export"]["attempts"]
        ),
    }


def model_line(info: dict[str, Any], spec: dict[str, Any]) -> str:
    ensemble = info.get("ensemble")
    if not ensemble:
        return f"`{spec['model']}` ({', '.join(f'{k}={v}' for k, v in spec['arch'].items()) or 'defaults'})"
    models = ", ".join(dict.fromkeys(f"`{m['model']}`" for m in ensemble["members"]))
    return f"ensemble of {ensemble['size']} ({models}): mean of the members' softmax probabilities"


def trained_line(info: dict[str, Any], spec: dict[str, Any], metric: str) -> str:
    src, training = info["source"], spec["training"]
    if src.get("kind") == "final":
        return (
            f"refitted for {src['final']['epochs']} epoch(s) on every non-test subject (no validation, no early "
            f"stopping); seed {spec['seed']}"
        )
    if info.get("ensemble"):
        return (
            f"each member as in the sweep: best epoch of at most {training.get('max_epochs')}, selected on validation "
            f"{metric} (see Ensemble members)"
        )
    best, most = info.get("best_epoch"), training.get("max_epochs")
    return f"best epoch {best} of at most {most}, selected on validation {metric}; seed {spec['seed']}"


def validation_table(val: dict[str, Any], names: list[str]) -> str:
    if not val.get("pooled"):
        return (
            "None: this model was trained on every non-test subject (the validation subjects of the search "
            "included), so no subject is left to validate it on."
        )
    return subject_table(val["per_subject"], val["pooled"], names)


def member_name(m: dict[str, Any]) -> str:
    fold = f", fold {m['fold']}" if m.get("folds", 1) > 1 and m.get("fold") is not None else ""
    return f"trial {m['trial_number']}{fold}"


def logged_check(metrics: dict[str, Any]) -> str:
    """Recomputed pooled test metrics against the values training logged (each member's, for an ensemble)."""
    checks = metrics["checks"]
    if checks.get("recomputed_vs_logged_test"):
        pairs = checks["recomputed_vs_logged_test"].items()
        text = ", ".join(f"{m} {fmt(v['recomputed'], 4)} (logged {fmt(v['logged'], 4)})" for m, v in pairs)
        return f"Check against the values logged by the trial (pooled test windows): {text}."
    parts = [
        f"{member_name(m)} {fmt(m['test'].get('f1_macro'), 4)} (logged {fmt(m['logged_test'].get('f1_macro'), 4)})"
        for m in metrics.get("members") or []
    ]
    return (
        f"Check of each member against the values its trial logged (pooled test windows, f1_macro): {'; '.join(parts)}."
    )


def card_values(info: dict[str, Any], prep: dict[str, Any], metrics: dict[str, Any]) -> dict[str, str]:
    """Every ``$name`` of the template."""
    src, spec = info["source"], info["spec"]
    names = list(prep["class_names"])
    data, split = spec["data"], metrics["split"]
    val, test = metrics["validation"], metrics["test"]
    metric = spec["training"].get("metric", "f1_macro")
    return {
        "title": info["title"],
        "created": info["created"],
        "run_id": src["run_id"],
        "how": src["how"],
        "tracking_uri": src["tracking_uri"],
        "spec_digest": info["spec_digest"],
        "data_fingerprint": info["data_fingerprint"],
        "commit": f", code commit `{src['git_commit']}`" if src.get("git_commit") else "",
        "model_line": model_line(info, spec),
        "trained": trained_line(info, spec, metric),
        "parameters": f"{metrics['parameters']:,}",
        "cost_line": cost_line(metrics.get("cost")),
        "n_classes": str(len(names)),
        "classes": ", ".join(names),
        "input_name": prep["input"]["name"],
        "input_shape": str(prep["input"]["shape"]),
        "output_name": prep["output"]["name"],
        "channels": ", ".join(prep["channels"]),
        "window_s": f"{prep['window_s']:g}",
        "stride_s": f"{prep['stride_s']:g}",
        "rate_hz": f"{prep['rate_hz']:g}",
        "window_samples": str(prep["window_samples"]),
        "metric": metric,
        "benchmark": str(data.get("benchmark")),
        "params": str(data.get("params")),
        "synthetic_note": (
            " — **simulated** ECG (ape-nas's synthetic cardiac-affect generator), not recordings of people."
            if data.get("benchmark") == "synthetic"
            else "."
        ),
        "bandpass_hz": str(prep["bandpass_hz"]),
        "normalize": prep["normalize"],
        "purity": f"{100 * prep['label_purity']:.0f}",
        "subjects": subject_lines(split, metrics["windows_per_subject"]),
        "protocol_kind": spec["protocol"]["kind"],
        "protocol_seed": str(spec["protocol"].get("seed")),
        "fold_note": fold_note(src, info),
        "members": members_section(info, metrics, metric),
        "val_table": validation_table(val, names),
        "uncertainty": uncertainty_text(test),
        "logged_check": logged_check(metrics),
        "test_table": subject_table(test["per_subject"], test["pooled"], names),
        "spread_f1": spread(test["per_subject"], "f1_macro"),
        "spread_ba": spread(test["per_subject"], "balanced_accuracy"),
        "n_train": str(len(split["train"])),
        "selected_on": (
            f"selected on {len(split['val'])}" if split["val"] else "no validation subjects (refitted or ensembled)"
        ),
        "n_test": str(len(split["test"])),
        "confusion": confusion_table(test["pooled"]["confusion"], names),
        "degenerate": degenerate_warning(test["pooled"]["confusion"], names),
        "baseline": baseline_section(metrics.get("hrv_baseline") or {}, val, test, metric),
        **lengths_values(prep, metrics["checks"]["onnx_other_lengths"]["lengths"]),
        **check_values(info, metrics["checks"], metrics["latency_ms"]),
        **limitation_values(data, prep),
    }


def template() -> Template:
    return Template((resources.files("ape_nas.handoff") / "templates" / TEMPLATE).read_text(encoding="utf-8"))


def render_card(info: dict[str, Any], prep: dict[str, Any], metrics: dict[str, Any]) -> str:
    """``model_card.md`` of a bundle from its ``bundle.json``, ``preprocessing.json`` and ``metrics.json``."""
    return template().substitute(card_values(info, prep, metrics))
