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
=====================  ==================  =======================================================================

Per-subject physiology (drawn from the subject's seed)
------------------------------------------------------
=========================  ===============================  ===================================================
quantity                   distribution (clipped)           physiological range / reference
=========================  ===============================  ===================================================
resting HR                 N(70, 8) bpm, 50-95              adult resting HR 60-100 bpm, mean ≈ 70 (AHA; pop. studies)
breathing rate             N(15, 2.5) /min, 10-22           adult resting 12-20 breaths/min; HF band 0.15-0.4 Hz
                                                            (Task Force of ESC/NASPE 1996)
RSA amplitude (HF)         logN(median 42 ms, σ 0.4)        gives resting RMSSD ≈ 20-70 ms; short-term norm
                           × (RR0/0.857 s)², 8-120 ms       RMSSD 42 ± 15 ms (Nunan et al. 2010)
LF amplitude (SD)          logN(median 25 ms, σ 0.4)        LF 0.04-0.15 Hz (Task Force 1996); resting LF/HF ≈
                           × (RR0/0.857 s)², 5-80 ms        1-2 (Nunan et al. 2010)
LF (Mayer) frequency       N(0.10, 0.008) Hz, 0.08-0.12     Mayer waves ≈ 0.1 Hz (Julien 2006)
VLF drift (SD)             logN(median 12 ms, σ 0.3)        slow HR drift < 0.04 Hz
reactivity ``k``           Gamma(2.5, 0.4), 0.1-3           strong vs weak stress responders (TSST HR rise
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
``morphology``, ``ptt_s`` and ``mains``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ape_nas.data.types import UNLABELLED, BenchmarkData, SubjectRecording
from ape_nas.errors import UserError

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
}


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


class SyntheticParamError(UserError, ValueError):
    """An invalid parameter of :func:`generate` (a one-line user error and a ``ValueError``)."""


class UnknownStateError(SyntheticParamError):
    """An affect state name not in :data:`STATES`."""


def _check_params(
    subjects: Any, minutes_per_state: Any, fs: Any, states: Any, ppg: Any, noise: Any, seed: Any
) -> dict[str, Any]:
    def _int(name: str, v: Any, lo: int, hi: int) -> int:
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or not lo <= v <= hi:
            raise SyntheticParamError(f"synthetic: {name} must be an integer in [{lo}, {hi}], got {v!r}")
        return int(v)

    def _float(name: str, v: Any, lo: float, hi: float) -> float:
        if (
            isinstance(v, bool)
            or not isinstance(v, int | float | np.integer | np.floating)
            or not math.isfinite(float(v))
            or not lo <= float(v) <= hi
        ):
            raise SyntheticParamError(f"synthetic: {name} must be a number in [{lo}, {hi}], got {v!r}")
        return float(v)

    if isinstance(states, str) or not isinstance(states, list | tuple) or not states:
        raise SyntheticParamError(
            f"synthetic: states must be a non-empty list of names from {', '.join(STATES)}, got {states!r}"
        )
    unknown = [s for s in states if not isinstance(s, str) or s not in STATES]
    if unknown:
        raise UnknownStateError(
            f"synthetic: unknown state(s) {', '.join(map(repr, unknown))}; known states: {', '.join(STATES)}"
        )
    if len(set(states)) != len(states):
        raise SyntheticParamError(f"synthetic: states must not repeat, got {list(states)}")
    if not isinstance(ppg, bool | np.bool_):
        raise SyntheticParamError(f"synthetic: ppg must be true or false, got {ppg!r}")
    return {
        "subjects": _int("subjects", subjects, 1, 999),
        "minutes_per_state": _float("minutes_per_state", minutes_per_state, 0.5, 600.0),
        "fs": _float("fs", fs, 64.0, 2000.0),
        "states": [str(s) for s in states],
        "ppg": bool(ppg),
        "noise": _float("noise", noise, 0.0, 100.0),
        "seed": _int("seed", seed, 0, 2**63 - 1),
    }


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


def _subject(index: int, p: dict[str, Any]) -> SubjectRecording:
    fs: float = p["fs"]
    states: list[str] = p["states"]
    noise: float = p["noise"]
    n_states = len(states)
    block = round(p["minutes_per_state"] * 60.0 * fs)  # samples per block
    n = block * n_states
    block_s = block / fs

    ss = np.random.SeedSequence([p["seed"], index])
    r_par, r_order, r_rr, r_ecg, r_ppg = (np.random.default_rng(c) for c in ss.spawn(5))

    # ---- per-subject physiology (fixed draw order: independent of states, durations, fs and ppg) ----------------
    hr0 = float(np.clip(r_par.normal(70.0, 8.0), 50.0, 95.0))
    rr0 = 60.0 / hr0
    resp0 = float(np.clip(r_par.normal(15.0, 2.5), 10.0, 22.0))  # breaths/min
    hrv_scale = (rr0 / 0.857) ** 2  # HRV grows with the heart period
    hf_amp0 = float(np.clip(42.0 * math.exp(r_par.normal(0.0, 0.4)) * hrv_scale, 8.0, 120.0))  # ms
    lf_amp0 = float(np.clip(25.0 * math.exp(r_par.normal(0.0, 0.4)) * hrv_scale, 5.0, 80.0))  # ms
    lf_freq = float(np.clip(r_par.normal(0.10, 0.008), 0.08, 0.12))
    vlf_amp = float(12.0 * math.exp(r_par.normal(0.0, 0.3)))  # ms
    rsa_lag = float(r_par.uniform(0.2, 0.8))  # s
    reactivity = float(np.clip(r_par.gamma(2.5, 0.4), 0.1, 3.0))
    ramp_s = float(r_par.uniform(3.0, 8.0))
    resp_asym = float(r_par.uniform(0.1, 0.4))
    # morphology: lead gain and an electrical-axis-like projection (axis 0-90°, projection on lead II at 60°)
    gain = float(r_par.uniform(0.8, 1.3))
    axis = float(r_par.uniform(0.0, 90.0))
    proj = math.cos(math.radians(axis - 60.0))  # 0.5 … 1
    a_r = float(np.clip(gain * (0.35 + 0.75 * proj) * math.exp(r_par.normal(0.0, 0.1)), 0.65, 1.6))
    a_s = -gain * (0.08 + 0.5 * (1.0 - proj)) * float(r_par.uniform(0.6, 1.4))
    a_q = -gain * float(r_par.uniform(0.02, 0.1))
    a_p = float(np.clip(gain * r_par.uniform(0.08, 0.18) * (0.6 + 0.4 * proj), 0.06, 0.25))
    a_t = float(np.clip(math.sqrt(gain) * r_par.uniform(0.15, 0.45), 0.12, 0.5))
    mu_p, sd_p = float(r_par.uniform(-0.22, -0.16)), float(r_par.uniform(0.02, 0.03))
    mu_q, sd_q = float(r_par.uniform(-0.034, -0.026)), float(r_par.uniform(0.006, 0.009))
    sd_r = float(r_par.uniform(0.008, 0.012))
    mu_s, sd_s = float(r_par.uniform(0.028, 0.038)), float(r_par.uniform(0.007, 0.011))
    mu_t, sd_t = float(r_par.uniform(0.24, 0.30)), float(r_par.uniform(0.04, 0.06))
    edr = float(r_par.uniform(0.03, 0.1))
    # noise amplitudes (mV, before the global ``noise`` scale)
    n_white = float(r_par.uniform(0.005, 0.015))
    n_emg = float(r_par.uniform(0.005, 0.03))
    n_resp = float(r_par.uniform(0.02, 0.1))
    n_drift = float(r_par.uniform(0.05, 0.2))
    has_mains = bool(r_par.uniform() < 0.3)
    n_mains = float(r_par.uniform(0.005, 0.03)) if has_mains else 0.0
    # PPG
    ptt0 = float(r_par.uniform(0.18, 0.28))
    ppg_rise = float(r_par.uniform(0.10, 0.15))
    ppg_fall = float(r_par.uniform(0.10, 0.14))
    ppg_dicrotic = float(r_par.uniform(0.25, 0.32))
    ppg_dia = float(r_par.uniform(0.3, 0.6))
    # per-subject, per-known-state response factors (known-state order, drawn last)
    state_factor = {name: reactivity * math.exp(r_par.normal(0.0, 0.35)) for name in STATES}

    # ---- session layout ----------------------------------------------------------------------------------------
    order = [states[i] for i in r_order.permutation(n_states)]
    block_offset = r_order.normal(0.0, 1.5, size=n_states)  # bpm, block-to-block HR variation
    block_offset[[i for i, s in enumerate(order) if s == "baseline"]] = 0.0  # resting HR is the baseline
    starts = np.arange(n_states) * block_s

    def per_block(fn: Any) -> np.ndarray:
        return np.array([fn(STATES[s], state_factor[s]) for s in order], dtype=np.float64)

    hr_b = per_block(lambda e, f: hr0 + e.hr_bpm * f) + block_offset
    resp_b = per_block(lambda e, f: max(5.0, min(30.0, resp0 + e.resp_bpm * f)))
    vagal_b = per_block(lambda e, f: e.vagal_log * f)
    lf_b = per_block(lambda e, f: e.lf_log * f)
    ptt_b = per_block(lambda e, f: e.ptt_ms * f / 1000.0)
    ppga_b = per_block(lambda e, f: e.ppg_log * f)

    # ---- continuous processes on the padded time grid --------------------------------------------------------
    pad = round(_PAD_S * fs)
    n_all = n + 2 * pad
    t = (np.arange(n_all) - pad) / fs
    hr_t = _ramped(hr_b, starts, ramp_s, t)
    resp_hz = _ramped(resp_b, starts, ramp_s, t) / 60.0
    resp_hz = resp_hz * (1.0 + 0.06 * _band_noise(r_rr, n_all, fs, 0.0, 0.02))
    phase = 2.0 * np.pi * np.cumsum(resp_hz) / fs + r_rr.uniform(0.0, 2.0 * np.pi)
    tidal = 1.0 + 0.15 * _band_noise(r_rr, n_all, fs, 0.0, 0.03)
    resp = tidal * np.sin(phase + resp_asym * np.sin(phase))  # > 0: inspiration
    resp_lag = tidal * np.sin(phase - 2 * np.pi * resp_hz * rsa_lag + resp_asym * np.sin(phase))

    def rsa_gain(f: np.ndarray | float) -> np.ndarray | float:
        return 1.0 / np.sqrt(1.0 + (np.asarray(f) / _RSA_CORNER_HZ) ** 2)

    hf_amp = hf_amp0 * np.exp(_ramped(vagal_b, starts, ramp_s, t)) * rsa_gain(resp_hz) / rsa_gain(resp0 / 60.0)
    lf_amp = lf_amp0 * np.exp(_ramped(lf_b, starts, ramp_s, t))
    rr_ms = (
        -hf_amp * resp_lag
        + lf_amp * _band_noise(r_rr, n_all, fs, lf_freq, 0.015)
        + vlf_amp * _band_noise(r_rr, n_all, fs, 0.0, 0.015)
    )
    rr_t = np.maximum(60.0 / hr_t + rr_ms / 1000.0, 0.3)

    # integral pulse frequency modulation: a beat at every integer crossing of the cumulative phase
    beat_phase = np.cumsum(1.0 / rr_t) / fs + r_rr.uniform(0.0, 1.0)
    fl = np.floor(beat_phase)
    i = np.flatnonzero(np.diff(fl) > 0)
    frac = (fl[i + 1] - beat_phase[i]) / (beat_phase[i + 1] - beat_phase[i])
    beat_t = t[i] + frac / fs + r_rr.normal(0.0, 0.002, size=i.size)
    rr_beat = np.diff(beat_t, prepend=beat_t[0] - rr_t[i[0]])
    rr_smooth = np.empty_like(rr_beat)  # QT adapts over a few beats
    acc = rr_beat[0]
    for j, v in enumerate(rr_beat):
        acc += 0.3 * (v - acc)
        rr_smooth[j] = acc
    resp_beat = np.interp(beat_t, t, resp)
    nb = beat_t.size

    # ---- ECG ---------------------------------------------------------------------------------------------------
    qt = rr_smooth ** (1.0 / 3.0)
    pr = rr_smooth**0.15
    jitter = 1.0 + 0.02 * r_ecg.standard_normal(nb)
    qrs_mod = (1.0 + edr * resp_beat) * jitter
    ones = np.ones(nb)
    ecg_waves = [
        (a_p * jitter, mu_p * pr, sd_p * ones, sd_p * ones),
        (a_q * qrs_mod, mu_q * ones, sd_q * ones, sd_q * ones),
        (a_r * qrs_mod, 0.0 * ones, sd_r * ones, sd_r * ones),
        (a_s * qrs_mod, mu_s * ones, sd_s * ones, sd_s * ones),
        (a_t * (1.0 + 0.5 * edr * resp_beat) * jitter, mu_t * qt, 1.25 * sd_t * qt, 0.8 * sd_t * qt),
    ]
    ecg = _render(beat_t, n_all, fs, t[0], ecg_waves)
    if noise > 0:
        emg_env = 0.3 + 1.4 / (1.0 + np.exp(-3.0 * _band_noise(r_ecg, n_all, fs, 0.0, 0.1)))
        emg = _bandpass_noise(r_ecg, n_all, fs, 20.0, min(150.0, 0.45 * fs)) * emg_env
        wander = n_resp * resp + n_drift * _band_noise(r_ecg, n_all, fs, 0.0, 0.03)
        ecg += noise * (n_white * r_ecg.standard_normal(n_all) + n_emg * emg + wander)
        if n_mains > 0 and fs > 2.08 * _MAINS_HZ:
            ecg += noise * n_mains * np.sin(2 * np.pi * _MAINS_HZ * t + r_ecg.uniform(0.0, 2 * np.pi))
    signals = {"ecg": ecg[pad : pad + n].astype(np.float32)}

    # ---- PPG ---------------------------------------------------------------------------------------------------
    if p["ppg"]:
        ptt = (
            ptt0
            + np.interp(beat_t, t, _ramped(ptt_b, starts, ramp_s, t))
            + 0.005 * resp_beat
            + r_ppg.normal(0.0, 0.003, size=nb)
        )
        amp = np.exp(np.interp(beat_t, t, _ramped(ppga_b, starts, ramp_s, t))) * (1.0 + 0.1 * resp_beat)
        amp *= 1.0 + 0.03 * r_ppg.standard_normal(nb)
        sq = np.sqrt(rr_smooth)
        peak = ptt + ppg_rise
        ppg_waves = [
            (amp, peak, ppg_rise / 2.5 * ones, ppg_fall * sq),
            (amp * ppg_dia, peak + ppg_dicrotic * sq, 0.07 * ones, 0.09 * sq),
        ]
        ppg = _render(beat_t, n_all, fs, t[0], ppg_waves)
        if noise > 0:
            ppg += noise * (
                0.01 * r_ppg.standard_normal(n_all)
                + r_ppg.uniform(0.03, 0.1) * resp
                + r_ppg.uniform(0.03, 0.15) * _band_noise(r_ppg, n_all, fs, 0.0, 0.03)
            )
        signals["ppg"] = ppg[pad : pad + n].astype(np.float32)

    # ---- labels and ground truth -------------------------------------------------------------------------------
    labels = np.empty(n, dtype=np.int64)
    trans = min(round(TRANSITION_S * fs), block)
    segments: dict[str, list[tuple[float, float]]] = {s: [] for s in states}
    for j, s in enumerate(order):
        a, b = j * block, (j + 1) * block
        labels[a:b] = states.index(s)
        if j > 0:
            labels[a : a + trans] = UNLABELLED
            a += trans
        segments[s].append((a / fs, b / fs))
    in_session = (beat_t >= 0.0) & (beat_t < n / fs)
    r_peaks = np.round(beat_t[in_session] * fs).astype(np.int64)
    r_peaks = r_peaks[(r_peaks >= 0) & (r_peaks < n)]
    state_hr, state_rmssd = {}, {}
    for s in states:
        state_hr[s], state_rmssd[s] = _rmssd_and_hr(beat_t, segments[s])
    targets = {
        s: {
            "hr_bpm": float(hr0 + STATES[s].hr_bpm * state_factor[s]),
            "resp_rate_bpm": float(max(5.0, min(30.0, resp0 + STATES[s].resp_bpm * state_factor[s]))),
            "rsa_amp_ms": float(hf_amp0 * math.exp(STATES[s].vagal_log * state_factor[s])),
            "lf_amp_ms": float(lf_amp0 * math.exp(STATES[s].lf_log * state_factor[s])),
            "response": float(state_factor[s]),
        }
        for s in states
    }
    meta = {
        "baseline_hr": hr0,
        "resp_rate_bpm": resp0,
        "rsa_amp_ms": hf_amp0,
        "lf_amp_ms": lf_amp0,
        "lf_freq_hz": lf_freq,
        "reactivity": reactivity,
        "ramp_s": ramp_s,
        "block_order": order,
        "block_start_s": [float(x) for x in starts],
        "r_peaks": r_peaks,
        "state_mean_hr": state_hr,
        "state_rmssd_ms": state_rmssd,
        "state_targets": targets,
        "morphology": {"r_mv": a_r, "s_mv": a_s, "q_mv": a_q, "p_mv": a_p, "t_mv": a_t, "axis_deg": axis},
        "ptt_s": ptt0,
        "mains": has_mains,
    }
    rates = {ch: fs for ch in signals}
    return SubjectRecording(
        subject=f"S{index + 1:02d}", signals=signals, rates=rates, labels=labels, label_rate=fs, meta=meta
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
) -> BenchmarkData:
    """Generate the ``synthetic`` benchmark (see the module docstring for the model and its parameters).

    Same arguments → bit-identical data; subject ``i`` depends only on ``(seed, i)`` and the other arguments,
    so adding subjects leaves earlier ones unchanged. Invalid parameters raise :class:`SyntheticParamError`
    (both a ``ValueError`` and an :class:`~ape_nas.errors.UserError`); a state not in :data:`STATES` raises its
    subclass :class:`UnknownStateError`, whose message lists the known states.
    """
    p = _check_params(subjects, minutes_per_state, fs, states, ppg, noise, seed)
    recs = [_subject(i, p) for i in range(p["subjects"])]
    return BenchmarkData(name=NAME, subjects=recs, class_names=list(p["states"]), params=p)
