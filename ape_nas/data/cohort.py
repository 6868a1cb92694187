"""Generated training cohorts (``ape-nas synth``): the ``synthetic`` physiology, rendered like a wrist wearable.

Every subject is one :func:`ape_nas.data.synthetic.simulate` session (same physiology draws, affect states, block
order, breathing, heart period and beats as the ``synthetic`` benchmark with ``fs = PHYSIOLOGY_FS``, same seed),
whose signals are rendered at each channel's own rate:

* ``bvp``: the synthetic PPG (systolic + diastolic wave per beat, pulse transit time and amplitude following the
  states) at the wristband's rate (default 64 Hz, the Empatica E4's), plus **motion artefacts**;
* ``ecg``: the synthetic ECG with its noise at its own rate (default 256 Hz); motion artefacts do not touch it
  (a chest ECG in the lab), so it is the clean reference beside the wrist channels;
* ``ibi``: the beats the wrist "device" reported (``time_s, ibi_s`` events), with **gaps like the E4's**.

Subject ``i`` depends only on ``(seed, i)`` and the other parameters (not on ``subjects``); the beats, the motion
artefact episodes and the device's dropouts do not depend on which channels are written or at which rates. With
``PHYSIOLOGY_FS`` as the ECG rate and ``artefacts = 0`` the ECG and BVP are the ``synthetic`` benchmark's ECG and PPG
(``generate(fs=128, ppg=True)``, same seed, states and minutes), bit for bit.

Real device reference (measured on ../shared/data/stress-predict, 28 subjects, E4 wristband, ≈ 55 min each)
-----------------------------------------------------------------------------------------------------------
* ``IBI.csv``: a beat is listed with the interval that ends at it, times on the 1/64-s BVP grid. Listed intervals
  cover 32 % of a recording on average (median 32 %, 6 % for S28 to 78 % for S06). A gap (time between a listed
  beat and the start of the next listed interval) occurs 2.2 times a minute (1.0-3.8 per subject); gap lengths:
  10th/25th/50th/75th/90th/95th/99th percentile 3.4/4.7/8.4/17.9/35/57/134 s, mean 17 s, shortest 1.6 s (1st
  percentile 2.3 s); gaps over 30 s are 13 % of gaps and half of the time lost. Runs of consecutive listed beats
  last 0.8/3.7/21/81 s (10th/50th/90th/99th percentile), 4-6 beats at the median. The first listed beat comes 22 s
  after the start (median; 10th/90th percentile 12/85 s).
* Coverage hardly depends on the state: 33 % of no-stress and 31 % of stress seconds (``binary`` labels).
* ``BVP.csv``: seconds whose BVP standard deviation exceeds 4 × the subject's median one (movement) are 10.6 % of
  no-stress and 9.8 % of stress seconds; such episodes start 2.7 times a minute and last 1 s (median; 90th
  percentile 4 s, 99th 13 s) at 4.3/6.3/15 × the median SD (10th/50th/90th percentile). The device lists a beat in
  0.6 % of these seconds, and in 36 % of the others: artefacts explain only part of the gaps; most are the
  device's own dropouts in clean-looking signal.

The model (``artefacts = 1``, the default; :data:`ARTEFACTS` holds every constant)
---------------------------------------------------------------------------------
* **Motion episodes** come in bouts, at the same rate in every state (the real data show no state effect, and a
  state-dependent rate would hand a classifier a non-cardiac cue). A subject's activity ``exp(N(0, 0.8))`` scales
  its bout rate of 2.2 per minute (Poisson); a bout has ``1 + Poisson(2)`` episodes with exponentially spaced starts
  (mean 4 s), so episodes cluster as in the E4 data (inter-episode intervals there: median 8 s, mean 22 s). An
  episode lasts log-normal (median 0.7 s, σ 1.1, 0.3-60 s) at log-uniform 2.5-20 × the subject's clean BVP
  standard deviation. Its waveform is Gaussian noise with a Gaussian spectrum of width 1.2 Hz around 0 Hz (large,
  slow, non-cardiac movement) under a raised-cosine envelope (0.25 s edges), added to the PPG: the signal has no
  NaN, the waveform is corrupted instead.
* **Device**: the wrist device lists beat ``k`` (its pulse arrival: R peak + transit time + systolic rise, on a
  1/2^m-s grid with 2^m ≥ the BVP rate: 1/64 s at 64 Hz, like the E4) with the interval from beat ``k - 1`` only
  when that interval meets no lost span. Lost spans: each motion episode (from 0.25 s before it to a recovery of
  1-3 s after it); a warm-up at the start (10-30 s, at most a tenth of the session); and the device's own
  dropouts, an alternating process of tracking runs (log-normal, median 5.5 s × q, σ 1.25) and lost gaps (1.5 s +
  log-normal with median 5.5 s / q, σ 1.1), where the subject's device quality ``q = exp(N(0, 0.5))`` spreads
  coverage across subjects like the E4's. A subject keeps at least a few listed beats (its dropouts are drawn
  again otherwise).
* ``artefacts = a`` multiplies the bout rate and the dropout gaps' lengths by ``a`` (the warm-up by ``min(a, 1)``);
  ``0`` gives an artefact-free BVP and every beat listed.

Measured on the model with the same code as the real data (3 seeds × 28 subjects × 55 min, ``a = 1``): coverage
33 % (median 31 %, 4-74 %), 2.4 gaps a minute (0.7-3.5), gap lengths 3.5/4.9/8.8/18.3/37/57/117 s (mean 17 s,
13 % over 30 s, half the time lost), runs 0.8/4.0/20/65 s, first listed beat after 23 s (median); BVP movement
seconds 8.7 % (0.7-21 % per subject), 2.5 episodes a minute lasting 1/1/4/10 s at 4.4/7.1/14 × the median SD;
a beat listed in 0 % of movement seconds and 36 % of the others; coverage 33 % of baseline and 33 % of stress
seconds, movement 8.9 % and 8.6 %.

Labels are per second (``LABEL_RATE``): a second is labelled with its state when it lies wholly inside one of the
state's labelled spans (the ``synthetic`` benchmark's: each block after the first ``TRANSITION_S`` seconds).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ape_nas.data import synthetic
from ape_nas.data.synthetic import (
    _PAD_S,
    _add_ecg_noise,
    _band_noise,
    _Breathing,
    _ecg,
    _ppg,
    _ramped,
    simulate,
)
from ape_nas.data.types import UNLABELLED, BenchmarkData, SubjectRecording
from ape_nas.errors import UserError

NAME = "synth"
VERSION = 1  # bump whenever the output changes for the same parameters
PHYSIOLOGY_FS = 128.0  # Hz of the simulated physiology (the synthetic benchmark's default fs)
LABEL_RATE = 1.0
SIGNALS = ("bvp", "ibi", "ecg")  # known channels, in this order in dataset.yaml
EVENT_CHANNELS = ("ibi",)
DEFAULT_SIGNALS = ("bvp", "ibi")
DEFAULT_RATES = {"bvp": 64.0, "ecg": 256.0}
RATE_RANGES = {"bvp": (16.0, 2000.0), "ecg": (64.0, 2000.0)}
UNITS = {"bvp": "a.u.", "ecg": "mV", "ibi": "s"}
MAX_ARTEFACTS = 10.0
MIN_LISTED_BEATS = 3  # a subject's device lists at least this many beats (dropouts redrawn otherwise)


@dataclass(frozen=True)
class ArtefactModel:
    """Motion artefacts and the wrist device's beat dropouts at ``artefacts = 1`` (see the module docstring)."""

    bouts_per_min: float = 2.2  # movement bouts, × the subject's activity
    activity_log_sd: float = 0.8
    bout_extra: float = 2.0  # a bout has 1 + Poisson(bout_extra) episodes …
    bout_spacing_s: float = 4.0  # … with exponentially spaced starts (mean)
    episode_median_s: float = 0.7
    episode_log_sd: float = 1.1
    episode_range_s: tuple[float, float] = (0.3, 60.0)
    amplitude_range: tuple[float, float] = (2.5, 20.0)  # × the subject's clean BVP SD, log-uniform
    motion_width_hz: float = 1.2  # Gaussian spectrum around 0 Hz
    edge_s: float = 0.25  # raised-cosine rise and fall of an episode
    lost_before_s: float = 0.25  # the device loses beats from this long before an episode …
    recovery_s: tuple[float, float] = (1.0, 3.0)  # … to this long after it (uniform)
    warmup_s: tuple[float, float] = (10.0, 30.0)  # uniform, at most warmup_max_frac of the session
    warmup_max_frac: float = 0.1
    run_median_s: float = 5.5  # tracking runs: log-normal, × q
    run_log_sd: float = 1.25
    gap_floor_s: float = 1.5  # lost gaps: floor + log-normal, median / q
    gap_median_s: float = 5.5
    gap_log_sd: float = 1.1
    quality_log_sd: float = 0.5  # q = exp(N(0, quality_log_sd)) per subject


