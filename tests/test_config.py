"""Unit tests of the YAML loader, ``--set`` overrides, the mapping schema and Space sampling semantics."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from ape_nas.config.experiment import apply_overrides
from ape_nas.errors import ConfigError, UserError
from ape_nas.experiments import load_experiment
from ape_nas.schema import REQUIRED, Field, check_mapping
from ape_nas.space import OPTIM_FIELDS, parse_space
from ape_nas.spec import TRAINING_DEFAULTS, TrialSpec
from ape_nas.yamlio import Document, dotted, load_yaml, parse_yaml


def doc_of(text: str, path: str = "f.yaml") -> Document:
    return parse_yaml(textwrap.dedent(text).lstrip("\n"), path)


# ---- YAML loader -----------------------------------------------------------------------------------------------

NESTED = """
name: demo            # line 1
data:
  channels:
    - ecg             # line 4
    - ppg
  params: {a: 1, b: [x, y]}
budget:

  trials: 3           # line 9
"""


def test_lines_of_nested_keys_and_list_items():
    doc = doc_of(NESTED)
    assert doc.data == {
        "name": "demo",
        "data": {"channels": ["ecg", "ppg"], "params": {"a": 1, "b": ["x", "y"]}},
        "budget": {"trials": 3},
    }
    expected = {
        (): 1,
        ("name",): 1,
        ("data",): 2,
        ("data", "channels"): 3,
        ("data", "channels", 0): 4,
        ("data", "channels", 1): 5,
        ("data", "params"): 6,
        ("data", "params", "a"): 6,
        ("data", "params", "b", 1): 6,
        ("budget",): 7,
        ("budget", "trials"): 9,
    }
    for keypath, line in expected.items():
        assert doc.lines[keypath] == line, keypath


def test_where_names_the_key_or_its_closest_located_parent():
    doc = doc_of(NESTED)
    assert doc.where(("budget", "trials")) == "f.yaml:9"
    assert doc.where(("data", "channels", 1)) == "f.yaml:5"
    assert doc.where(("budget", "missing", "deeper")) == "f.yaml:7"
    assert doc.where(("nowhere",)) == "f.yaml:1"
    assert Document(path="g.yaml", data={}).where(("x",)) == "g.yaml"


def test_error_carries_location_key_and_problem():
    err = doc_of(NESTED).error(("data", "channels", 0), "expected a channel name")
    assert isinstance(err, ConfigError) and isinstance(err, UserError)
    assert (err.where, err.key, err.problem) == ("f.yaml:4", "data.channels.0", "expected a channel name")
    assert str(err) == "f.yaml:4: data.channels.0: expected a channel name"


def test_dotted():
    assert dotted(("a", 0, "b")) == "a.0.b"
    assert dotted(()) == ""


@pytest.mark.parametrize(
    ("text", "where", "key"),
    [
        ("a: 1\nb: 2\na: 3\n", "f.yaml:3", "a"),
        ("top:\n  x: 1\n  y: 2\n  x: 1\n", "f.yaml:4", "top.x"),
        ("items:\n  - {k: 1, k: 2}\n", "f.yaml:2", "items.0.k"),
    ],
)
def test_duplicate_keys_are_errors(text, where, key):
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "f.yaml")
    assert (info.value.where, info.value.key, info.value.problem) == (where, key, "key appears twice")


def test_syntax_error_names_the_line():
    with pytest.raises(ConfigError) as info:
        parse_yaml("a: 1\nb: [1, 2\nc: 3\n", "f.yaml")
    assert info.value.where.startswith("f.yaml:")
    assert int(info.value.where.split(":")[1]) in (2, 3)
    assert str(info.value).startswith(info.value.where + ": invalid YAML: ")
    with pytest.raises(ConfigError, match=r"^f\.yaml:2: invalid YAML: mapping values are not allowed here$"):
        parse_yaml("a: 1\nb: 2: 3\n", "f.yaml")


def test_non_scalar_keys_are_errors():
    with pytest.raises(ConfigError, match="keys must be plain names"):
        parse_yaml("? [a, b]\n: 1\n", "f.yaml")


def test_empty_file_and_scalars():
    assert parse_yaml("", "f.yaml").data == {}
    assert parse_yaml("# only a comment\n", "f.yaml").data == {}
    data = parse_yaml("i: 3\nf: 1.0e-3\nb: true\nn: null\ns: '3'\nl: [1, two]\n", "f.yaml").data
    assert data == {"i": 3, "f": 1e-3, "b": True, "n": None, "s": "3", "l": [1, "two"]}
    assert isinstance(data["f"], float) and isinstance(data["i"], int)


def test_load_yaml_reads_files_and_reports_missing_ones(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("a:\n  b: 1\n")
    doc = load_yaml(p)
    assert doc.path == str(p) and doc.data == {"a": {"b": 1}} and doc.where(("a", "b")) == f"{p}:2"
    with pytest.raises(UserError, match=r"nope\.yaml: file not found"):
        load_yaml(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="file not found"):
        load_yaml(tmp_path)  # a folder is not a file


# ---- --set overrides -------------------------------------------------------------------------------------------


def test_override_creates_nested_keys_and_records_itself():
    doc = doc_of("budget:\n  trials: 3\n")
    apply_overrides(doc, ["budget.trials=5", "backend.sampler_options.seed=4", "name=x"])
    assert doc.data == {"budget": {"trials": 5}, "backend": {"sampler_options": {"seed": 4}}, "name": "x"}
    assert doc.overrides == {
        ("budget", "trials"): "--set budget.trials=5",
        ("backend", "sampler_options", "seed"): "--set backend.sampler_options.seed=4",
        ("name",): "--set name=x",
    }
    assert doc.where(("budget", "trials")) == "--set budget.trials=5"
    assert doc.where(("backend", "sampler_options", "seed")) == "--set backend.sampler_options.seed=4"
    assert doc.where(("budget",)) == "f.yaml:1", "the parent still comes from the file"
    assert doc.error(("name",), "bad").args[0] == "--set name=x: name: bad"


def test_a_flag_override_is_recorded_as_typed():
    from ape_nas.config.experiment import Flag

    doc = doc_of("budget:\n  trials: 3\n")
    apply_overrides(doc, [Flag("budget.trials=-3", "--trials -3")])
    assert doc.data["budget"]["trials"] == -3
    assert doc.where(("budget", "trials")) == "--trials -3"
    assert doc.error(("budget", "trials"), "bad").args[0] == "--trials -3: budget.trials: bad"


def test_where_names_the_set_that_created_a_parent_mapping():
    doc = doc_of("budget:\n  trials: 3\n")
    apply_overrides(doc, ["budgett.trials=1"])
    assert doc.where(("budgett",)) == "--set budgett.trials=1", "not the file: budgett is nowhere in it"
    assert doc.where(("budget",)) == "f.yaml:1"
    assert doc.where(("nothing",)) == "f.yaml:1"


def test_override_of_a_mapping_names_the_set_for_its_children():
    doc = doc_of("backend:\n  sampler: tpe\n")
    apply_overrides(doc, ["backend.sampler_options={seed: 1, n_startup_trials: x}"])
    assert doc.data["backend"]["sampler_options"] == {"seed": 1, "n_startup_trials": "x"}
    where = doc.where(("backend", "sampler_options", "n_startup_trials"))
    assert where == "--set backend.sampler_options={seed: 1, n_startup_trials: x}"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("5", 5),
        ("2.5", 2.5),
        ("1e-3", "1e-3"),  # YAML 1.1: a float needs a dot
        ("1.0e-3", 1e-3),
        ("true", True),
        ("null", None),
        ("", None),
        ("abc", "abc"),
        ("'5'", "5"),
        ("[ecg, ppg]", ["ecg", "ppg"]),
        ("[0.5, 40]", [0.5, 40]),
        ("{}", {}),
        ("a=b", "a=b"),  # only the first '=' splits
    ],
)
def test_override_values_are_yaml(raw, value):
    doc = doc_of("x: 0\n")
    apply_overrides(doc, [f"section.key={raw}"])
    assert doc.data["section"]["key"] == value
    assert type(doc.data["section"]["key"]) is type(value)


def test_override_replaces_null_sections():
    doc = doc_of("training:\n")
    apply_overrides(doc, ["training.max_epochs=2"])
    assert doc.data == {"training": {"max_epochs": 2}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("budget.trials", "--set budget.trials: expected key=value"),
        ("=5", "--set =5: expected key=value"),
        ("name.first=x", "--set name.first=x: name is not a mapping"),
        ("data.channels=[ecg", "--set data.channels=[ecg: value '[ecg' is not a valid YAML scalar or list"),
    ],
)
def test_bad_overrides(text, message):
    doc = doc_of("name: demo\n")
    with pytest.raises(UserError) as info:
        apply_overrides(doc, [text])
    assert str(info.value).startswith(message)


def test_load_experiment_applies_overrides_and_names_them(repo_root):
    exp = load_experiment(repo_root / "experiments" / "quickstart.yaml", ["budget.trials=2", "training.patience=1"])
    assert exp.budget["trials"] == 2 and exp.training["patience"] == 1
    with pytest.raises(ConfigError) as info:
        load_experiment(repo_root / "experiments" / "quickstart.yaml", ["training.patience=0"])
    assert info.value.where == "--set training.patience=0"
    assert info.value.key == "training.patience"


# ---- check_mapping ---------------------------------------------------------------------------------------------

FIELDS = {
    "n": Field(int, 3, low=1),
    "x": Field(float, 0.5, high=1.0),
    "mode": Field(str, "a", choices=("a", "b")),
    "opt": Field(float, None, nullable=True),
    "opts": Field(dict, dict),
    "need": Field(str),
    "even": Field(int, 0, check=lambda v: None if v % 2 == 0 else f"expected an even number, got {v}"),
}


def check(data: Any, text: str = "") -> dict[str, Any]:
    return check_mapping(doc_of(text or "k: 1\n"), ("sec",), data, FIELDS)


def test_check_mapping_fills_defaults():
    out = check({"need": "yes"})
    assert out == {"n": 3, "x": 0.5, "mode": "a", "opt": None, "opts": {}, "need": "yes", "even": 0}
    assert list(out) == list(FIELDS)
    again = check({"need": "yes"})
    assert again["opts"] is not out["opts"], "callable defaults give a fresh value per call"


def test_check_mapping_keeps_and_converts_given_values():
    out = check({"need": "y", "n": 7, "x": 1, "mode": "b", "opt": 2, "opts": {"k": 1}, "even": 4})
    assert out == {"n": 7, "x": 1.0, "mode": "b", "opt": 2.0, "opts": {"k": 1}, "need": "y", "even": 4}
    assert type(out["x"]) is float and type(out["opt"]) is float


def test_check_mapping_null_section_is_empty():
    optional = {k: f for k, f in FIELDS.items() if f.default is not REQUIRED}
    doc = doc_of("sec:\n")
    assert check_mapping(doc, ("sec",), doc.data["sec"], optional) == check_mapping(doc, ("sec",), {}, optional)
    with pytest.raises(ConfigError, match=r"^f\.yaml:1: sec\.need: missing required key \(a string\)$"):
        check_mapping(doc, ("sec",), None, FIELDS)


@pytest.mark.parametrize(
    ("data", "key", "problem"),
    [
        ({"need": "y", "nn": 1}, "sec.nn", "unknown key (did you mean 'n'?); expected one of: "),
        ({"need": "y", "zzz": 1}, "sec.zzz", "unknown key; expected one of: even, mode, n, need, opt, opts, x"),
        ({}, "sec.need", "missing required key (a string)"),
        ({"need": "y", "n": True}, "sec.n", "expected an integer, got true"),
        ({"need": "y", "n": 1.0}, "sec.n", "expected an integer, got 1.0"),
        ({"need": "y", "n": 0}, "sec.n", "expected a value >= 1, got 0"),
        ({"need": "y", "x": 2}, "sec.x", "expected a value <= 1.0, got 2.0"),
        ({"need": "y", "x": "big"}, "sec.x", "expected a number, got 'big'"),
        ({"need": "y", "mode": "c"}, "sec.mode", "expected one of a, b, got 'c'"),
        ({"need": None}, "sec.need", "expected a string, got nothing (null)"),
        ({"need": "y", "opts": [1]}, "sec.opts", "expected a mapping, got a list"),
        ({"need": "y", "even": 3}, "sec.even", "expected an even number, got 3"),
    ],
)
def test_check_mapping_errors(data, key, problem):
    with pytest.raises(ConfigError) as info:
        check(data)
    assert info.value.key == key
    assert info.value.problem.startswith(problem)


def test_check_mapping_rejects_non_mappings_and_locates_keys():
    with pytest.raises(ConfigError) as info:
        check([1, 2])
    assert info.value.problem.startswith("expected a mapping with keys n, x, mode")
    doc = doc_of("sec:\n  need: y\n  n: 0\n")
    with pytest.raises(ConfigError) as info:
        check_mapping(doc, ("sec",), doc.data["sec"], FIELDS)
    assert info.value.where == "f.yaml:3"


# ---- Space sampling semantics ----------------------------------------------------------------------------------


class FakeSuggester:
    """Records every suggest call; answers with preset values, else low / first choice."""

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[tuple[Any, ...]] = []

    def suggest_int(self, name, low, high, *, step=1, log=False):
        self.calls.append(("int", name, low, high, step, log))
        return self.answers.get(name, low)

    def suggest_float(self, name, low, high, *, step=None, log=False):
        self.calls.append(("float", name, low, high, step, log))
        return self.answers.get(name, low)

    def suggest_categorical(self, name, choices):
        self.calls.append(("categorical", name, list(choices)))
        return self.answers.get(name, choices[0])

    @property
    def names(self) -> list[str]:
        return [c[1] for c in self.calls]


SPACE = """
models:
  cnn1d:
    depth: {type: int, low: 2, high: 6, step: 2}
    width: {type: int, low: 8, high: 64, log: true}
    growth: {type: float, low: 1.0, high: 2.0, step: 0.25}
    dropout: {type: float, low: 0.0, high: 0.5}
    kernel_size: {type: categorical, choices: [5, 7]}
    norm: batch
  resnet1d:
    blocks: {type: int, low: 1, high: 3}
    stride_every: 0
