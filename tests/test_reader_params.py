"""The readers' keyword parameters: one declared field per loader parameter, checked by the schema."""

from __future__ import annotations

import inspect

import pytest

from ape_nas.data import synthetic
from ape_nas.data.readers import dreamer, e4, folder, params, stress_predict, wesad, wfdb_reader
from ape_nas.data.readers.wfdb import params as wfdb_params
from ape_nas.errors import KeyedError
from ape_nas.schema import Field, check_params

READERS = {"stress-predict": (stress_predict.load, stress_predict.FIELDS), "e4": (e4.e4, e4.FIELDS),
           "folder": (folder.load, folder.FIELDS), "wfdb": (wfdb_reader.load, wfdb_params.FIELDS),
           "wesad": (wesad.load, wesad.FIELDS), "dreamer": (dreamer.load, dreamer.FIELDS),
           "synthetic": (synthetic.generate, synthetic.FIELDS)}  # fmt: skip


@pytest.mark.parametrize("name", sorted(READERS))
def test_fields_are_the_loader_parameters_with_their_defaults(name: str):
    loader, fields = READERS[name]
    signature = inspect.signature(loader).parameters
    assert list(fields) == list(signature), "a parameter without a field (or a field without a parameter)"
    for key, p in signature.items():
        default = list(p.default) if isinstance(p.default, tuple) else p.default
        assert fields[key].default == default, key
    assert params.check({k: p.default for k, p in signature.items()}, fields)  # the defaults pass their own rules


@pytest.mark.parametrize(
    ("value", "allowed", "problem"),
    [
        (["a", "b"], ["a", "b", "c"], None),
        (["b"], None, None),
        ([], ["a"], "expected a non-empty list of some of a"),
        ([], None, "expected a non-empty list of names"),
        (["a", ""], None, "expected names (strings), got ['a', '']"),
        (["a", "a"], None, "lists a name twice: ['a', 'a']"),
        (["a", "z", "y"], ["a"], "unknown 'z', 'y'; expected some of a"),
    ],
)
def test_names_rule(value: list, allowed: list | None, problem: str | None):
    assert params.names(allowed)(value) == problem


def test_problems_are_keyed_to_the_experiment():
    fields = {"rate": params.positive(1.0), "where": params.path()}
    assert check_params({"rate": 2, "where": None}, fields) == {"rate": 2.0, "where": None}
    with pytest.raises(KeyedError) as info:
        check_params({"rate": -1.0, "where": None}, fields)
    assert info.value.keys == [("data", "params", "rate")] and "positive" in info.value.problem
    with pytest.raises(KeyedError, match=r"data\.params\.subjects: unknown 'S9'; expected some of S1, S2"):
        params.check_names("subjects", ["S9"], ["S1", "S2"])
    assert params.check({"xs": ("a",)}, {"xs": Field(list, check=params.names())}) == {"xs": ["a"]}
