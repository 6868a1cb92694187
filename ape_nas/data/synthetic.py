"""The embedded default benchmark ``synthetic``: a seeded, physiologically structured cardiac-affect data set.

No download, no torch, no neurokit2. Every subject gets one continuous session in which the affect states of
``states`` follow each other in a per-subject shuffled block order, ``minutes_per_state`` each. The session has an
ECG channel ``"ecg"`` (mV) and optionally a PPG channel ``"ppg"`` (arbitrary units, systolic peak ≈ 1), both at
``fs``, and per-sample labels at ``label_rate = fs``: the index of the state in ``class_names`` (= ``list(states)``),
or ``UNLABELLED`` (-1) during the first ``TRANSITION_S`` seconds after each state change.

Why not ``neurokit2.ecg_simulate(method="ecgsyn")``
----------------------------------------------------
Measured here (2-core machine, neurokit2 0.2.13, 128 Hz): importing neurokit2 takes ≈ 2.0 s; ECGSYN takes ≈ 0.74 s
per 120 s of ECG and ≈ 1.5 s per 240 s, so the default benchmark (12 subjects × 2 states × 2 min) takes ≈ 19 s
(budget: well under 3 s). ECGSYN is deterministic given ``random_state``, but it can't express what this
benchmark needs: its RR process is stationary within a call, with the LF and HF centre frequencies fixed at
0.1 and 0.25 Hz (so no per-subject or per-state breathing rate), and it only takes ``heart_rate``,
``heart_rate_std`` and ``lfhfratio``. States would need one call each, which leaves a discontinuity at every
state change (no HR ramp). Each call also rescales the ECG to exactly −0.4…1.2 mV, which wipes out
per-subject amplitudes, and R-peak times are not returned. So this module has its own vectorised NumPy
generator. It uses the same PQRST sum-of-Gaussians idea as ECGSYN, but in the time domain and per beat. The
default benchmark (12 subjects × 4 min at 128 Hz) takes 0.17-0.34 s here, and 0.23-0.39 s with ``ppg=True``.

Model (per subject, all vectorised over samples or beats)
---------------------------------------------------------
* Respiration: phase-integrated breathing rate (state-dependent, ramped, with ±6 % slow jitter), an
  inspiration/expiration asymmetric waveform and slowly varying tidal amplitude.
* Heart period ``RR(t) = 60/HR(t) + RSA(t) + LF(t) + VLF(t)`` (ms terms): RSA is the lagged respiration scaled by a
  vagal amplitude that falls with breathing frequency (Hirsch & Bishop 1981, low-pass corner ≈ 0.12 Hz); LF is
  narrow-band noise around a per-subject Mayer-wave frequency ≈ 0.1 Hz; VLF is a < 0.04 Hz drift. Beats come from
  integral pulse frequency modulation (a beat at every integer crossing of ∫ 1/RR dt), plus 2 ms beat jitter.
* ECG: per beat, sum of Gaussians P, Q, R, S and an asymmetric T (McSharry et al. 2003, ECGSYN, in time
  instead of phase). The T wave position and width scale with (smoothed RR)^(1/3), so QT shortens as RR shortens
  (Fridericia); PR scales with RR^0.15. QRS amplitude is modulated by respiration (ECG-derived respiration,
  3-10 %). Amplitudes and widths vary per subject, with an electrical-axis-like projection that trades R against S.
* Noise (all times ``noise``): white noise, burst-modulated muscle noise (20-57 Hz at 128 Hz), 50 Hz mains
  in ≈ 30 % of subjects (only if fs > 104 Hz), respiratory baseline wander and a < 0.05 Hz drift. Muscle noise
  does not depend on the state, so classifiers have to use cardiac features, not noise level.
* PPG: per beat, an asymmetric systolic wave plus a diastolic wave, delayed from the R peak by a per-subject
  pulse transit time (PTT) that shortens under stress and varies with respiration. Amplitude drops under
  stress (vasoconstriction). Separate random stream, so ``ppg=True`` leaves the ECG unchanged.
* States: each state in :data:`STATES` moves HR, the vagal (HF/RSA) amplitude, LF amplitude, breathing rate,
  PTT and PPG amplitude by its table value × a per-subject reactivity ``k`` (Gamma(2.5, 0.4): mean 1.0, SD
  0.63, 5th percentile ≈ 0.25) × a per-subject-and-state factor (log-normal, σ 0.35). Each non-baseline block also gets
  an N(0, 1.5) bpm HR offset. Changes ramp in with a raised cosine over 3-8 s (per subject). The between-subject SD
  of resting HR (8 bpm) is larger than the stress response of weak responders (a few bpm), so subject-
  independent classification can be learnt but is not trivial.
* Cohorts (``cohort``): ``broad`` (the default, the original draws above) has many weak responders: about a
  quarter of subjects raise HR by < 4 bpm under stress and a few by > 25 bpm, so from one window without the
  subject's own resting values little can be learnt (grouped-CV macro-F1 of a logistic regression on window HRV
  features ≈ 0.61-0.67 with 16-32 subjects). ``typical`` draws the reactivity log-normal (median 1, σ 0.25,
  0.5-2) and the per-state factor with σ 0.2, as in TSST/WESAD-like cohorts where nearly every subject
  responds: stress raises HR by ≈ 5-17 bpm (5th-95th percentile, median ≈ 10) and lowers RMSSD in ≈ 9 of 10
  subjects; resting HR is N(70, 7) bpm, clipped 50-90 (95 % within ≈ 56-84); breathing, HRV and morphology
  follow the same laws as in ``broad``. The same logistic regression reaches ≈ 0.70-0.78 there, and ≈ 0.99
  with features normalised per subject: subject-independent learning is possible and measurable, but not
  trivial. Per-subject accuracy still spreads widely (SD ≈ 0.22: a subject whose resting HR is far from the
  cohort's scores high or low as a whole), so a score needs many subjects to be precise. A ``typical`` subject
  shares the standard-normal draws made before the reactivity with the ``broad`` subject of the same seed;
  later draws (morphology, noise, pulse, responses) differ.

Parameters of :func:`generate`
------------------------------
=====================  ==================  =======================================================================
parameter              default             meaning (allowed range)
=====================  ==================  =======================================================================
``subjects``           12                  number of subjects "S01", "S02", … (1-999)
``minutes_per_state``  2.0                 length of each state block in minutes (≥ 0.5; after a state change the
                                           first 10 s are unlabelled)
``fs``                 128.0               sampling rate of ECG, PPG and labels in Hz (64-2000)
``states``             [baseline, stress]  affect states (class order = this order), names from :data:`STATES`
``ppg``                False               also generate a ``"ppg"`` channel
``noise``              1.0                 scale of all noise and baseline wander (0 = clean; ≥ 0)
``seed``               0                   root seed; subject i uses ``SeedSequence([seed, i])``, so adding
                                           subjects leaves earlier subjects unchanged (≥ 0)
``cohort``             broad               how subjects' stress responses vary: ``broad`` (many weak responders)
                                           or ``typical`` (nearly all respond; see Cohorts above)
``cue``                none                a planted, time-localised morphology cue (see Planted cue below):
                                           ``none``, ``st_elevation`` or ``t_inversion``
``cue_state``          null (last state)   the state whose beats carry the cue; one of ``states``
``cue_fraction``       0.5                 share of that state's eligible beats that carry it (0 < x ≤ 1)
=====================  ==================  =======================================================================

Planted cue (``cue``; issue 13: ground truth for saliency maps)
-----------------------------------------------------------------
A class-specific feature whose place is known sample by sample, so that an explanation can be scored by the share
of its saliency that falls on the planted beats. Each beat of ``cue_state`` carries the cue with probability
``cue_fraction``, if its R peak and every sample the cue changes (ECG, and PPG even when ``ppg`` is false) lie in
one labelled stretch of ``cue_state``; so beats in the unlabelled ``TRANSITION_S`` seconds, in other states, or
whose change would reach into those or past the session's end never carry it. The ECG cue:

* ``st_elevation``: the ST segment raised by 0.2 mV (× U(0.8, 1.2) per beat; ≥ 0.1 mV is clinically significant
  ST elevation), a bump from the J point (end of S, ``mu_s + 2.5 sd_s``) to the T peak.
* ``t_inversion``: the T wave turned upside down (−2 × its own amplitude × U(0.8, 1.2) over its central part), as
  in ischaemic or strain T-wave inversion.

With ``ppg``, the same beats' PPG pulses get an early reflected wave (stiff arteries: the reflection returns in late
systole): a shoulder of 0.3 × the pulse amplitude (× U(0.8, 1.2)) at 0.6 of the way from the systolic peak to the
diastolic wave. Every cue wave is a Gaussian cut at ± 2.5 SD and lowered to 0 there, so it is continuous and
exactly 0 outside its span; it follows the beat's QT (ECG) or pulse timing (PPG), is added after the noise, and
draws from its own random stream (a child of the subject's ``SeedSequence``, spawn key 100): beat times, HR, HRV,
labels and every sample outside the spans are bit for bit those of ``cue="none"``, whose output is unchanged.

Per-subject physiology (drawn from the subject's seed)
------------------------------------------------------
=========================  ===============================  ===================================================
quantity                   distribution (clipped)           physiological range / reference
=========================  ===============================  ===================================================
resting HR                 N(70, 8) bpm, 50-95              adult resting HR 60-100 bpm, mean ≈ 70 (AHA; pop. studies)
                           (``typical``: N(70, 7), 50-90)
breathing rate             N(15, 2.5) /min, 10-22           adult resting 12-20 breaths/min; HF band 0.15-0.4 Hz
                                                            (Task Force of ESC/NASPE 1996)
RSA amplitude (HF)         logN(median 42 ms, σ 0.4)        gives resting RMSSD ≈ 20-70 ms; short-term norm
                           × (RR0/0.857 s)², 8-120 ms       RMSSD 42 ± 15 ms (Nunan et al. 2010)
LF amplitude (SD)          logN(median 25 ms, σ 0.4)        LF 0.04-0.15 Hz (Task Force 1996); resting LF/HF ≈
                           × (RR0/0.857 s)², 5-80 ms        1-2 (Nunan et al. 2010)
LF (Mayer) frequency       N(0.10, 0.008) Hz, 0.08-0.12     Mayer waves ≈ 0.1 Hz (Julien 2006)
VLF drift (SD)             logN(median 12 ms, σ 0.3)        slow HR drift < 0.04 Hz
reactivity ``k``           Gamma(2.5, 0.4), 0.1-3           strong vs weak stress responders (TSST HR rise
                           (``typical``: logN(0, 0.25),
                           0.5-2)
                                                            ≈ 5-25 bpm, Kirschbaum et al. 1993)
R amplitude                0.65-1.6 mV (gain × axis)        lead II R 0.5-1.7 mV; Q, S 25-38 ms from R
P / T amplitude            0.06-0.25 / 0.12-0.5 mV          P < 0.25 mV, T 0.1-0.5 mV
PR / QT (at 60 bpm)        P peak −0.16…−0.22 s,            PR 120-200 ms, QTc ≈ 350-450 ms (Fridericia
                           T peak 0.24-0.30 s               correction QT ∝ RR^(1/3))
PTT (R to PPG foot)        U(0.18, 0.28) s                  finger PAT ≈ 150-300 ms (Mukkamala et al. 2015)
noise (× ``noise``)        white 5-15 µV, EMG 5-30 µV,      MIT-BIH noise stress test components (Moody et al.
                           resp. wander 20-100 µV,          1984): baseline wander < 0.5 Hz, EMG broadband,
                           drift 50-200 µV, mains 5-30 µV   mains 50 Hz
=========================  ===============================  ===================================================

State table (:data:`STATES`; effects at reactivity 1, scaled per subject)
------------------------------------------------------------------------
==============  =======  ============  ======  ============  =======  =======  ====================================
state           ΔHR bpm  HF (RSA) ×    LF ×    Δbreath /min  ΔPTT ms  PPG ×    basis
==============  =======  ============  ======  ============  =======  =======  ====================================
baseline        0        1             1       0             0        1        seated rest
stress          +10      e^−0.45≈0.64  e^0.1   +4            −15      e^−0.25  TSST / WESAD stress: HR↑, HF↓,
                                                                               LF/HF↑, faster breathing (Schmidt
                                                                               et al. 2018; Kim et al. 2018 review)
amusement       +3       e^−0.15       1       +1.5          −3       e^−0.05  WESAD amusement: small HR rise
relax           −3       e^0.25        1       −2            +5       e^0.05   guided relaxation: HR↓, HF↑
meditation      −5       e^0.4         1       −6            +8       e^0.1    slow breathing moves RSA toward
                                                                               0.1 Hz and enlarges it (min 5 /min)
==============  =======  ============  ======  ============  =======  =======  ====================================

Ground truth in ``SubjectRecording.meta``: ``baseline_hr`` (resting HR parameter, bpm), ``resp_rate_bpm``
(resting breathing rate), ``reactivity``, ``block_order``, ``block_start_s``, ``r_peaks`` (int sample indices of R
peaks), ``state_mean_hr`` / ``state_rmssd_ms`` (measured from the generated beats in the labelled part of each
state), ``state_targets`` (per-state HR, breathing rate, RSA and LF amplitude after reactivity scaling),
``morphology``, ``ptt_s`` and ``mains``. With a ``cue`` (never with ``cue="none"``, whose meta is unchanged) also
``cue`` and ``cue_state`` (resolved: never null), ``cue_fraction``, ``cue_r_peaks`` (int sample indices of the R
peaks of the beats that carry it, a subset of ``r_peaks``) and ``cue_spans_s``: a dict channel → (beats, 2) float
array of [start, end) in seconds after the recording start of the samples each planted cue changes, one row per
cue beat in time order (``"ecg"``, and ``"ppg"`` when ``ppg``; the spans differ per channel, the beats do not).

:func:`simulate` is one subject before any signal is rendered (physiology, session, breathing, beats, labels, ground
truth and the untouched ECG/PPG random streams); ``ape-nas synth`` (:mod:`ape_nas.data.cohort`) renders it at other
rates, with motion artefacts and a wrist device's beat gaps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ape_nas.data.readers import params
from ape_nas.data.types import UNLABELLED, BenchmarkData, SubjectRecording
from ape_nas.errors import KeyedError
from ape_nas.schema import Field

NAME = "synthetic"
VERSION = 1  # bump whenever the generated data changes for the same parameters (used in cache keys)
TRANSITION_S = 10.0  # seconds labelled UNLABELLED after each state change

DEFAULTS: dict[str, Any] = {
    "subjects": 12,
    "minutes_per_state": 2.0,
    "fs": 128.0,
    "states": ["baseline", "stress"],
    "ppg": False,
    "noise": 1.0,
    "seed": 0,
    "cohort": "broad",
    "cue": "none",
    "cue_state": None,
    "cue_fraction": 0.5,
}
COHORTS = ("broad", "typical")  # how widely the subjects' stress responses vary (see the module docstring)
CUES = ("none", "st_elevation", "t_inversion")  # planted ECG cues (see "Planted cue" in the module docstring)


@dataclass(frozen=True)
class StateEffect:
    """Effect of an affect state at reactivity 1 (relative to the subject's resting baseline)."""

    hr_bpm: float  # heart-rate change
    vagal_log: float  # log multiplier of the RSA (HF) amplitude
    lf_log: float  # log multiplier of the LF amplitude
    resp_bpm: float  # breathing-rate change, breaths per minute
    ptt_ms: float  # pulse-transit-time change
    ppg_log: float  # log multiplier of the PPG pulse amplitude


# Order matters for seeding: new states go at the end.
STATES: dict[str, StateEffect] = {
    "baseline": StateEffect(0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "stress": StateEffect(10.0, -0.45, 0.1, 4.0, -15.0, -0.25),
    "amusement": StateEffect(3.0, -0.15, 0.0, 1.5, -3.0, -0.05),
    "relax": StateEffect(-3.0, 0.25, 0.0, -2.0, 5.0, 0.05),
    "meditation": StateEffect(-5.0, 0.4, 0.0, -6.0, 8.0, 0.1),
}

_RSA_CORNER_HZ = 0.12  # RSA amplitude low-pass corner vs breathing frequency (Hirsch & Bishop 1981)
_PAD_S = 2.0  # simulated padding either side of the session, so edge beats are complete
_MAINS_HZ = 50.0


@dataclass(frozen=True)
class _Cohort:
    """How the subjects of a ``cohort`` differ: resting HR spread, reactivity law, per-state response spread."""

    hr_sd: float  # bpm, SD of resting HR around 70
    hr_range: tuple[float, float]  # bpm, resting HR clip
    reactivity_log_sd: float | None  # log-normal reactivity (median 1) with this σ; None: Gamma(2.5, 0.4)
    state_log_sd: float  # log SD of a subject's response to one state


COHORT_DRAWS = {
    "broad": _Cohort(8.0, (50.0, 95.0), None, 0.35),
    "typical": _Cohort(7.0, (50.0, 90.0), 0.25, 0.2),
}


class SyntheticParamError(KeyedError, ValueError):
    """An invalid parameter of :func:`generate`: a one-line user error keyed ``data.params.<key>``, and a
    ``ValueError``."""


class UnknownStateError(SyntheticParamError):
    """An affect state name not in :data:`STATES`."""


def _fraction(value: float) -> str | None:
    return None if 0.0 < value <= 1.0 else f"expected a fraction in (0, 1], got {value!r}"


FIELDS = {
    "subjects": Field(int, DEFAULTS["subjects"], low=1, high=999),
    "minutes_per_state": Field(float, DEFAULTS["minutes_per_state"], low=0.5, high=600.0, check=params.finite),
    "fs": Field(float, DEFAULTS["fs"], low=64.0, high=2000.0, check=params.finite),
    "states": Field(list, DEFAULTS["states"], check=params.names()),
    "ppg": Field(bool, DEFAULTS["ppg"]),
    "noise": Field(float, DEFAULTS["noise"], low=0.0, high=100.0, check=params.finite),
    "seed": Field(int, DEFAULTS["seed"], low=0, high=2**63 - 1),
    "cohort": Field(str, DEFAULTS["cohort"], choices=COHORTS),
    "cue": Field(str, DEFAULTS["cue"], choices=CUES),
    "cue_state": Field(str, DEFAULTS["cue_state"], nullable=True),
    "cue_fraction": Field(float, DEFAULTS["cue_fraction"], check=_fraction),
}


def _check_params(given: dict[str, Any]) -> dict[str, Any]:
    try:  # numpy scalars (np.int64 seeds, np.float64 rates) are accepted as the numbers they hold
        p = params.check({k: v.item() if isinstance(v, np.generic) else v for k, v in given.items()}, FIELDS)
    except KeyedError as err:
        raise SyntheticParamError(err.keys, err.problem) from None
    unknown = [s for s in p["states"] if s not in STATES]
    if unknown:
        raise UnknownStateError(
            [("data", "params", "states")],
            f"unknown state(s) {', '.join(map(repr, unknown))}; known states: {', '.join(STATES)}",
        )
    if p["cue_state"] is not None and p["cue_state"] not in p["states"]:
        raise SyntheticParamError(
            [("data", "params", "cue_state")],
            f"{p['cue_state']!r} is not one of the states; expected one of {', '.join(p['states'])} "
            "(or nothing: the last state)",
        )
    return p


def _fast_len(n: int) -> int:
    """Smallest 2^a·3^b ≥ n (fast FFT length)."""
    best = 1 << max(0, (n - 1).bit_length())
    p3 = 1
    while p3 < best:
        m = p3 << max(0, (-(-n // p3) - 1).bit_length())
        best = min(best, m)
        p3 *= 3
    return best


def _shaped_noise(rng: np.random.Generator, n: int, fs: float, gain: Any) -> np.ndarray:
    """Zero-mean, unit-SD Gaussian noise of ``n`` samples whose amplitude spectrum is ``gain(frequencies)``."""
    m = _fast_len(n)
    spec = np.fft.rfft(rng.standard_normal(m))
    spec *= gain(np.fft.rfftfreq(m, 1.0 / fs))
    spec[0] = 0.0
    x = np.fft.irfft(spec, m)[:n]
    x -= x.mean()
    sd = x.std()
    return x / sd if sd > 0 else x


def _band_noise(rng: np.random.Generator, n: int, fs: float, centre: float, width: float) -> np.ndarray:
    """Unit-SD Gaussian noise with a Gaussian-shaped spectrum around ``centre`` ± ``width`` Hz."""
    return _shaped_noise(rng, n, fs, lambda f: np.exp(-0.5 * ((f - centre) / width) ** 2))


def _bandpass_noise(rng: np.random.Generator, n: int, fs: float, lo: float, hi: float) -> np.ndarray:
    """Unit-SD Gaussian noise band-limited (brick wall) to [lo, hi] Hz."""
    return _shaped_noise(rng, n, fs, lambda f: ((f >= lo) & (f <= hi)).astype(np.float64))


def _ramped(values: np.ndarray, starts: np.ndarray, ramp: float, t: np.ndarray) -> np.ndarray:
    """Piecewise-constant ``values`` (one per block starting at ``starts``), raised-cosine ramps of ``ramp`` s."""
    out = np.full(t.shape, values[0], dtype=np.float64)
    for j in range(1, len(values)):
        a, b = np.searchsorted(t, [starts[j], starts[j] + ramp])
        out[a:b] += (values[j] - values[j - 1]) * (0.5 - 0.5 * np.cos(np.pi * (t[a:b] - starts[j]) / ramp))
        out[b:] += values[j] - values[j - 1]
    return out


def _render(
    beat_t: np.ndarray,
    n: int,
    fs: float,
    offset: float,
    waves: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
) -> np.ndarray:
    """Sum per-beat waves into a signal of ``n`` samples (sample 0 is at time ``offset``).

    Each wave is (amplitude, centre relative to the beat [s], left SD [s], right SD [s]), arrays over beats: an
    asymmetric Gaussian, evaluated from 4.5 left SDs before to 4.5 right SDs after its centre.
    """
    out = np.zeros(n)
    for amp, mu, sl, sr in waves:
        start_t = beat_t + mu - 4.5 * sl  # time of the first sample of each beat's wave
        first = np.ceil((start_t - offset) * fs).astype(np.int64)
        width = int(np.ceil(np.max(4.5 * (sl + sr)) * fs)) + 1
        idx = first[:, None] + np.arange(width)[None, :]
        d = (idx / fs + offset) - (beat_t + mu)[:, None]
        s = np.where(d < 0, sl[:, None], sr[:, None])
        val = amp[:, None] * np.exp(-0.5 * (d / s) ** 2)
        ok = (idx >= 0) & (idx < n)
        out += np.bincount(idx[ok], weights=val[ok], minlength=n)
    return out


def _rmssd_and_hr(beat_t: np.ndarray, segments: list[tuple[float, float]]) -> tuple[float, float]:
    """Mean HR (bpm) and RMSSD (ms) over beats inside the given time segments (no differences across gaps)."""
    rr_all, dd_all = [], []
    for a, b in segments:
        bt = beat_t[(beat_t >= a) & (beat_t < b)]
        rr = np.diff(bt)
        rr_all.append(rr)
        dd_all.append(np.diff(rr))
    rr = np.concatenate(rr_all) if rr_all else np.empty(0)
    dd = np.concatenate(dd_all) if dd_all else np.empty(0)
    hr = 60.0 / rr.mean() if rr.size else float("nan")
    rmssd = 1000.0 * math.sqrt(np.mean(dd**2)) if dd.size else float("nan")
    return float(hr), float(rmssd)


@dataclass(frozen=True)
class _Rhythm:
    """A subject's resting heart rhythm and breathing, and how strongly it reacts to the states."""

    hr0: float  # resting HR, bpm
    resp0: float  # resting breathing rate, breaths/min
    hf_amp0: float  # RSA amplitude, ms
    lf_amp0: float  # LF (Mayer-wave) amplitude, ms
    lf_freq: float  # Hz
    vlf_amp: float  # ms
    rsa_lag: float  # s
    reactivity: float
    ramp_s: float  # state-change ramp
    resp_asym: float  # inspiration/expiration asymmetry


@dataclass(frozen=True)
class _Morphology:
    """PQRST amplitudes (mV), centres relative to the R peak and widths (s), and the respiratory modulation."""

    axis: float  # electrical axis, degrees
    a_p: float
    a_q: float
    a_r: float
    a_s: float
    a_t: float
    mu_p: float
    sd_p: float
    mu_q: float
    sd_q: float
    sd_r: float
    mu_s: float
    sd_s: float
    mu_t: float
    sd_t: float
    edr: float  # QRS amplitude modulation by respiration


@dataclass(frozen=True)
class _NoiseLevels:
    """ECG noise amplitudes in mV, before the global ``noise`` scale."""

    white: float
    emg: float
    resp: float
    drift: float
    mains: float  # 0 when the subject has no mains interference


@dataclass(frozen=True)
class _Pulse:
    """PPG pulse shape: transit time from the R peak, systolic rise and fall, dicrotic delay and size."""

    ptt0: float
    rise: float
    fall: float
    dicrotic: float
    dia: float


@dataclass(frozen=True)
class _Physiology:
    rhythm: _Rhythm
    morph: _Morphology
    noise: _NoiseLevels
    pulse: _Pulse
    state_factor: dict[str, float]  # per known state: reactivity × the subject's own response


@dataclass(frozen=True)
class _Session:
    """The state blocks in session order, with each block's target values."""

    order: list[str]
    starts: np.ndarray  # block start times, s
    hr: np.ndarray  # bpm
    resp: np.ndarray  # breaths/min
    vagal: np.ndarray  # log multiplier of the RSA amplitude
    lf: np.ndarray  # log multiplier of the LF amplitude
    ptt: np.ndarray  # PTT change, s
    ppg: np.ndarray  # log multiplier of the PPG amplitude


@dataclass(frozen=True)
class _Breathing:
    hz: np.ndarray  # breathing frequency on the time grid
    resp: np.ndarray  # respiration waveform (> 0: inspiration)
    lagged: np.ndarray  # the same, delayed by the RSA lag


@dataclass(frozen=True)
class _Beats:
    t: np.ndarray  # beat (R peak) times, s
    rr_smooth: np.ndarray  # heart period the QT and pulse shape adapt to, s
    resp: np.ndarray  # respiration at each beat


# ---- per-subject physiology: the draws from r_par keep this order (independent of states, durations, fs, ppg) -----


def _draw_reactivity(r: np.random.Generator, cohort: _Cohort) -> float:
    if cohort.reactivity_log_sd is not None:  # log-normal, median 1: nearly every subject responds
        return float(np.clip(math.exp(r.normal(0.0, cohort.reactivity_log_sd)), 0.5, 2.0))
    return float(np.clip(r.gamma(2.5, 0.4), 0.1, 3.0))  # many weak responders


def _draw_rhythm(r: np.random.Generator, cohort: _Cohort) -> _Rhythm:
    hr0 = float(np.clip(r.normal(70.0, cohort.hr_sd), *cohort.hr_range))
    resp0 = float(np.clip(r.normal(15.0, 2.5), 10.0, 22.0))
    hrv_scale = (60.0 / hr0 / 0.857) ** 2  # HRV grows with the heart period
    return _Rhythm(
        hr0=hr0,
        resp0=resp0,
        hf_amp0=float(np.clip(42.0 * math.exp(r.normal(0.0, 0.4)) * hrv_scale, 8.0, 120.0)),
        lf_amp0=float(np.clip(25.0 * math.exp(r.normal(0.0, 0.4)) * hrv_scale, 5.0, 80.0)),
        lf_freq=float(np.clip(r.normal(0.10, 0.008), 0.08, 0.12)),
        vlf_amp=float(12.0 * math.exp(r.normal(0.0, 0.3))),
        rsa_lag=float(r.uniform(0.2, 0.8)),
        reactivity=_draw_reactivity(r, cohort),
        ramp_s=float(r.uniform(3.0, 8.0)),
        resp_asym=float(r.uniform(0.1, 0.4)),
    )


def _draw_morphology(r: np.random.Generator) -> _Morphology:
    # lead gain and an electrical-axis-like projection (axis 0-90°, projection on lead II at 60°)
    gain = float(r.uniform(0.8, 1.3))
    axis = float(r.uniform(0.0, 90.0))
    proj = math.cos(math.radians(axis - 60.0))  # 0.5 … 1
    a_r = float(np.clip(gain * (0.35 + 0.75 * proj) * math.exp(r.normal(0.0, 0.1)), 0.65, 1.6))
    a_s = -gain * (0.08 + 0.5 * (1.0 - proj)) * float(r.uniform(0.6, 1.4))
    a_q = -gain * float(r.uniform(0.02, 0.1))
    a_p = float(np.clip(gain * r.uniform(0.08, 0.18) * (0.6 + 0.4 * proj), 0.06, 0.25))
    a_t = float(np.clip(math.sqrt(gain) * r.uniform(0.15, 0.45), 0.12, 0.5))
    mu_p, sd_p = float(r.uniform(-0.22, -0.16)), float(r.uniform(0.02, 0.03))
    mu_q, sd_q = float(r.uniform(-0.034, -0.026)), float(r.uniform(0.006, 0.009))
    sd_r = float(r.uniform(0.008, 0.012))
    mu_s, sd_s = float(r.uniform(0.028, 0.038)), float(r.uniform(0.007, 0.011))
    mu_t, sd_t = float(r.uniform(0.24, 0.30)), float(r.uniform(0.04, 0.06))
    edr = float(r.uniform(0.03, 0.1))
    return _Morphology(axis, a_p, a_q, a_r, a_s, a_t, mu_p, sd_p, mu_q, sd_q, sd_r, mu_s, sd_s, mu_t, sd_t, edr)


def _draw_noise_levels(r: np.random.Generator) -> _NoiseLevels:
    white, emg = float(r.uniform(0.005, 0.015)), float(r.uniform(0.005, 0.03))
    resp, drift = float(r.uniform(0.02, 0.1)), float(r.uniform(0.05, 0.2))
    has_mains = bool(r.uniform() < 0.3)
    return _NoiseLevels(white, emg, resp, drift, float(r.uniform(0.005, 0.03)) if has_mains else 0.0)


def _draw_pulse(r: np.random.Generator) -> _Pulse:
    return _Pulse(
        *(float(r.uniform(lo, hi)) for lo, hi in ((0.18, 0.28), (0.10, 0.15), (0.10, 0.14), (0.25, 0.32), (0.3, 0.6)))
    )


def _draw_physiology(r: np.random.Generator, cohort: _Cohort) -> _Physiology:
    rhythm = _draw_rhythm(r, cohort)
    morph, noise, pulse = _draw_morphology(r), _draw_noise_levels(r), _draw_pulse(r)
    # per-subject, per-known-state response factors (known-state order, drawn last)
    factor = {name: rhythm.reactivity * math.exp(r.normal(0.0, cohort.state_log_sd)) for name in STATES}
    return _Physiology(rhythm, morph, noise, pulse, factor)


# ---- session: block order and per-block targets ----------------------------------------------------------------


def _state_hr(rhythm: _Rhythm, effect: StateEffect, factor: float) -> float:
    return rhythm.hr0 + effect.hr_bpm * factor


def _state_resp(rhythm: _Rhythm, effect: StateEffect, factor: float) -> float:
    return max(5.0, min(30.0, rhythm.resp0 + effect.resp_bpm * factor))


def _session(r: np.random.Generator, states: list[str], phys: _Physiology, block_s: float) -> _Session:
    order = [states[i] for i in r.permutation(len(states))]
    block_offset = r.normal(0.0, 1.5, size=len(states))  # bpm, block-to-block HR variation
    block_offset[[i for i, s in enumerate(order) if s == "baseline"]] = 0.0  # resting HR is the baseline

    def per_block(fn: Any) -> np.ndarray:
        return np.array([fn(STATES[s], phys.state_factor[s]) for s in order], dtype=np.float64)

    rh = phys.rhythm
    return _Session(
        order=order,
        starts=np.arange(len(states)) * block_s,
        hr=per_block(lambda e, f: _state_hr(rh, e, f)) + block_offset,
        resp=per_block(lambda e, f: _state_resp(rh, e, f)),
        vagal=per_block(lambda e, f: e.vagal_log * f),
        lf=per_block(lambda e, f: e.lf_log * f),
        ptt=per_block(lambda e, f: e.ptt_ms * f / 1000.0),
        ppg=per_block(lambda e, f: e.ppg_log * f),
    )


# ---- continuous processes on the padded time grid t ------------------------------------------------------------


def _breathing(r: np.random.Generator, t: np.ndarray, fs: float, ses: _Session, rh: _Rhythm) -> _Breathing:
    n = t.size
    hz = _ramped(ses.resp, ses.starts, rh.ramp_s, t) / 60.0
    hz = hz * (1.0 + 0.06 * _band_noise(r, n, fs, 0.0, 0.02))
    phase = 2.0 * np.pi * np.cumsum(hz) / fs + r.uniform(0.0, 2.0 * np.pi)
    tidal = 1.0 + 0.15 * _band_noise(r, n, fs, 0.0, 0.03)
    resp = tidal * np.sin(phase + rh.resp_asym * np.sin(phase))
    lagged = tidal * np.sin(phase - 2 * np.pi * hz * rh.rsa_lag + rh.resp_asym * np.sin(phase))
    return _Breathing(hz, resp, lagged)


def _rsa_gain(f: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / np.sqrt(1.0 + (np.asarray(f) / _RSA_CORNER_HZ) ** 2)


def _heart_period(
    r: np.random.Generator, t: np.ndarray, fs: float, ses: _Session, rh: _Rhythm, br: _Breathing
) -> np.ndarray:
    """RR(t) in s: 60/HR + RSA + LF + VLF, never below 0.3 s."""
    n, ramp = t.size, rh.ramp_s
    hf_amp = (
        rh.hf_amp0 * np.exp(_ramped(ses.vagal, ses.starts, ramp, t)) * _rsa_gain(br.hz) / _rsa_gain(rh.resp0 / 60.0)
    )
    lf_amp = rh.lf_amp0 * np.exp(_ramped(ses.lf, ses.starts, ramp, t))
    rr_ms = (
        -hf_amp * br.lagged
        + lf_amp * _band_noise(r, n, fs, rh.lf_freq, 0.015)
        + rh.vlf_amp * _band_noise(r, n, fs, 0.0, 0.015)
    )
    return np.maximum(60.0 / _ramped(ses.hr, ses.starts, ramp, t) + rr_ms / 1000.0, 0.3)


def _beats(r: np.random.Generator, t: np.ndarray, fs: float, rr_t: np.ndarray, resp: np.ndarray) -> _Beats:
    """Integral pulse frequency modulation: a beat at every integer crossing of the cumulative phase."""
    beat_phase = np.cumsum(1.0 / rr_t) / fs + r.uniform(0.0, 1.0)
    fl = np.floor(beat_phase)
    i = np.flatnonzero(np.diff(fl) > 0)
    frac = (fl[i + 1] - beat_phase[i]) / (beat_phase[i + 1] - beat_phase[i])
    beat_t = t[i] + frac / fs + r.normal(0.0, 0.002, size=i.size)
    rr_beat = np.diff(beat_t, prepend=beat_t[0] - rr_t[i[0]])
    rr_smooth = np.empty_like(rr_beat)  # QT adapts over a few beats
    acc = rr_beat[0]
    for j, v in enumerate(rr_beat):
        acc += 0.3 * (v - acc)
        rr_smooth[j] = acc
    return _Beats(beat_t, rr_smooth, np.interp(beat_t, t, resp))


# ---- signals ---------------------------------------------------------------------------------------------------


def _ecg(r: np.random.Generator, beats: _Beats, t: np.ndarray, fs: float, m: _Morphology) -> np.ndarray:
    """Noise-free ECG: per beat P, Q, R, S and an asymmetric T; QT ∝ RR^(1/3), PR ∝ RR^0.15."""
    nb = beats.t.size
    qt = beats.rr_smooth ** (1.0 / 3.0)
    pr = beats.rr_smooth**0.15
    jitter = 1.0 + 0.02 * r.standard_normal(nb)
    qrs_mod = (1.0 + m.edr * beats.resp) * jitter
    ones = np.ones(nb)
    waves = [
        (m.a_p * jitter, m.mu_p * pr, m.sd_p * ones, m.sd_p * ones),
        (m.a_q * qrs_mod, m.mu_q * ones, m.sd_q * ones, m.sd_q * ones),
        (m.a_r * qrs_mod, 0.0 * ones, m.sd_r * ones, m.sd_r * ones),
        (m.a_s * qrs_mod, m.mu_s * ones, m.sd_s * ones, m.sd_s * ones),
        (m.a_t * (1.0 + 0.5 * m.edr * beats.resp) * jitter, m.mu_t * qt, 1.25 * m.sd_t * qt, 0.8 * m.sd_t * qt),
    ]
    return _render(beats.t, t.size, fs, t[0], waves)


def _add_ecg_noise(
    ecg: np.ndarray, r: np.random.Generator, t: np.ndarray, fs: float, lv: _NoiseLevels, resp: np.ndarray, noise: float
) -> None:
    """Add (in place) white, burst-modulated muscle (EMG), respiratory wander, drift and, in some subjects, mains."""
    n = t.size
    emg_env = 0.3 + 1.4 / (1.0 + np.exp(-3.0 * _band_noise(r, n, fs, 0.0, 0.1)))
    emg = _bandpass_noise(r, n, fs, 20.0, min(150.0, 0.45 * fs)) * emg_env
    wander = lv.resp * resp + lv.drift * _band_noise(r, n, fs, 0.0, 0.03)
    ecg += noise * (lv.white * r.standard_normal(n) + lv.emg * emg + wander)
    if lv.mains > 0 and fs > 2.08 * _MAINS_HZ:
        ecg += noise * lv.mains * np.sin(2 * np.pi * _MAINS_HZ * t + r.uniform(0.0, 2 * np.pi))


def _ppg(
    r: np.random.Generator,
    beats: _Beats,
    br: _Breathing,
    t: np.ndarray,
    fs: float,
    ses: _Session,
    phys: _Physiology,
    noise: float,
) -> np.ndarray:
    """PPG: systolic and diastolic waves per beat, delayed by the PTT; PTT and amplitude follow the states."""
    nb, ramp, pulse = beats.t.size, phys.rhythm.ramp_s, phys.pulse
    ptt = (
        pulse.ptt0
        + np.interp(beats.t, t, _ramped(ses.ptt, ses.starts, ramp, t))
        + 0.005 * beats.resp
        + r.normal(0.0, 0.003, size=nb)
    )
    amp = np.exp(np.interp(beats.t, t, _ramped(ses.ppg, ses.starts, ramp, t))) * (1.0 + 0.1 * beats.resp)
    amp *= 1.0 + 0.03 * r.standard_normal(nb)
    sq = np.sqrt(beats.rr_smooth)
    peak = ptt + pulse.rise
    ones = np.ones(nb)
    waves = [
        (amp, peak, pulse.rise / 2.5 * ones, pulse.fall * sq),
        (amp * pulse.dia, peak + pulse.dicrotic * sq, 0.07 * ones, 0.09 * sq),
    ]
    ppg = _render(beats.t, t.size, fs, t[0], waves)
    if noise > 0:
        ppg += noise * (
            0.01 * r.standard_normal(t.size)
            + r.uniform(0.03, 0.1) * br.resp
            + r.uniform(0.03, 0.15) * _band_noise(r, t.size, fs, 0.0, 0.03)
        )
    return ppg


# ---- planted cue: a morphology change on some beats of one state (its own random stream) -----------------------

_CUE_SD = 2.5  # a cue wave is a Gaussian cut at ± 2.5 SD and lowered to 0 there: exactly 0 outside its span
_CUE_EDGE = math.exp(-0.5 * _CUE_SD**2)
_CUE_STREAM = 100  # spawn key of the cue's stream: far from the children 0-4 here and 5-7 of cohort.py
ST_ELEVATION_MV = 0.2  # ST elevation at the segment's middle (≥ 0.1 mV is clinically significant)
REFLECTED_WAVE = 0.3  # PPG reflected wave, × the beat's systolic amplitude


@dataclass(frozen=True)
class _CueWaves:
    """One channel's added wave per cue beat: amplitude, centre (s after the session start), left and right SD (s)."""

    amp: np.ndarray
    centre: np.ndarray
    sl: np.ndarray
    sr: np.ndarray

    def take(self, i: np.ndarray) -> _CueWaves:
        return _CueWaves(self.amp[i], self.centre[i], self.sl[i], self.sr[i])

    def spans(self) -> np.ndarray:
        """(beats, 2) [start, end) in s of the samples each wave changes."""
        return np.stack([self.centre - _CUE_SD * self.sl, self.centre + _CUE_SD * self.sr], axis=1)

    def render(self, n: int, fs: float) -> np.ndarray:
        """The waves summed into ``n`` session samples (sample 0 at 0 s); exactly 0 outside :meth:`spans`."""
        out = np.zeros(n)
        if self.amp.size == 0:
            return out
        first = np.ceil((self.centre - _CUE_SD * self.sl) * fs).astype(np.int64)
        width = int(np.ceil(np.max(_CUE_SD * (self.sl + self.sr)) * fs)) + 1
        idx = first[:, None] + np.arange(width)[None, :]  # (beats, width)
        d = idx / fs - self.centre[:, None]
        z = d / np.where(d < 0, self.sl[:, None], self.sr[:, None])
        shape = np.maximum((np.exp(-0.5 * z**2) - _CUE_EDGE) / (1.0 - _CUE_EDGE), 0.0)
        ok = (idx >= 0) & (idx < n) & (shape > 0)
        return out + np.bincount(idx[ok], weights=(self.amp[:, None] * shape)[ok], minlength=n)


def _ecg_cue(cue: str, beats: _Beats, m: _Morphology, scale: np.ndarray) -> _CueWaves:
    """ST elevation from the J point to the T peak, or the T wave inverted; both follow the beat's QT."""
    qt = beats.rr_smooth ** (1.0 / 3.0)
    t_peak = m.mu_t * qt
    if cue == "st_elevation":
        j = m.mu_s + 2.5 * m.sd_s  # J point: the end of the S wave
        sd = (t_peak - j) / (2.0 * _CUE_SD)
        return _CueWaves(ST_ELEVATION_MV * scale, beats.t + 0.5 * (j + t_peak), sd, sd)
    # t_inversion: minus twice the T wave over its central ± 2.5 SD, so the T wave points down as much as it rose
    amp = -2.0 * m.a_t * (1.0 + 0.5 * m.edr * beats.resp) * scale
    return _CueWaves(amp, beats.t + t_peak, 1.25 * m.sd_t * qt, 0.8 * m.sd_t * qt)


def _ppg_cue(beats: _Beats, t: np.ndarray, ses: _Session, phys: _Physiology, scale: np.ndarray) -> _CueWaves:
    """An early reflected wave (as with stiff arteries): a late-systolic shoulder before the diastolic wave."""
    ramp, pulse = phys.rhythm.ramp_s, phys.pulse
    ptt = pulse.ptt0 + np.interp(beats.t, t, _ramped(ses.ptt, ses.starts, ramp, t)) + 0.005 * beats.resp
    amp = np.exp(np.interp(beats.t, t, _ramped(ses.ppg, ses.starts, ramp, t))) * (1.0 + 0.1 * beats.resp)
    dicrotic = pulse.dicrotic * np.sqrt(beats.rr_smooth)  # systolic peak to diastolic wave, s
    sd = 0.2 * dicrotic
    return _CueWaves(REFLECTED_WAVE * amp * scale, beats.t + ptt + pulse.rise + 0.6 * dicrotic, sd, sd)


@dataclass(frozen=True)
class _Cue:
    state: str
    beats: np.ndarray  # indices into the simulation's beats
    ecg: _CueWaves
    ppg: _CueWaves


def _plant_cue(sim: Simulation, p: dict[str, Any]) -> _Cue:
    """The beats that carry the cue and their waves: a ``cue_fraction`` draw among the beats whose R peak and
    modified samples (ECG and PPG, whether or not the PPG is generated) all lie in one labelled stretch of
    ``cue_state``."""
    ss = sim.seeds
    r = np.random.default_rng(np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, _CUE_STREAM)))
    nb = sim.beats.t.size
    pick = r.random(nb) < p["cue_fraction"]
    ecg_scale, ppg_scale = r.uniform(0.8, 1.2, nb), r.uniform(0.8, 1.2, nb)
    ecg = _ecg_cue(p["cue"], sim.beats, sim.phys.morph, ecg_scale)
    ppg = _ppg_cue(sim.beats, sim.t, sim.session, sim.phys, ppg_scale)
    lo = np.minimum.reduce([sim.beats.t, ecg.spans()[:, 0], ppg.spans()[:, 0]])
    hi = np.maximum(ecg.spans()[:, 1], ppg.spans()[:, 1])
    state = p["cue_state"] if p["cue_state"] is not None else p["states"][-1]
    inside = np.zeros(nb, dtype=bool)
    for a, b in sim.segments[state]:
        inside |= (lo >= a) & (hi <= b)
    keep = np.flatnonzero(inside & pick)
    return _Cue(state, keep, ecg.take(keep), ppg.take(keep))


def _cue_meta(cue: _Cue, sim: Simulation, p: dict[str, Any]) -> dict[str, Any]:
    spans = {"ecg": cue.ecg.spans()}
    if p["ppg"]:
        spans["ppg"] = cue.ppg.spans()
    return {
        "cue": p["cue"],
        "cue_state": cue.state,
        "cue_fraction": p["cue_fraction"],
        "cue_spans_s": spans,
        "cue_r_peaks": np.round(sim.beats.t[cue.beats] * sim.fs).astype(np.int64),
    }


# ---- labels and ground truth -----------------------------------------------------------------------------------


def _labels(order: list[str], states: list[str], block: int, fs: float) -> tuple[np.ndarray, dict[str, list]]:
    """Per-sample labels (``UNLABELLED`` for ``TRANSITION_S`` after each change) and each state's labelled spans."""
    labels = np.empty(block * len(order), dtype=np.int64)
    trans = min(round(TRANSITION_S * fs), block)
    segments: dict[str, list[tuple[float, float]]] = {s: [] for s in states}
    for j, s in enumerate(order):
        a, b = j * block, (j + 1) * block
        labels[a:b] = states.index(s)
        if j > 0:
            labels[a : a + trans] = UNLABELLED
            a += trans
        segments[s].append((a / fs, b / fs))
    return labels, segments


def _ground_truth(
    phys: _Physiology, ses: _Session, beats: _Beats, segments: dict[str, list], n: int, fs: float
) -> dict[str, Any]:
    rh, m, factor = phys.rhythm, phys.morph, phys.state_factor
    in_session = (beats.t >= 0.0) & (beats.t < n / fs)
    r_peaks = np.round(beats.t[in_session] * fs).astype(np.int64)
    measured = {s: _rmssd_and_hr(beats.t, spans) for s, spans in segments.items()}
    targets = {
        s: {
            "hr_bpm": float(_state_hr(rh, STATES[s], factor[s])),
            "resp_rate_bpm": float(_state_resp(rh, STATES[s], factor[s])),
            "rsa_amp_ms": float(rh.hf_amp0 * math.exp(STATES[s].vagal_log * factor[s])),
            "lf_amp_ms": float(rh.lf_amp0 * math.exp(STATES[s].lf_log * factor[s])),
            "response": float(factor[s]),
        }
        for s in segments
    }
    return {
        "baseline_hr": rh.hr0,
        "resp_rate_bpm": rh.resp0,
        "rsa_amp_ms": rh.hf_amp0,
        "lf_amp_ms": rh.lf_amp0,
        "lf_freq_hz": rh.lf_freq,
        "reactivity": rh.reactivity,
        "ramp_s": rh.ramp_s,
        "block_order": ses.order,
        "block_start_s": [float(x) for x in ses.starts],
        "r_peaks": r_peaks[(r_peaks >= 0) & (r_peaks < n)],
        "state_mean_hr": {s: hr for s, (hr, _) in measured.items()},
        "state_rmssd_ms": {s: rmssd for s, (_, rmssd) in measured.items()},
        "state_targets": targets,
        "morphology": {"r_mv": m.a_r, "s_mv": m.a_s, "q_mv": m.a_q, "p_mv": m.a_p, "t_mv": m.a_t, "axis_deg": m.axis},
        "ptt_s": phys.pulse.ptt0,
        "mains": phys.noise.mains > 0,
    }


@dataclass(frozen=True)
class Simulation:
    """One subject's simulated physiology before any signal is rendered (also used by :mod:`ape_nas.data.cohort`).

    ``t`` is the padded time grid at ``fs`` (``pad`` samples either side of the ``n`` session samples); the beats,
    breathing and session blocks live on it. ``r_ecg`` and ``r_ppg`` are the untouched random streams of the ECG
    and the PPG; ``seeds`` (children 0-4 spawned) can spawn further independent streams.
    """

    index: int
    fs: float
    n: int
    pad: int
    t: np.ndarray
    phys: _Physiology
    session: _Session
    breathing: _Breathing
    beats: _Beats
    labels: np.ndarray
    segments: dict[str, list[tuple[float, float]]]
    meta: dict[str, Any]  # the ground truth (:func:`_ground_truth`)
    r_ecg: np.random.Generator
    r_ppg: np.random.Generator
    seeds: np.random.SeedSequence


def simulate(index: int, p: dict[str, Any]) -> Simulation:
    """Subject ``index``'s physiology, session, beats, labels and ground truth for checked parameters ``p``."""
    fs, states = p["fs"], p["states"]
    block = round(p["minutes_per_state"] * 60.0 * fs)  # samples per block
    n = block * len(states)
    ss = np.random.SeedSequence([p["seed"], index])
    r_par, r_order, r_rr, r_ecg, r_ppg = (np.random.default_rng(c) for c in ss.spawn(5))

    phys = _draw_physiology(r_par, COHORT_DRAWS[p["cohort"]])
    ses = _session(r_order, states, phys, block / fs)
    pad = round(_PAD_S * fs)
    t = (np.arange(n + 2 * pad) - pad) / fs  # padded time grid, so edge beats are complete
    br = _breathing(r_rr, t, fs, ses, phys.rhythm)
    beats = _beats(r_rr, t, fs, _heart_period(r_rr, t, fs, ses, phys.rhythm, br), br.resp)
    labels, segments = _labels(ses.order, states, block, fs)
    meta = _ground_truth(phys, ses, beats, segments, n, fs)
    return Simulation(index, fs, n, pad, t, phys, ses, br, beats, labels, segments, meta, r_ecg, r_ppg, ss)


def _subject(index: int, p: dict[str, Any]) -> SubjectRecording:
    sim = simulate(index, p)
    fs, n, pad, t, noise, phys = sim.fs, sim.n, sim.pad, sim.t, p["noise"], sim.phys
    cue = _plant_cue(sim, p) if p["cue"] != "none" else None
    ecg = _ecg(sim.r_ecg, sim.beats, t, fs, phys.morph)
    if noise > 0:
        _add_ecg_noise(ecg, sim.r_ecg, t, fs, phys.noise, sim.breathing.resp, noise)
    ecg = ecg[pad : pad + n]
    if cue is not None:  # added last, and exactly 0 outside its spans: every other sample stays as it was
        ecg = ecg + cue.ecg.render(n, fs)
    signals = {"ecg": ecg.astype(np.float32)}
    if p["ppg"]:
        ppg = _ppg(sim.r_ppg, sim.beats, sim.breathing, t, fs, sim.session, phys, noise)[pad : pad + n]
        if cue is not None:
            ppg = ppg + cue.ppg.render(n, fs)
        signals["ppg"] = ppg.astype(np.float32)
    return SubjectRecording(
        subject=f"S{index + 1:02d}",
        signals=signals,
        rates=dict.fromkeys(signals, fs),
        labels=sim.labels,
        label_rate=fs,
        meta=sim.meta if cue is None else {**sim.meta, **_cue_meta(cue, sim, p)},
    )


def generate(
    *,
    subjects: int = 12,
    minutes_per_state: float = 2.0,
    fs: float = 128.0,
    states: tuple[str, ...] | list[str] = ("baseline", "stress"),
    ppg: bool = False,
    noise: float = 1.0,
    seed: int = 0,
    cohort: str = "broad",
    cue: str = "none",
    cue_state: str | None = None,
    cue_fraction: float = 0.5,
) -> BenchmarkData:
    """Generate the ``synthetic`` benchmark (see the module docstring for the model and its parameters).

    Same arguments → bit-identical data; subject ``i`` depends only on ``(seed, i)`` and the other arguments,
    so adding subjects leaves earlier ones unchanged. Invalid parameters raise :class:`SyntheticParamError`
    (both a ``ValueError`` and a :class:`~ape_nas.errors.KeyedError` keyed ``data.params.<key>``); a state
    not in :data:`STATES` raises its subclass :class:`UnknownStateError`, whose message lists the known states.
    """
    given = {"subjects": subjects, "minutes_per_state": minutes_per_state, "fs": fs, "states": states}
    planted = {"cue": cue, "cue_state": cue_state, "cue_fraction": cue_fraction}
    p = _check_params({**given, "ppg": ppg, "noise": noise, "seed": seed, "cohort": cohort, **planted})
    recs = [_subject(i, p) for i in range(p["subjects"])]
    return BenchmarkData(name=NAME, subjects=recs, class_names=list(p["states"]), params=p)