optim:
  lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
  batch_size: {type: categorical, choices: [32, 64]}
  optimizer: sgd
"""

BASE = {
    "data": {"channels": ["ecg"], "window_s": 10.0},
    "protocol": {"kind": "holdout"},
    "training": {"max_epochs": 2},
    "seed": 5,
}


def space_of(text: str = SPACE):
    return parse_space(doc_of(text, "space.yaml"))


def test_suggest_passes_each_distribution_to_the_suggester():
    fake = FakeSuggester({"model": "cnn1d"})
    values = space_of().suggest(fake)
    assert fake.calls == [
        ("categorical", "model", ["cnn1d", "resnet1d"]),
        ("int", "cnn1d.depth", 2, 6, 2, False),
        ("int", "cnn1d.width", 8, 64, 1, True),
        ("float", "cnn1d.growth", 1.0, 2.0, 0.25, False),
        ("float", "cnn1d.dropout", 0.0, 0.5, None, False),
        ("categorical", "cnn1d.kernel_size", [5, 7]),
        ("float", "optim.lr", 1e-4, 1e-2, None, True),
        ("categorical", "optim.batch_size", [32, 64]),
    ]
    assert values == {
        "model": "cnn1d",
        "cnn1d.depth": 2,
        "cnn1d.width": 8,
        "cnn1d.growth": 1.0,
        "cnn1d.dropout": 0.0,
        "cnn1d.kernel_size": 5,
        "cnn1d.norm": "batch",
        "optim.lr": 1e-4,
        "optim.batch_size": 32,
        "optim.optimizer": "sgd",
    }
    int_call = fake.calls[1]
    assert all(type(v) is int for v in int_call[2:5])


def test_conditional_parameters_only_for_the_chosen_family():
    fake = FakeSuggester({"model": "resnet1d", "resnet1d.blocks": 3})
    values = space_of().suggest(fake)
    assert fake.names == ["model", "resnet1d.blocks", "optim.lr", "optim.batch_size"]
    assert not any(k.startswith("cnn1d.") for k in values)
    assert values["resnet1d.stride_every"] == 0


def test_single_family_is_not_a_parameter():
    fake = FakeSuggester()
    space = space_of("models:\n  resnet1d:\n    blocks: {type: int, low: 1, high: 2}\n")
    values = space.suggest(fake)
    assert fake.names == ["resnet1d.blocks"]
    assert values == {"model": "resnet1d", "resnet1d.blocks": 1}


def test_parameter_names_never_collide_across_families():
    space = space_of()
    names = [p.name for p in space.parameters()]
    assert len(names) == len(set(names))
    assert all(n.split(".")[0] in ("cnn1d", "resnet1d", "optim") for n in names)


def test_to_spec_strips_prefixes_and_fills_optimiser_defaults():
    space = space_of()
    fake = FakeSuggester({"model": "cnn1d", "cnn1d.depth": 4, "optim.batch_size": 64})
    spec = space.sample(fake, BASE)
    assert isinstance(spec, TrialSpec)
    assert spec.model == "cnn1d"
    assert spec.arch == {"depth": 4, "width": 8, "growth": 1.0, "dropout": 0.0, "kernel_size": 5, "norm": "batch"}
    assert spec.optim == {
        "lr": 1e-4,
        "weight_decay": OPTIM_FIELDS["weight_decay"].default,
        "batch_size": 64,
        "optimizer": "sgd",
        "label_smoothing": OPTIM_FIELDS["label_smoothing"].default,
        "momentum": OPTIM_FIELDS["momentum"].default,
        "nesterov": OPTIM_FIELDS["nesterov"].default,
    }
    assert (spec.data, spec.protocol, spec.training, spec.seed) == (
        BASE["data"],
        BASE["protocol"],
        {**TRAINING_DEFAULTS, **BASE["training"]},  # what the spec trains with, spelled out
        5,
    )
    spec.data["window_s"] = 1.0
    assert BASE["data"]["window_s"] == 10.0, "the spec does not share the base's dicts"


def test_space_name_and_description():
    space = space_of()
    assert space.name == "space" and space.description == ""
    named = space_of("name: tiny\ndescription: d\nmodels:\n  cnn1d:\n")
    assert (named.name, named.description, named.families) == ("tiny", "d", {"cnn1d": {}})


@pytest.mark.parametrize(
    ("param", "key", "problem"),
    [
        ("{type: int, low: 1, high: 4, step: 2, log: true}", "p.step", "step cannot be combined with log: true"),
        ("{type: float, low: 0.1, high: 1.0, step: 0.1, log: true}", "p.step", "step cannot be combined"),
        ("{type: int, low: 1, high: 4, step: 0}", "p.step", "expected a positive integer"),
        ("{type: int, low: 1, high: 4, step: 1.5}", "p.step", "expected a positive integer"),
        ("{type: categorical, choices: [1, 1]}", "p.choices", "choices repeat a value"),
        ("{type: categorical, choices: [1, [2]]}", "p.choices.1", "expected a scalar choice, got a list"),
        ("{type: categorical, choices: [1], low: 0}", "p.low", "not allowed for a categorical parameter"),
        ("{type: float, low: 0.0, high: 1.0, choices: [1]}", "p.choices", "not allowed for a float parameter"),
        ("{type: int, high: 3}", "p.low", "missing required key for a int parameter"),
        ("{low: 1, high: 2}", "p.type", "missing required key (a string)"),
        ("[1, 2]", "p", "expected a fixed scalar value or a parameter mapping, got a list"),
    ],
)
def test_space_parameter_errors(param, key, problem):
    with pytest.raises(ConfigError) as info:
        space_of(f"models:\n  cnn1d:\n    p: {param}\n")
    assert info.value.key == f"models.cnn1d.{key}"
    assert info.value.problem.startswith(problem)
    assert info.value.where == "space.yaml:3"


def test_optimiser_values_are_checked_against_their_fields():
    with pytest.raises(ConfigError) as info:
        space_of("models:\n  cnn1d:\noptim:\n  optimizer: {type: categorical, choices: [adam, lbfgs]}\n")
    assert info.value.key == "optim.optimizer.choices.1"
    assert "expected one of adam, adamw, sgd, got 'lbfgs'" in info.value.problem
    with pytest.raises(ConfigError, match=r"optim\.batch_size: expected an integer"):
        space_of("models:\n  cnn1d:\noptim:\n  batch_size: 3.5\n")
    with pytest.raises(ConfigError, match="models: expected at least one model family"):
        space_of("models: {}\n")
