"""The reference in docs/EXPERIMENTS.md stays true to the schema: every key is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from ape_nas.config.experiment import PRUNERS, QUALITY, SAMPLERS, SECTIONS, TOP
from ape_nas.space import _PARAM_KEYS, _SPACE_KEYS, OPTIM_FIELDS

DOC = (Path(__file__).resolve().parents[1] / "docs" / "EXPERIMENTS.md").read_text()

KEYS = sorted(
    {
        *TOP,
        *(k for fields in SECTIONS.values() for k in fields),
        *OPTIM_FIELDS,
        *_PARAM_KEYS,
        *_SPACE_KEYS,
        *SECTIONS,
        *QUALITY,
    }
)


@pytest.mark.parametrize("key", KEYS)
def test_every_schema_key_is_documented(key: str):
    assert f"`{key}`" in DOC


@pytest.mark.parametrize("name", [*SAMPLERS, *PRUNERS, "holdout", "kfold", "loso"])
def test_every_sampler_and_pruner_is_documented(name: str):
    assert f"`{name}`" in DOC
