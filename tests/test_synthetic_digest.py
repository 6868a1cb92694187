"""``synthetic.generate`` is bit-identical to the data it produced before its refactoring (issue 9).

The digests were computed from the generator as it was before ``_subject`` was split into small functions; any
change to a signal sample, a label, an R-peak index or a ground-truth value changes them. A deliberate change of
the generated data must bump :data:`ape_nas.data.synthetic.VERSION` (the cache key) and these digests together.

Parameters added later whose default keeps the old output (``cohort``, issue 10: default ``"broad"``, the
original draws; ``cue``, ``cue_state``, ``cue_fraction``, issue 13: default ``cue="none"``, nothing planted) are
left out of the digested ``params`` when they hold that default, so the first three digests still prove that the
default output has not changed by one bit; the last config pins the new behaviour.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pytest

from ape_nas.data.synthetic import STATES, VERSION, generate
from ape_nas.data.types import BenchmarkData

SHORT = {"subjects": 2, "minutes_per_state": 0.5}
CONFIGS: list[tuple[dict[str, Any], str]] = [
    (
        {"subjects": 2, "minutes_per_state": 0.5, "seed": 0},
        "a45e63866a4d65cd381f391f9f7a004270047c039a25ef888241aa45efbbcba4",
    ),
    (  # every state, PPG, and S02 has mains interference (fs > 104 Hz)
        {
            "subjects": 2,
            "minutes_per_state": 0.5,
            "fs": 250.0,
            "states": list(STATES),
            "ppg": True,
            "noise": 0.5,
            "seed": 6,
        },
        "a11b3ea4579265a921147eba2c4b46fce89ea63b26d4d77b8f4a88fa30cbcf89",
    ),
    (
        {"subjects": 1, "minutes_per_state": 0.5, "noise": 0.0, "ppg": True, "seed": 2},
        "fc06a20886c3741e07c8ac002deac0e008493f27cd92f7cc6276867a42bd5172",
    ),
    (  # issue 10: the "typical" cohort (most subjects respond to stress), as the quickstart uses it
        {"subjects": 2, "minutes_per_state": 0.5, "seed": 7, "cohort": "typical"},
        "e2466691a4cf915374fc78d745f62799147c1db5dc470fbe81643ff87a0e95ae",
    ),
]
# parameters added after the digests were recorded, with the default that reproduces the recorded output
LATER_DEFAULTS: dict[str, Any] = {"cohort": "broad", "cue": "none", "cue_state": None, "cue_fraction": 0.5}


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {
            "dtype": str(value.dtype),
            "shape": list(value.shape),
            "sha": hashlib.sha256(value.tobytes()).hexdigest(),
        }
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return value.hex()  # exact, and NaN-safe
    return value


def digest(data: BenchmarkData) -> str:
    """SHA-256 over every subject's signals, rates, labels and meta, and the data set's classes and params."""
    doc = {
        "class_names": data.class_names,
        "params": _plain({k: v for k, v in data.params.items() if LATER_DEFAULTS.get(k, object()) != v}),
        "subjects": [
            {
                "subject": s.subject,
                "signals": _plain(s.signals),
                "rates": _plain(s.rates),
                "labels": _plain(s.labels),
                "label_rate": _plain(s.label_rate),
                "meta": _plain(s.meta),
            }
            for s in data.subjects
        ],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize(("params", "expected"), CONFIGS)
def test_generate_is_bit_identical_to_the_recorded_digest(params: dict[str, Any], expected: str):
    assert VERSION == 1
    if params.get("seed") == 6:
        assert [s.meta["mains"] for s in generate(**params).subjects] == [False, True]
    assert digest(generate(**params)) == expected


def test_digest_sees_a_one_ulp_change():
    data = generate(subjects=1, minutes_per_state=0.5)
    before = digest(data)
    x = data.subjects[0].signals["ecg"]
    x[100] = np.nextafter(x[100], np.float32(np.inf))
    assert digest(data) != before