ARTEFACTS = ArtefactModel()


class CohortParamError(UserError):
    """A bad parameter of :func:`generate`: ``key`` (the parameter) and ``problem``."""

    def __init__(self, key: str, problem: str) -> None:
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}")


@dataclass(frozen=True)
class CohortParams:
    subjects: int
    seed: int
    minutes_per_state: float
    states: tuple[str, ...]
    class_names: tuple[str, ...]
    signals: tuple[str, ...]
    rates: dict[str, float]
    artefacts: float
    noise: float
    cohort: str

    def plain(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def check_params(
    *,
    subjects: int = 12,
    seed: int = 0,
    minutes_per_state: float = 5.0,
    states: Sequence[str] = ("baseline", "stress"),
    class_names: Sequence[str] | None = None,
    signals: Sequence[str] = DEFAULT_SIGNALS,
    rates: dict[str, float] | None = None,
    artefacts: float = 1.0,
    noise: float = 1.0,
    cohort: str = "broad",
) -> CohortParams:
    """Checked parameters; a bad one raises :class:`CohortParamError` naming it."""
    states = tuple(states)
    try:
        p = synthetic._check_params(
            {
                "subjects": subjects,
                "minutes_per_state": minutes_per_state,
                "fs": PHYSIOLOGY_FS,
                "states": list(states),
                "ppg": True,
                "noise": noise,
                "seed": seed,
                "cohort": cohort,
            }
        )
    except synthetic.SyntheticParamError as err:
        raise CohortParamError(err.keys[0][-1], err.problem) from None
    if p["subjects"] < 2:
        raise CohortParamError("subjects", f"got {subjects}; expected at least 2 (subject-independent splits)")
    if len(set(states)) != len(states):
        raise CohortParamError("states", f"{', '.join(states)} repeats a state; expected distinct states")
    names = states if class_names is None else tuple(class_names)
    if len(names) != len(states):
        raise CohortParamError(
            "class_names", f"{len(names)} names for {len(states)} states; expected one class name per state, in order"
        )
    if any(not n.strip() or "," in n for n in names) or len(set(names)) != len(names):
        raise CohortParamError("class_names", f"{', '.join(names)}: expected distinct, non-empty names without commas")
    signals = tuple(signals)
    unknown = [s for s in signals if s not in SIGNALS]
    if unknown:
        raise CohortParamError(
            "signals", f"unknown signal(s) {', '.join(map(repr, unknown))}; expected some of {', '.join(SIGNALS)}"
        )
    if not signals or len(set(signals)) != len(signals):
        raise CohortParamError("signals", f"{', '.join(signals) or 'none'}: expected distinct channels")
    if not any(s not in EVENT_CHANNELS for s in signals):
        raise CohortParamError("signals", "only beat events; expected at least one signal (bvp or ecg)")
    chosen = dict(DEFAULT_RATES)
    for ch, rate in (rates or {}).items():
        if ch in EVENT_CHANNELS:
            raise CohortParamError("rate", f"{ch} holds beat events and has no rate; expected a rate for bvp or ecg")
        if ch not in RATE_RANGES:
            raise CohortParamError("rate", f"unknown channel {ch!r}; expected one of {', '.join(RATE_RANGES)}")
        if ch not in signals:
            chosen_text = ", ".join(signals)
            raise CohortParamError("rate", f"{ch} is not among the signals ({chosen_text}); expected a rate for one")
        lo, hi = RATE_RANGES[ch]
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not (lo <= rate <= hi):
            raise CohortParamError("rate", f"{ch}={rate!r}; expected a rate in Hz from {lo:g} to {hi:g}")
        chosen[ch] = float(rate)
    if isinstance(artefacts, bool) or not isinstance(artefacts, int | float) or not 0 <= artefacts <= MAX_ARTEFACTS:
        raise CohortParamError("artefacts", f"got {artefacts!r}; expected a level from 0 (none) to {MAX_ARTEFACTS:g}")
    ordered = tuple(s for s in SIGNALS if s in signals)
    return CohortParams(
        subjects=p["subjects"],
        seed=p["seed"],
        minutes_per_state=p["minutes_per_state"],
        states=states,
        class_names=names,
        signals=ordered,
        rates={ch: chosen[ch] for ch in ordered if ch in chosen},
        artefacts=float(artefacts),
        noise=p["noise"],
        cohort=p["cohort"],
    )


def generate(**kwargs: Any) -> BenchmarkData:
    """The whole cohort in memory (parameters of :func:`check_params`); ``ape-nas synth`` streams the same subjects."""
    p = check_params(**kwargs)
    return BenchmarkData(NAME, list(iter_subjects(p)), list(p.class_names), params=p.plain())


@dataclass(frozen=True)
class CohortStream:
    """The cohort as :func:`ape_nas.data.folder_writer.write_folder` takes it, subjects generated as it goes."""

    name: str
    class_names: list[str]
    subjects: Iterator[SubjectRecording]


def stream(p: CohortParams) -> CohortStream:
    return CohortStream(NAME, list(p.class_names), iter_subjects(p))


def iter_subjects(p: CohortParams) -> Iterator[SubjectRecording]:
    """The subjects one at a time (one subject's arrays in memory at once)."""
    for i in range(p.subjects):
        yield subject(i, p)


def _synthetic_params(p: CohortParams) -> dict[str, Any]:
    return {
        "minutes_per_state": p.minutes_per_state,
        "fs": PHYSIOLOGY_FS,
        "states": list(p.states),
        "noise": p.noise,
        "seed": p.seed,
        "cohort": p.cohort,
    }


def device_resolution(p: CohortParams) -> float:
    """Time grid of the device's beats, s: 1/2^m with 2^m ≥ the BVP rate (1/64 s at the E4's 64 Hz)."""
    rate = p.rates.get("bvp", DEFAULT_RATES["bvp"])
    return 1.0 / 2.0 ** math.ceil(math.log2(rate))


def subject(index: int, p: CohortParams) -> SubjectRecording:
    """Subject ``index`` (0-based; id ``S01`` …): signals, device beats, per-second labels, ground truth in meta."""
    sim = simulate(index, _synthetic_params(p))
    duration = sim.n / sim.fs
    r_art, r_dev, r_motion = (np.random.default_rng(c) for c in sim.seeds.spawn(3))
    level = p.artefacts
    episodes = _episodes(r_art, duration, level)
    arrival = _pulse_arrival(sim)
    grid = device_resolution(p)
    beat_t = np.round(arrival / grid) * grid + 0.0  # + 0.0: no -0.0
    device = _device(r_dev, beat_t, duration, episodes, level)
    signals: dict[str, np.ndarray] = {}
    clean_sd = None
    for ch in p.signals:
        if ch == "ecg":
            signals[ch] = _render_ecg(sim, p.rates[ch], duration, p.noise)
        elif ch == "bvp":
            signals[ch], clean_sd = _render_bvp(sim, p.rates[ch], duration, p.noise, episodes, r_motion)
    events = {}
    if "ibi" in p.signals:
        k = device["listed"]
        events["ibi"] = np.c_[beat_t[k], beat_t[k] - beat_t[k - 1]]
    rec = SubjectRecording(
        subject=f"S{index + 1:02d}",
        signals=signals,
        rates={ch: p.rates[ch] for ch in signals},
        labels=np.empty(0, dtype=np.int64),
        label_rate=LABEL_RATE,
        meta={"units": {ch: UNITS[ch] for ch in p.signals}},
        events=events,
    )
    rec.labels = _labels(sim.segments, list(p.states), round(rec.duration_s() * LABEL_RATE))
    rec.meta["ground_truth"] = _truth(sim, p, episodes, device, beat_t, duration, clean_sd)
    return rec


# ---- motion artefacts ------------------------------------------------------------------------------------------


def _episodes(r: np.random.Generator, duration: float, level: float) -> dict[str, Any]:
    """Motion episodes (start, end in s, relative amplitude, device recovery in s), in bouts; state-independent.

    A subject's activity ``exp(N(0, activity_log_sd))`` scales its bout rate; bouts are a Poisson process, each
    with ``1 + Poisson(bout_extra)`` episodes whose starts are exponentially spaced (mean ``bout_spacing_s``).
    """
    m = ARTEFACTS
    activity = math.exp(r.normal(0.0, m.activity_log_sd))
    n_bouts = int(r.poisson(m.bouts_per_min * activity * level * duration / 60.0)) if level > 0 else 0
    bout_start = np.sort(r.uniform(0.0, duration, n_bouts))
    per_bout = 1 + r.poisson(m.bout_extra, n_bouts)
    spacing = r.exponential(m.bout_spacing_s, int(per_bout.sum()))
    csum = np.cumsum(spacing)
    within = csum - np.repeat(csum[np.cumsum(per_bout) - per_bout], per_bout)  # 0 at each bout's first episode
    start = np.repeat(bout_start, per_bout) + within
    count = start.size
    length = np.clip(m.episode_median_s * np.exp(r.normal(0.0, m.episode_log_sd, count)), *m.episode_range_s)
    lo, hi = np.log(m.amplitude_range)
    amplitude = np.exp(r.uniform(lo, hi, count))
    recovery = r.uniform(*m.recovery_s, count)
    keep = start < duration
    order = np.argsort(start[keep], kind="stable")
    start, length, amplitude, recovery = (x[keep][order] for x in (start, length, amplitude, recovery))
    return {
        "activity": activity,
        "start": start,
        "end": np.minimum(start + length, duration),
        "amplitude": amplitude,
        "recovery": recovery,
    }


def _envelope(t: np.ndarray, episodes: dict[str, np.ndarray]) -> np.ndarray:
    """Largest episode amplitude at each time, with raised-cosine edges of ``edge_s`` (or half the episode)."""
    env = np.zeros(t.size)
    for a, b, amp in zip(episodes["start"], episodes["end"], episodes["amplitude"], strict=True):
        i, j = np.searchsorted(t, [a, b])
        if j <= i:
            continue
        edge = min(ARTEFACTS.edge_s, (b - a) / 2.0)
        u = t[i:j]
        w = np.minimum(np.minimum(u - a, b - u) / edge, 1.0)
        env[i:j] = np.maximum(env[i:j], amp * (0.5 - 0.5 * np.cos(np.pi * w)))
    return env


# ---- signals at their own rates --------------------------------------------------------------------------------


def _grid(rate: float, duration: float) -> tuple[np.ndarray, int, int]:
    n, pad = round(duration * rate), round(_PAD_S * rate)
    return (np.arange(n + 2 * pad) - pad) / rate, n, pad


def _on_grid(sim: synthetic.Simulation, t: np.ndarray) -> _Breathing:
    if t.size == sim.t.size and np.array_equal(t, sim.t):
        return sim.breathing
    br = sim.breathing
    return _Breathing(*(np.interp(t, sim.t, x) for x in (br.hz, br.resp, br.lagged)))


def _render_ecg(sim: synthetic.Simulation, rate: float, duration: float, noise: float) -> np.ndarray:
    t, n, pad = _grid(rate, duration)
    ecg = _ecg(sim.r_ecg, sim.beats, t, rate, sim.phys.morph)
    if noise > 0:
        _add_ecg_noise(ecg, sim.r_ecg, t, rate, sim.phys.noise, _on_grid(sim, t).resp, noise)
    return ecg[pad : pad + n].astype(np.float32)


def _render_bvp(
    sim: synthetic.Simulation,
    rate: float,
    duration: float,
    noise: float,
    episodes: dict[str, np.ndarray],
    r: np.random.Generator,
) -> tuple[np.ndarray, float]:
    t, n, pad = _grid(rate, duration)
    ppg = _ppg(sim.r_ppg, sim.beats, _on_grid(sim, t), t, rate, sim.session, sim.phys, noise)
    clean_sd = float(np.std(ppg[pad : pad + n]))
    if episodes["start"].size:
        motion = _band_noise(r, t.size, rate, 0.0, min(ARTEFACTS.motion_width_hz, 0.45 * rate))
        ppg += clean_sd * _envelope(t, episodes) * motion
    return ppg[pad : pad + n].astype(np.float32), clean_sd


# ---- the wrist device's beats ----------------------------------------------------------------------------------


def _pulse_arrival(sim: synthetic.Simulation) -> np.ndarray:
    """Systolic peak of each beat at the wrist: R peak + transit time (with its state changes) + systolic rise."""
    pulse, ses, t = sim.phys.pulse, sim.session, sim.t
    ptt = np.interp(sim.beats.t, t, _ramped(ses.ptt, ses.starts, sim.phys.rhythm.ramp_s, t))
    return sim.beats.t + pulse.ptt0 + pulse.rise + ptt


def _dropouts(r: np.random.Generator, duration: float, level: float) -> tuple[float, float, list[tuple[float, float]]]:
    """Device quality ``q``, warm-up, and the lost spans of the alternating tracking/lost process."""
    m = ARTEFACTS
    q = math.exp(r.normal(0.0, m.quality_log_sd))
    warmup = min(r.uniform(*m.warmup_s), m.warmup_max_frac * duration) * min(level, 1.0)
    spans, t = [], warmup
    while t < duration:
        t += m.run_median_s * q * math.exp(r.normal(0.0, m.run_log_sd))
        gap = level * (m.gap_floor_s + m.gap_median_s / q * math.exp(r.normal(0.0, m.gap_log_sd)))
        if t < duration:
            spans.append((t, min(t + gap, duration)))
        t += gap
    return q, warmup, spans


def _merge(spans: list[tuple[float, float]]) -> np.ndarray:
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def _untouched(beat_t: np.ndarray, k: np.ndarray, lost: np.ndarray) -> np.ndarray:
    """The beats ``k`` whose interval ``[t[k-1], t[k]]`` meets none of the disjoint, sorted ``lost`` spans."""
    if lost.size == 0:
        return k
    j = np.searchsorted(lost[:, 0], beat_t[k], side="left") - 1  # the last span starting before the beat
    hit = (j >= 0) & (lost[np.maximum(j, 0), 1] > beat_t[k - 1])
    return k[~hit]


def _device(
    r: np.random.Generator, beat_t: np.ndarray, duration: float, episodes: dict[str, np.ndarray], level: float
) -> dict[str, Any]:
    """Which beats the device lists: interval ``[t[k-1], t[k]]`` inside the session and touching no lost span."""
    motion = list(zip(episodes["start"] - ARTEFACTS.lost_before_s, episodes["end"] + episodes["recovery"], strict=True))
    inside = np.flatnonzero((beat_t[:-1] >= 0.0) & (beat_t[1:] < duration)) + 1  # beat k with k - 1 in the session
    for _ in range(20):
        q, warmup, dropouts = (1.0, 0.0, []) if level == 0 else _dropouts(r, duration, level)
        lost = _merge([*motion, *dropouts, *([(0.0, warmup)] if warmup > 0 else [])])
        listed = _untouched(beat_t, inside, lost)
        if listed.size >= min(MIN_LISTED_BEATS, inside.size):
            break
    else:  # a session too short for the dropouts: keep the motion losses only
        q, warmup, dropouts = 1.0, 0.0, []
        lost = _merge(motion)
        listed = _untouched(beat_t, inside, lost)
    return {"listed": listed, "quality": q, "warmup_s": warmup, "dropouts": dropouts, "lost": lost}


def beat_gaps(events: np.ndarray, duration: float, tol: float = 0.05) -> list[tuple[float, float]]:
    """Spans with no listed interval: before the first, between non-consecutive listed beats, after the last."""
    if len(events) == 0:
        return [(0.0, duration)]
    t, r = events[:, 0], events[:, 1]
    start = t - r
    gaps = [(0.0, float(start[0]))] if start[0] > tol else []
    brk = np.flatnonzero(np.abs(np.diff(t) - r[1:]) > tol)
    gaps += [(float(t[k]), float(start[k + 1])) for k in brk]
    if duration - t[-1] > tol:
        gaps.append((float(t[-1]), float(duration)))
    return gaps


# ---- labels and ground truth -----------------------------------------------------------------------------------


def _labels(segments: dict[str, list[tuple[float, float]]], states: list[str], n: int) -> np.ndarray:
    """Per-second labels: a second wholly inside one of a state's labelled spans has that state's index."""
    labels = np.full(n, UNLABELLED, dtype=np.int64)
    for k, state in enumerate(states):
        for a, b in segments[state]:
            i, j = math.ceil(a * LABEL_RATE - 1e-9), math.floor(b * LABEL_RATE + 1e-9)
            labels[max(i, 0) : min(j, n)] = k
    return labels


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple | np.ndarray):
        return [_plain(v) for v in (x.tolist() if isinstance(x, np.ndarray) else x)]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None  # JSON has no NaN
    return x


