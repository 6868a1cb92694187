"""HRV: beat detection → beat intervals → per-window HRV features. No torch, no sklearn.

Every sweep reports a cheap reference beside the deep models, on exactly the same windows and splits: these
features and the linear model of :mod:`ape_nas.baseline`.

Pipeline
--------
1. :func:`detect_beats` finds beat times (s) in an ECG (R peaks) or a PPG/BVP (systolic peaks) signal, band-passed
   by the same filter as the windows (:mod:`ape_nas.data.filters`). :func:`recording_rr` does steps 1-2 for one
   :class:`~ape_nas.data.types.SubjectRecording` (a signal channel or an events channel of (beat time, interval)
   pairs), on the recording's timeline (s after ``t0``, channel offsets applied), the timeline of the windows'
   ``starts_s``.
2. :func:`intervals_from_beats` turns beat times into intervals; :func:`clean_rr` drops physiologically
   impossible and ectopic/artefact intervals. Nothing is interpolated: a dropped interval leaves a gap, and
   successive differences (RMSSD, pNN50, SD1) are only taken between intervals that really follow each other.
3. :func:`window_features` computes :data:`FEATURE_NAMES` for each window ``[start, start + window_s)`` from the
   intervals whose (ending) beat lies in it. :func:`windowset_features` does it for all windows of a benchmark.
   See :mod:`ape_nas.hrv.features` for the NaN rules and what short windows get in the frequency domain.

Modules: :mod:`~ape_nas.hrv.beats` (steps 1-2), :mod:`~ape_nas.hrv.features` (step 3),
:mod:`~ape_nas.hrv.lomb` (the Lomb–Scargle band powers step 3 uses).
"""

from ape_nas.hrv.beats import (
    ECG_BAND_HZ,
    MAX_RR_S,
    MIN_RR_S,
    PPG_BAND_HZ,
    clean_rr,
    detect_beats,
    detection_signal,
    intervals_from_beats,
    recording_rr,
    rr_from_signal,
)
from ape_nas.hrv.features import (
    FEATURE_NAMES,
    HF_BAND,
    LF_BAND,
    MIN_CYCLES,
    subject_normalise,
    window_features,
    windowset_features,
)

__all__ = [
    "ECG_BAND_HZ",
    "FEATURE_NAMES",
    "HF_BAND",
    "LF_BAND",
    "MAX_RR_S",
    "MIN_CYCLES",
    "MIN_RR_S",
    "PPG_BAND_HZ",
    "clean_rr",
    "detect_beats",
    "detection_signal",
    "intervals_from_beats",
    "recording_rr",
    "rr_from_signal",
    "subject_normalise",
    "window_features",
    "windowset_features",
]
