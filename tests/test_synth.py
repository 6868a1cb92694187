"""``ape-nas synth`` (issue 12): a generated cohort in the generic folder format that reads back exactly, is seeded,
carries its ground truth (HR per state, motion artefacts, beat gaps where the artefacts are) and refuses bad input
with one line, leaving nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ape_nas.cli import main
from ape_nas.data import cohort, synthetic
from ape_nas.data.readers import folder
from ape_nas.hrv.beats import detect_beats

SMALL = {"subjects": 3, "seed": 5, "minutes_per_state": 1.0, "signals": ("bvp", "ibi", "ecg")}
SMALL_ARGV = ["--subjects", "3", "--seed", "5", "--minutes-per-state", "1", "--signals", "bvp,ibi,ecg"]


def synth(out: Path, *extra: str) -> int:
    return main(["synth", "--out", str(out), *extra])


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def generated() -> cohort.BenchmarkData:
    return cohort.generate(**SMALL)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "cohort"
    assert synth(out, *SMALL_ARGV) == 0
    return out


@pytest.mark.parametrize("fmt", ["npy", "csv"])
def test_the_written_cohort_reads_back_identically(fmt: str, generated, written: Path, tmp_path: Path, capsys):
    out = written if fmt == "npy" else tmp_path / "csv-cohort"
    if fmt == "csv":
        assert synth(out, *SMALL_ARGV, "--format", fmt) == 0
        assert "wrote 3 subjects" in capsys.readouterr().out
    read = folder.load(path=str(out))
    assert read.class_names == generated.class_names == ["baseline", "stress"]
    assert read.subject_ids() == generated.subject_ids() == ["S01", "S02", "S03"]
    assert read.skipped == {}
    for got, want in zip(read.subjects, generated.subjects, strict=True):
        assert got.rates == want.rates == {"bvp": 64.0, "ecg": 256.0}
        assert set(got.signals) == set(want.signals) == {"bvp", "ecg"}
        for ch, x in want.signals.items():
            assert x.dtype == np.float32 and np.isfinite(x).all()
            assert np.array_equal(got.signals[ch], x), ch
        assert np.array_equal(got.events["ibi"], want.events["ibi"])
        assert got.label_rate == want.label_rate == 1.0
        assert np.array_equal(got.labels, want.labels)
        assert got.offsets == {} and got.meta["units"] == {"bvp": "a.u.", "ecg": "mV", "ibi": "s"}
        # the files hold the generated values exactly (float64), not only after the reader's float32 cast
        for ch, x in want.signals.items():
            path = out / got.subject / f"{ch}.{fmt}"
            stored = np.load(path) if fmt == "npy" else np.array([float(v) for v in path.read_text().split()[1:]])
            assert stored.dtype == np.float64 and np.array_equal(stored, x.astype(np.float64)), ch
    assert {p.name for p in out.iterdir()} == {"S01", "S02", "S03", "dataset.yaml", "labels.csv", "ground_truth.json"}
    assert {p.name for p in (out / "S01").iterdir()} == {f"bvp.{fmt}", f"ecg.{fmt}", f"ibi.{fmt}"}


def test_same_seed_same_bytes_other_seed_other_data(written: Path, tmp_path: Path):
    again, other, fewer = tmp_path / "again", tmp_path / "other", tmp_path / "fewer"
    assert synth(again, *SMALL_ARGV) == 0
    assert files_of(again) == files_of(written)
    assert synth(other, *SMALL_ARGV[:2], "--seed", "6", *SMALL_ARGV[4:]) == 0
    theirs, ours = files_of(other), files_of(written)
    assert set(theirs) == set(ours)
    assert all(theirs[f] != ours[f] for f in ours if f.endswith(".npy"))
    # subject i depends only on (seed, i): a smaller cohort holds the same first subjects
    assert synth(fewer, "--subjects", "2", *SMALL_ARGV[2:]) == 0
    small = files_of(fewer)
    assert all(small[f] == ours[f] for f in small if f.startswith(("S01/", "S02/")))
    assert not any(f.startswith("S03/") for f in small)


def _mean_hr(events: np.ndarray, spans: list[list[float]]) -> tuple[float, int]:
    t, ibi = events[:, 0], events[:, 1]
    inside = np.zeros(t.size, dtype=bool)
    for a, b in spans:
        inside |= (t - ibi >= a) & (t < b)
    return (60.0 / ibi[inside].mean() if inside.any() else float("nan")), int(inside.sum())


def test_ground_truth_matches_the_written_beats_and_gaps(written: Path):
    truth = json.loads((written / "ground_truth.json").read_text())
    read = folder.load(path=str(written))
    assert truth["params"]["seed"] == 5 and set(truth["subjects"]) == {"S01", "S02", "S03"}
    episodes = 0
    checked_ibi = 0
    for rec in read.subjects:
        g = truth["subjects"][rec.subject]
        assert set(g["states"]) == {"baseline", "stress"} and sorted(g["block_order"]) == ["baseline", "stress"]
        for key in ("resting_hr_bpm", "reactivity", "resp_rate_bpm", "morphology", "ecg_noise_mv", "pulse"):
            assert key in g
        ecg_beats = detect_beats(rec.signals["ecg"], rec.rates["ecg"], "ecg")
        ecg_events = np.c_[ecg_beats[1:], np.diff(ecg_beats)]
        for state, s in g["states"].items():
            assert s["class"] == state and s["label"] == read.class_names.index(state)
            assert 40 < s["hr_bpm"] < 160 and s["rmssd_ms"] > 0 and s["resp_rate_bpm"] > 0
            hr, n = _mean_hr(ecg_events, s["labelled_s"])
            assert n > 30 and abs(hr - s["hr_bpm"]) < 2.0, (rec.subject, state, hr, s["hr_bpm"])
            hr, n = _mean_hr(rec.events["ibi"], s["labelled_s"])
            if n >= 5:  # the device lists few beats in some states of a short session, like the E4
                checked_ibi += 1
                assert abs(hr - s["hr_bpm"]) < 5.0, (rec.subject, state, hr, s["hr_bpm"])
        ev = rec.events["ibi"]
        start = ev[:, 0] - ev[:, 1]
        for art in g["motion_artefacts"]:
            episodes += 1
            assert 0 <= art["start_s"] < art["end_s"] <= g["duration_s"] and art["amplitude"] > 1
            overlap = (start < art["end_s"]) & (ev[:, 0] > art["start_s"])
            assert not overlap.any(), (rec.subject, art)  # no listed interval touches a motion episode
        dev = g["device"]
        assert dev["beats_listed"] == len(ev)
        gaps = cohort.beat_gaps(ev, g["duration_s"])
        assert dev["ibi_gaps_s"] == [list(gap) for gap in gaps]
        for art in g["motion_artefacts"]:  # every episode lies inside a gap of the written ibi channel
            assert any(a <= art["start_s"] and art["end_s"] <= b for a, b in gaps), (rec.subject, art)
        assert 0 < dev["ibi_coverage"] < 1
        assert dev["ibi_coverage"] == pytest.approx(ev[:, 1].sum() / g["duration_s"])
        # the motion corrupts the waveform: the BVP swings far more inside the big episodes than outside
        bvp, rate = rec.signals["bvp"], rec.rates["bvp"]
        t = np.arange(bvp.size) / rate
        big = np.zeros(bvp.size, dtype=bool)
        for art in g["motion_artefacts"]:
            if art["amplitude"] > 8 and art["end_s"] - art["start_s"] > 1.0:
                big |= (t > art["start_s"] + 0.25) & (t < art["end_s"] - 0.25)
        quiet = np.ones(bvp.size, dtype=bool)
        for art in g["motion_artefacts"]:
            quiet &= ~((t > art["start_s"] - 2) & (t < art["end_s"] + 2))
        if big.sum() > rate:
            assert np.abs(bvp[big]).max() > 3 * np.abs(bvp[quiet]).max()
    assert episodes > 0 and checked_ibi >= 2


def test_without_artefacts_every_beat_is_listed_and_the_physiology_is_the_synthetic_benchmarks(tmp_path: Path):
    clean = cohort.generate(subjects=2, seed=3, minutes_per_state=0.5, signals=("bvp", "ibi", "ecg"), artefacts=0)
    for rec in clean.subjects:
        g = rec.meta["ground_truth"]
        ev = rec.events["ibi"]
        assert g["motion_artefacts"] == [] and g["device"]["dropouts_s"] == []
        assert np.allclose(np.diff(ev[:, 0]), ev[1:, 1]) and len(ev) >= g["beats"] - 3
        for s in g["states"].values():
            assert _mean_hr(ev, s["labelled_s"])[0] == pytest.approx(s["hr_bpm"], abs=1.0)
    # at the physiology rate, the ECG and the artefact-free BVP are the synthetic benchmark's, bit for bit
    same = cohort.generate(
        subjects=2, seed=3, minutes_per_state=0.5, signals=("bvp", "ecg"), rates={"bvp": 128, "ecg": 128}, artefacts=0
    )
    bench = synthetic.generate(subjects=2, seed=3, minutes_per_state=0.5, fs=128.0, ppg=True)
    for mine, theirs in zip(same.subjects, bench.subjects, strict=True):
        assert np.array_equal(mine.signals["ecg"], theirs.signals["ecg"])
        assert np.array_equal(mine.signals["bvp"], theirs.signals["ppg"])
        assert mine.meta["ground_truth"]["resting_hr_bpm"] == theirs.meta["baseline_hr"]


def test_data_inspect_accepts_the_folder(written: Path, capsys):
    assert main(["data", "inspect", str(written)]) == 0
    out = capsys.readouterr().out
    assert "synth: 3 subjects" in out and "ibi" in out and "bvp 64" in out


def test_stress_predict_like_cohort(tmp_path: Path, capsys):
    out = tmp_path / "sp"
    out.mkdir()  # an empty folder is fine
    argv = ["--subjects", "2", "--minutes-per-state", "0.5", "--class-names", "no-stress,stress", "--signals", "bvp"]
    assert synth(out, *argv) == 0
    read = folder.load(path=str(out))
    assert read.class_names == ["no-stress", "stress"] and read.channels() == ["bvp"]
    assert read.subjects[0].rates == {"bvp": 64.0}
    assert json.loads((out / "ground_truth.json").read_text())["subjects"]["S01"]["states"]["baseline"]["class"] == (
        "no-stress"
    )


BAD = [
    (["--states", "baseline,joy"], "--states: unknown state(s) 'joy'"),
    (["--states", "baseline,baseline"], "--states:"),
    (["--rate", "bvp=0"], "--rate: bvp=0.0; expected a rate in Hz"),
    (["--rate", "bvp=fast"], "--rate: 'bvp=fast'"),
    (["--rate", "ibi=4"], "--rate: ibi holds beat events"),
    (["--rate", "eeg=128"], "--rate: unknown channel 'eeg'"),
    (["--rate", "ecg=256"], "--rate: ecg is not among the signals (bvp, ibi)"),
    (["--signals", "bvp,eeg"], "--signals: unknown signal(s) 'eeg'"),
    (["--signals", "ibi"], "--signals: only beat events"),
    (["--subjects", "1"], "--subjects: got 1; expected at least 2"),
    (["--class-names", "a,b,c"], "--class-names: 3 names for 2 states"),
    (["--minutes-per-state", "0.1"], "--minutes-per-state:"),
    (["--artefacts", "lots"], "--artefacts: 'lots'"),
    (["--artefacts", "-1"], "--artefacts: got -1.0"),
]


@pytest.mark.parametrize(("extra", "message"), BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input_is_one_line_and_writes_nothing(extra: list[str], message: str, tmp_path: Path, capsys):
    out = tmp_path / "new" / "cohort"
    assert synth(out, "--subjects", "2", "--minutes-per-state", "0.5", *extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ape-nas: error: ") and "Traceback" not in err
    assert message in err
    assert list(tmp_path.iterdir()) == []


def test_an_out_folder_that_is_not_empty_is_refused_untouched(tmp_path: Path, capsys):
    out = tmp_path / "used"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert synth(out, "--subjects", "2", "--minutes-per-state", "0.5") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out} is not empty" in err
    assert files_of(out) == {"notes.txt": b"mine"} and sorted(p.name for p in tmp_path.iterdir()) == ["used"]
    (tmp_path / "file").write_text("x")
    assert synth(tmp_path / "file", "--subjects", "2", "--minutes-per-state", "0.5") == 2
    assert "exists and is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interrupt_or_error_mid_write_leaves_nothing(error: type[BaseException], tmp_path: Path, monkeypatch):
    real = cohort.subject

    def failing(index: int, p: cohort.CohortParams):
        if index == 1:
            raise error("stop")
        return real(index, p)

    monkeypatch.setattr(cohort, "subject", failing)
    out = tmp_path / "deep" / "cohort"
    if error is KeyboardInterrupt:
        assert synth(out, "--subjects", "3", "--minutes-per-state", "0.5") == 130
    else:
        with pytest.raises(RuntimeError):
            synth(out, "--subjects", "3", "--minutes-per-state", "0.5")
    assert list(tmp_path.iterdir()) == []  # no cohort, no temporary folder, no parent folder created for it
