"""``preprocessing.json``: the exact preprocessing of a bundle's model, as data (what ``predict`` rebuilds its
window configuration from) and in words (steps a product can re-implement). No torch."""

from __future__ import annotations

from typing import Any

from ape_nas.handoff.bundle import FEATURES_NAME, INPUT_NAME, OUTPUT_NAME, PREPROCESSING_FORMAT

NORMALISATION = {
    "subject": "per recording and channel: z-score (x - mean) / (std + 1e-6) with the mean and std over all "
    "kept windows of that recording (after quality rejection), NaN ignored; then NaN → 0",
    "window": "per window and channel: z-score (x - mean) / (std + 1e-6) over the window; then NaN → 0",
    "none": "none (NaN → 0)",
}


def min_rates(data: dict[str, Any], channels: list[str], rate: float) -> dict[str, Any]:
    """Per channel, the lowest sample rate a recording may have (and why): the rate at which the band-pass's high
    edge is not yet capped (high edge / ``filters.HIGH_EDGE_FRACTION``, so the recording is filtered exactly as
    the training data was), or the model's rate when training used the channels' native rate."""
    from ape_nas.data.filters import HIGH_EDGE_FRACTION
    from ape_nas.data.windows import channel_band

    out: dict[str, Any] = {}
    for ch in channels:
        band = channel_band(data, ch)
        if band:
            out[ch] = {
                "hz": min(round(float(band[1]) / HIGH_EDGE_FRACTION, 1), rate),
                "why": f"its {band[0]:g}-{band[1]:g} Hz band-pass at the model's {rate:g} Hz",
            }
        elif data.get("rate_hz") is None:
            out[ch] = {"hz": rate, "why": f"the model was trained on recordings at their native {rate:g} Hz"}
    return out


def bandpass_step(band: Any) -> str:
    """The band-pass in words: :func:`ape_nas.data.filters.description` (per channel when ``band`` is a mapping)."""
    from ape_nas.data.filters import description

    if not band:
        return "none"
    if isinstance(band, dict):
        return "; ".join(f"{ch}: {description(b) if b else 'none'}" for ch, b in band.items())
    return description(band)


def steps(data: dict[str, Any], channels: list[str], rate: float, window: int, stride: int) -> list[str]:
    """The preprocessing in words (``window`` and ``stride`` in samples at the model's ``rate``)."""
    from ape_nas.data.windows import MAX_BEAT_GAP_S

    return [
        f"1. pick channels {', '.join(channels)} (in this order: input channel index = position)",
        f"2. band-pass each sampled channel at its native rate: {bandpass_step(data.get('bandpass_hz'))}",
        f"3. resample every channel to {rate:g} Hz with scipy.signal.resample_poly (rational ratio, "
        "denominator ≤ 1000; NaN masks resampled separately); beat-event channels (time, interval) become the "
        f"interval held from beat to beat, NaN in gaps (intervals > {MAX_BEAT_GAP_S:g} s or missing beats)",
        "4. align channels on their common time span (channel offsets after the recording start)",
        f"5. cut windows of {data['window_s']:g} s = {window} samples every {data['stride_s']:g} s "
        f"= {stride} samples, from the start of the common span",
        "6. (training/evaluation only) window label = majority label if at least "
        f"{100 * float(data['label_purity']):.0f} % of the window carries it, else unlabelled",
        "7. drop windows failing the quality checks (quality: NaN share, flat lines ≥ flat_s, clipping at "
        "the recording's extremes, beat-gap share)",
        f"8. normalise: {NORMALISATION[data.get('normalize', 'subject')]}",
        "9. float32 array (windows, channels, time) → model input x; output = class probabilities",
    ]


