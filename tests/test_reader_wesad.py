"""The ``wesad`` reader on small pickles in WESAD's published layout (``<root>/SX/SX.pkl``)."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ape_nas.data.readers import wesad
from ape_nas.data.readers.wesad import CHANNELS, load
from ape_nas.data.types import UNLABELLED
from ape_nas.errors import KeyedError, UserError

SECONDS = 16  # per subject; protocol codes in 2 s blocks
CODES = [0, 1, 1, 2, 2, 3, 4, 6]


def wesad_dict(subject: str, seconds: int = SECONDS, codes: list[int] = CODES) -> dict[str, Any]:
    """The published structure: chest at 700 Hz, wrist at its own rates, labels at 700 Hz, with small arrays."""
    rng = np.random.default_rng(int(subject[1:]))

    def col(n: int, k: int = 1) -> np.ndarray:
        return rng.normal(size=(n, k))

    c, block = 700 * seconds, 700 * seconds // len(codes)
    label = np.repeat(np.asarray(codes, dtype=np.int32), block)
    return {
        "subject": subject,
        "signal": {
            "chest": {"ACC": col(c, 3), "ECG": col(c), "EMG": col(c), "EDA": col(c), "Temp": col(c), "Resp": col(c)},
            "wrist": {
                "ACC": col(32 * seconds, 3),
                "BVP": col(64 * seconds),
                "EDA": col(4 * seconds),
                "TEMP": col(4 * seconds),
            },
        },
        "label": label,
    }


def write(root: Path, subject: str, d: Any, protocol: int = 2) -> Path:
    folder = root / subject
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{subject}.pkl"
    file.write_bytes(pickle.dumps(d, protocol=protocol))
    return file


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "WESAD"
    for s in ("S2", "S10", "S3"):
        write(r, s, wesad_dict(s), protocol=2 if s != "S3" else 5)
    return r


def test_module_constants():
    assert wesad.NAME == "wesad" and wesad.VERSION == 1


def test_load_roundtrip(root: Path):
    data = load(path=str(root), trust_pickle=True, channels=["ecg", "bvp"])
    assert data.subject_ids() == ["S2", "S3", "S10"]  # numeric order
    assert data.class_names == ["baseline", "stress"]
    assert [Path(s).name for s in data.sources] == ["S2.pkl", "S3.pkl", "S10.pkl"]
    rec = data.subjects[0]
    ref = wesad_dict("S2")
    assert rec.rates == {"ecg": 700.0, "bvp": 64.0} and rec.label_rate == 700.0
    np.testing.assert_allclose(rec.signals["ecg"], ref["signal"]["chest"]["ECG"][:, 0].astype(np.float32))
    np.testing.assert_allclose(rec.signals["bvp"], ref["signal"]["wrist"]["BVP"][:, 0].astype(np.float32))
    assert rec.signals["ecg"].dtype == np.float32 and rec.offsets == {} and rec.t0 is None
    block = 700 * SECONDS // len(CODES)
    per_block = rec.labels[::block].tolist()
    # codes 0 1 1 2 2 3 4 6 -> unlabelled, baseline ×2, stress ×2, then amusement/meditation/ignore unlabelled
    assert per_block == [-1, 0, 0, 1, 1, -1, -1, -1]
    assert rec.duration_s() == pytest.approx(SECONDS)
    assert rec.meta["seconds_per_condition"] == {"baseline": 4.0, "stress": 4.0, "amusement": 2.0, "meditation": 2.0}


def test_classes_pick_and_order(root: Path):
    data = load(path=str(root), trust_pickle=True, classes=["meditation", "amusement", "baseline"], subjects=["S3"])
    assert data.subject_ids() == ["S3"] and data.class_names == ["meditation", "amusement", "baseline"]
    block = 700 * SECONDS // len(CODES)
    assert data.subjects[0].labels[::block].tolist() == [-1, 2, 2, -1, -1, 1, 0, -1]


def test_every_channel(root: Path):
    data = load(path=str(root), trust_pickle=True, channels=list(CHANNELS), subjects=["S2"])
    rec = data.subjects[0]
    ref = wesad_dict("S2")["signal"]
    for ch, (device, key, rate, column) in CHANNELS.items():
        assert rec.rates[ch] == rate and len(rec.signals[ch]) == rate * SECONDS
        want = ref[device][key][:, column if column is not None else 0]
        np.testing.assert_allclose(rec.signals[ch], want.astype(np.float32))


def test_refuses_without_trust_flag(root: Path):
    with pytest.raises(UserError) as exc:
        load(path=str(root))
    msg = str(exc.value)
    assert "S2.pkl" in msg and "run code" in msg and "trust_pickle: true" in msg and "trust" in msg
    assert "\n" not in msg


def test_even_trusted_pickles_rebuild_only_arrays(root: Path, tmp_path: Path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    write(root, "S4", {"subject": "S4", "signal": {}, "label": Evil()})
    with pytest.raises(UserError, match=r"S4\.pkl: not a WESAD pickle \(refusing to rebuild "):
        load(path=str(root), trust_pickle=True, subjects=["S4"])
    assert not marker.exists()


def test_missing_key(root: Path):
    d = wesad_dict("S5")
    del d["signal"]["chest"]["ECG"]
    write(root, "S5", d)
    with pytest.raises(UserError, match=r"S5\.pkl: signal\.chest has no key 'ECG'; expected the published WESAD"):
        load(path=str(root), trust_pickle=True, subjects=["S5"])
    d = wesad_dict("S5")
    del d["label"]
    write(root, "S5", d)
    with pytest.raises(UserError, match=r"S5\.pkl: the top level has no key 'label'"):
        load(path=str(root), trust_pickle=True, subjects=["S5"])
    write(root, "S5", [1, 2, 3])
    with pytest.raises(UserError, match=r"S5\.pkl: holds a list; expected the published WESAD dict"):
        load(path=str(root), trust_pickle=True, subjects=["S5"])


def test_rates_contradicting_the_data(root: Path):
    d = wesad_dict("S6")
    d["signal"]["wrist"]["BVP"] = d["signal"]["wrist"]["BVP"][: 32 * SECONDS]  # 32 Hz data, not 64 Hz
    write(root, "S6", d)
    with pytest.raises(UserError, match=r"S6\.pkl: signal\.wrist\.BVP has 512 samples = 8\.0 s at 64 Hz.*contradict"):
        load(path=str(root), trust_pickle=True, channels=["bvp"], subjects=["S6"])


def test_bad_labels(root: Path):
    d = wesad_dict("S7")
    d["label"][100] = 9
    write(root, "S7", d)
    with pytest.raises(UserError, match=r"S7\.pkl: label\[100\] = 9; expected protocol codes 0-7"):
        load(path=str(root), trust_pickle=True, subjects=["S7"])


def test_truncated_pickle(root: Path):
    file = root / "S2" / "S2.pkl"
    file.write_bytes(file.read_bytes()[:5000])
    with pytest.raises(UserError, match=r"S2\.pkl: truncated or corrupt pickle"):
        load(path=str(root), trust_pickle=True, subjects=["S2"])


def test_subject_without_labelled_data_is_skipped(root: Path):
    write(root, "S8", wesad_dict("S8", codes=[0, 3, 4, 5]))
    with pytest.warns(UserWarning, match="skipping subject S8: no samples of the classes baseline, stress"):
        data = load(path=str(root), trust_pickle=True)
    assert "S8" not in data.subject_ids() and "S8" in data.skipped
    with pytest.warns(UserWarning), pytest.raises(UserError, match="no usable subject"):
        load(path=str(root), trust_pickle=True, subjects=["S8"])


def test_subject_selection_and_missing_files(root: Path, tmp_path: Path):
    (root / "S9").mkdir()  # a folder without its pickle
    with pytest.warns(UserWarning, match=r"skipping subject S9: .*S9\.pkl not found"):
        data = load(path=str(root), trust_pickle=True)
    assert "S9" in data.skipped
    with pytest.raises(UserError, match=r"S9\.pkl not found"):
        load(path=str(root), trust_pickle=True, subjects=["S9"])
    with pytest.raises(UserError, match=r"subject\(s\) 'S99' not in"):
        load(path=str(root), trust_pickle=True, subjects=["S99"])
    with pytest.raises(UserError, match="not found; expected the unpacked WESAD folder"):
        load(path=str(tmp_path / "nowhere"), trust_pickle=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no subject folders"):
        load(path=str(tmp_path / "empty"), trust_pickle=True)
    with pytest.raises(KeyedError, match=r"^data\.params\.path: required: the unpacked WESAD folder"):
        load(trust_pickle=True)


@pytest.mark.parametrize(
    ("bad", "key", "problem"),
    [
        ({"channels": ["ppg"]}, "channels", "unknown 'ppg'; expected some of ecg, bvp"),
        ({"channels": ("ecg", "ecg")}, "channels", "lists a name twice"),
        ({"channels": "ecg"}, "channels", "expected a list, got 'ecg'"),
        ({"classes": ["calm"]}, "classes", "unknown 'calm'"),
        ({"classes": []}, "classes", "expected a non-empty list of some of baseline, stress"),
        ({"subjects": [2]}, "subjects", "expected names (strings), got [2]"),
        ({"subjects": ["S2", "S2"]}, "subjects", "lists a name twice"),
        ({"require_labels": 1}, "require_labels", "expected true or false, got 1"),
        ({"trust_pickle": "yes"}, "trust_pickle", "expected true or false, got 'yes'"),
        ({"path": ""}, "path", "required: the unpacked WESAD folder"),
    ],
)
def test_bad_params(root: Path, bad: dict, key: str, problem: str):
    with pytest.raises(KeyedError, match=re.escape(f"data.params.{key}: {problem}")) as err:
        load(**{"path": str(root), "trust_pickle": True, **bad})
    assert err.value.keys == [("data", "params", key)]
    assert UNLABELLED == -1