def _truth(
    sim: synthetic.Simulation,
    p: CohortParams,
    episodes: dict[str, np.ndarray],
    device: dict[str, Any],
    beat_t: np.ndarray,
    duration: float,
    clean_sd: float | None,
) -> dict[str, Any]:
    g, phys = sim.meta, sim.phys
    states = {
        s: {
            "class": p.class_names[k],
            "label": k,
            "labelled_s": [list(span) for span in sim.segments[s]],
            "hr_bpm": g["state_mean_hr"][s],
            "rmssd_ms": g["state_rmssd_ms"][s],
            "target_hr_bpm": g["state_targets"][s]["hr_bpm"],
            "resp_rate_bpm": g["state_targets"][s]["resp_rate_bpm"],
            "rsa_amp_ms": g["state_targets"][s]["rsa_amp_ms"],
            "lf_amp_ms": g["state_targets"][s]["lf_amp_ms"],
            "response": g["state_targets"][s]["response"],
        }
        for k, s in enumerate(p.states)
    }
    listed = device["listed"]
    events = np.c_[beat_t[listed], beat_t[listed] - beat_t[listed - 1]]
    gaps = beat_gaps(events, duration)
    covered = float(np.sum(events[:, 1])) / duration if len(events) else 0.0
    art = [
        {"start_s": a, "end_s": b, "amplitude": amp, "device_recovery_s": rec}
        for a, b, amp, rec in zip(
            *(episodes[k].tolist() for k in ("start", "end", "amplitude", "recovery")), strict=True
        )
    ]
    return _plain(
        {
            "resting_hr_bpm": g["baseline_hr"],
            "resp_rate_bpm": g["resp_rate_bpm"],
            "rsa_amp_ms": g["rsa_amp_ms"],
            "lf_amp_ms": g["lf_amp_ms"],
            "lf_freq_hz": g["lf_freq_hz"],
            "reactivity": g["reactivity"],
            "ramp_s": g["ramp_s"],
            "duration_s": duration,
            "block_order": g["block_order"],
            "block_start_s": g["block_start_s"],
            "states": states,
            "beats": int(np.sum((sim.beats.t >= 0) & (sim.beats.t < duration))),
            "morphology": asdict(phys.morph),
            "ecg_noise_mv": asdict(phys.noise),
            "mains": g["mains"],
            "pulse": asdict(phys.pulse),
            "bvp_clean_sd": clean_sd,
            "motion_activity": episodes["activity"],
            "motion_artefacts": art,
            "device": {
                "time_grid_s": device_resolution(p),
                "quality": device["quality"],
                "warmup_s": device["warmup_s"],
                "dropouts_s": [list(s) for s in device["dropouts"]],
                "beats_listed": len(events),
                "ibi_coverage": covered,
                "ibi_gaps_s": [list(s) for s in gaps],
            },
        }
    )


def ground_truth(p: CohortParams, subjects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``ground_truth.json``: the parameters, the model's constants and each subject's ground truth."""
    return {
        "generator": f"ape-nas synth (ape_nas.data.cohort, version {VERSION})",
        "params": p.plain(),
        "physiology_fs": PHYSIOLOGY_FS,
        "label_rate": LABEL_RATE,
        "artefact_model": _plain(asdict(ARTEFACTS)),
        "subjects": subjects,
    }