def hrv_features_json(data: dict[str, Any], transform: dict[str, Any]) -> dict[str, Any]:
    """The second model input of a model that fuses HRV features (``transform``: the checkpoint's
    ``hrv_transform``, :meth:`ape_nas.features.HrvTransform.to_dict`)."""
    names, mode = list(transform["names"]), transform["mode"]
    source = data.get("hrv_source")
    return {
        "name": FEATURES_NAME,
        "dtype": "float32",
        "layout": "(batch, features)",
        "shape": ["batch", len(names)],
        "names": names,
        "mode": mode,
        "hrv_source": source,
        "window_s": float(data["window_s"]),
        "steps": [
            f"1. beats of the recording from {source or 'the reader default beat channel'} (ape_nas.hrv.recording_rr:"
            " band-pass, peak detection, RR cleaning), on the recording's timeline",
            f"2. per window [start, start + {float(data['window_s']):g} s): the HRV features {', '.join(names)} "
            "(ape_nas.hrv.window_features; NaN where too few beats)",
            "3. "
            + (
                "z-score every feature within the recording over its kept windows, NaN ignored "
                "(ape_nas.hrv.subject_normalise)"
                if mode == "subject"
                else "nothing more: raw values"
            ),
            f"4. float32 (windows, {len(names)}), NaN kept → model input {FEATURES_NAME}; the model itself keeps the "
            f"columns {', '.join(transform['columns'])}, applies sign·log1p, imputes NaN with the training medians "
            "and standardises with the training subjects' statistics (values under fitted)",
        ],
        "fitted": transform,
        "reference_implementation": "ape_nas.features.recording_features, ape_nas.features.network_input",
    }


def preprocessing_json(data: dict[str, Any], ckpt: dict[str, Any], dynamic_time: bool) -> dict[str, Any]:
    """The content of ``preprocessing.json`` for a model trained with the ``data`` config of its spec;
    ``dynamic_time``: the ONNX graph accepts other window lengths (time axis "time" instead of a number)."""
    from ape_nas.data.prepare import PREP_VERSION
    from ape_nas.data.quality import QualityConfig

    rate = float(ckpt["rate_hz"])
    channels = list(ckpt["channels"])
    window_samples = int(ckpt["window_samples"])
    stride_samples = max(1, round(float(data["stride_s"]) * rate))
    names = list(ckpt["class_names"])
    transform = ckpt.get("hrv_transform")
    return {
        "format": PREPROCESSING_FORMAT,
        "channels": channels,
        "rate_hz": rate,
        "bandpass_hz": data.get("bandpass_hz"),
        "normalize": data.get("normalize", "subject"),
        "window_s": float(data["window_s"]),
        "stride_s": float(data["stride_s"]),
        "window_samples": window_samples,
        "stride_samples": stride_samples,
        "label_purity": float(data["label_purity"]),
        "quality": QualityConfig.from_dict(data.get("quality")).__dict__,
        "class_names": names,
        "min_rate_hz": min_rates(data, channels, rate),
        "input": {
            "name": INPUT_NAME,
            "dtype": "float32",
            "layout": "(batch, channels, time)",
            "shape": ["batch", int(ckpt["in_channels"]), "time" if dynamic_time else window_samples],
            "window_samples": window_samples,
            "accepts_other_lengths": dynamic_time,
        },
        "output": {
            "name": OUTPUT_NAME,
            "dtype": "float32",
            "shape": ["batch", len(names)],
            "meaning": "softmax class probabilities, columns in class_names order; predicted class = argmax",
        },
        "hrv_features": hrv_features_json(data, transform) if transform else None,
        "steps": steps(data, channels, rate, window_samples, stride_samples)
        + ([f"10. the window's HRV features → model input {FEATURES_NAME} (see hrv_features)"] if transform else []),
        "reference_implementation": "ape_nas.data.windows.window_subject",
        "prep_version": PREP_VERSION,
        "source_data": {
            "benchmark": data.get("benchmark"),
            "params": data.get("params"),
            "rate_hz_setting": data.get("rate_hz"),
            "hrv_source": data.get("hrv_source"),
        },
    }
