"""The window cache: keyed by content + config, memory-mapped on load, never half-written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ape_nas.data import fingerprint as fp
from ape_nas.data import prepare
from ape_nas.data.prepare import clear_memo, prepare_windows

DATA = {
    "benchmark": "synthetic",
    "params": {"subjects": 3, "minutes_per_state": 1.0, "seed": 1},
    "channels": ["ecg"],
    "rate_hz": None,
    "bandpass_hz": None,
    "normalize": "subject",
    "window_s": 10.0,
    "stride_s": 5.0,
    "label_purity": 0.9,
    "quality": {},
}


@pytest.fixture(autouse=True)
def _fresh_memo():
    clear_memo()
    yield
    clear_memo()


def test_second_load_comes_from_disk_memory_mapped_and_equal(tmp_path: Path):
    first = prepare_windows(DATA, tmp_path)
    clear_memo()
    second = prepare_windows(DATA, tmp_path)
    assert isinstance(second.X, np.memmap)
    np.testing.assert_array_equal(np.asarray(first.X), np.asarray(second.X))
    np.testing.assert_array_equal(first.y, second.y)
    assert first.fingerprint == second.fingerprint and second.subjects == ["S01", "S02", "S03"]
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [first.fingerprint]


def test_changed_config_changes_the_key(tmp_path: Path):
    a = prepare_windows(DATA, tmp_path)
    b = prepare_windows({**DATA, "stride_s": 10.0}, tmp_path)
    c = prepare_windows({**DATA, "params": {**DATA["params"], "seed": 2}}, tmp_path)
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3


def test_interrupted_write_leaves_nothing_usable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    real_save = np.save
    calls = {"n": 0}

    def failing_save(path, arr, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # e.g. Ctrl+C in the middle of writing the cache
        return real_save(path, arr, *a, **k)

    monkeypatch.setattr(prepare.np, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        prepare_windows(DATA, tmp_path)
    assert list(tmp_path.iterdir()) in ([], [tmp_path / ".hashes.json"])
    monkeypatch.setattr(prepare.np, "save", real_save)
    ws = prepare_windows(DATA, tmp_path)  # rebuilt cleanly
    assert (tmp_path / ws.fingerprint / "meta.json").is_file()


def test_content_fingerprint_follows_file_content_and_skips_unchanged_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    root = tmp_path / "data"
    (root / "S1").mkdir(parents=True)
    f = root / "S1" / "BVP.csv"
    f.write_text("1.0\n2.0\n")
    (root / "labels.csv").write_text("subject,start,end,label\n")
    memo = fp.HashMemo(tmp_path / "memo.json")
    reads = {"n": 0}
    real = fp._sha256

    def counting(path):
        reads["n"] += 1
        return real(path)

    monkeypatch.setattr(fp, "_sha256", counting)
    k1 = fp.content_fingerprint([root], memo)
    memo.save()
    assert reads["n"] == 2
    memo2 = fp.HashMemo(tmp_path / "memo.json")
    assert fp.content_fingerprint([root], memo2) == k1 and reads["n"] == 2  # stat unchanged: not re-read
    f.write_text("1.0\n2.5\n")  # same size, new content
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert fp.content_fingerprint([root], memo2) != k1 and reads["n"] == 3
