"""Contracts every search-space and experiment file must meet (a new YAML file gets these tests by existing).

Spaces: load, match the model registry, sample specs with a real Optuna study whose models build and run on
two window lengths. Experiments: validate completely through ``prepare_sweep`` without writing anything.
Backend names: every sampler and pruner can be selected with ``--set`` and drives a space.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.samplers import RandomSampler

from ape_nas.backends import optuna_backend
from ape_nas.config import experiment as experiment_config
from ape_nas.experiments import load_experiment
from ape_nas.models import build_model, get_family, list_models
from ape_nas.space import OPTIM_FIELDS, Param, Repeat, Space, load_space
from ape_nas.spec import TrialSpec
from ape_nas.sweep import prepare_sweep

ROOT = Path(__file__).resolve().parents[1]
SPACES = sorted((ROOT / "search_spaces").glob("*.yaml"))
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.yaml"))
QUICKSTART = ROOT / "experiments" / "quickstart.yaml"
WINDOW_LENGTHS = (640, 1280)  # 5 s and 10 s at 128 Hz
NUM_CLASSES = 3
BATCH = 2
N_FEATURES = 11  # len(ape_nas.hrv.FEATURE_NAMES): what a fusing network (arch.hrv_fusion) takes beside the window

# Options some pruners cannot do without; every other sampler/pruner is tried with no options at all.
PRUNER_OPTIONS = {"threshold": "{lower: 0.0}"}

optuna_backend.quiet_optuna()


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def test_there_are_files_to_check():
    assert QUICKSTART in EXPERIMENTS
    assert ROOT / "search_spaces" / "quickstart.yaml" in SPACES
    assert len(SPACES) >= 2 and len(EXPERIMENTS) >= 1


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the forward passes are tiny, and on a busy 2-core machine OpenMP stalls cost more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@functools.cache
def arch_defaults() -> dict[str, dict[str, Any]]:
    return {name: get_family(name).arch_defaults for name in list_models()}


@functools.cache
def base_for(space_path: Path) -> dict[str, Any]:
    """The base of an experiment that uses this space, else the quickstart experiment's base."""
    for path in EXPERIMENTS:
        exp = load_experiment(path)
        if exp.space_path == space_path.resolve():
            return exp.base()
    return load_experiment(QUICKSTART).base()


class _Corner:
    """A suggester answering every parameter with its low bound / first choice (or high / last choice)."""

    def __init__(self, family: str, high: bool) -> None:
        self.family = family
        self.high = high

    def suggest_int(self, name, low, high, *, step=1, log=False):
        return high - (high - low) % step if self.high else low

    def suggest_float(self, name, low, high, *, step=None, log=False):
        return high if self.high else low

    def suggest_categorical(self, name, choices):
        if name == "model":
            return self.family
        return choices[-1] if self.high else choices[0]


def _within(value: Any, param: Param) -> bool:
    if param.kind == "fixed":
        return value == param.value
    if param.kind == "categorical":
        return value in param.choices
    if param.kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
        return False
    if not param.low <= value <= param.high:
        return False
    if param.step:
        k = (value - param.low) / param.step
        return math.isclose(k, round(k), abs_tol=1e-9)
    return True


def _within_node(value: Any, node: Param | Repeat) -> bool:
    """A repeat's list: a count within its range, each element's keys within their parameters (recursively)."""
    if not isinstance(node, Repeat):
        return _within(value, node)
    if not isinstance(value, list) or not _within(len(value), node.count):
        return False
    return all(_within_node(element[key], child) for element in value for key, child in node.each.items())


def _check_spec(spec: TrialSpec, space: Space, base: dict[str, Any]) -> None:
    params = space.families[spec.model]
    defaults = arch_defaults()[spec.model]
    assert set(spec.arch) == set(defaults), "every argument of the chosen family, no other"
    for arg in set(defaults) - {name.split(".", 1)[1] for name in params}:
        assert spec.arch[arg] == defaults[arg], f"{spec.model}.{arg} not in the space: the family's default"
    for name, param in params.items():
        value = spec.arch[name.split(".", 1)[1]]
        assert _within_node(value, param), f"{name}={value!r} outside {param.describe()}"
    assert set(spec.optim) == set(OPTIM_FIELDS)
    for name, param in space.optim.items():
        value = spec.optim[name.split(".", 1)[1]]
        assert _within(value, param), f"{name}={value!r} outside {param.describe()}"
    for key in set(OPTIM_FIELDS) - {n.split(".", 1)[1] for n in space.optim}:
        assert spec.optim[key] == OPTIM_FIELDS[key].default
    searched = {name.split(".", 1)[1] for name in space.data}  # the space's inputs replace the experiment's
    for name, param in space.data.items():
        value = spec.data[name.split(".", 1)[1]]
        choices = [param.decode(c) for c in param.choices] if param.kind == "categorical" else None
        assert value in choices if choices is not None else _within(value, param), f"{name}={value!r}"
    assert set(spec.augment) == set(space.augment)
    assert ({k: v for k, v in spec.data.items() if k not in searched}, spec.protocol, spec.training, spec.seed) == (
        {k: v for k, v in base["data"].items() if k not in searched},
        base["protocol"],
        base["training"],
        base["seed"],
    )
    assert TrialSpec.from_dict(spec.to_dict()) == spec
    assert TrialSpec.from_yaml(spec.to_yaml()) == spec


def _random_specs(space: Space, base: dict[str, Any], per_family: int, seed: int = 0) -> list[TrialSpec]:
    """Sample with an in-memory study until every family has ``per_family`` specs (bounded number of asks)."""
    study = optuna.create_study(sampler=RandomSampler(seed=seed))
    specs: list[TrialSpec] = []
    counts = dict.fromkeys(space.family_names, 0)
    for _ in range(40 * per_family * len(counts)):
        if min(counts.values()) >= per_family:
            break
        trial = study.ask()
        spec = space.sample(trial, base, arch_defaults())
        study.tell(trial, 0.0)
        specs.append(spec)
        counts[spec.model] += 1
    return specs


# ---- search spaces -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("space_path", SPACES, ids=_ids(SPACES))
def test_space_loads_and_matches_registry(space_path):
    space = load_space(space_path)
    assert space.families, "at least one model family"
    space.check_families(arch_defaults())
    assert set(space.family_names) <= set(list_models())
    for family, params in space.families.items():
        assert all(name.startswith(f"{family}.") for name in params)
    assert all(name.startswith("optim.") for name in space.optim)
    assert space.name == space_path.stem or space.doc.data.get("name") == space.name


@pytest.mark.parametrize("space_path", SPACES, ids=_ids(SPACES))
def test_space_samples_valid_specs(space_path):
    space = load_space(space_path)
    base = base_for(space_path)
    specs = _random_specs(space, base, per_family=4)
    assert {s.model for s in specs} == set(space.family_names), "sampling covers every family"
    for spec in specs:
        _check_spec(spec, space, base)


@pytest.mark.parametrize("space_path", SPACES, ids=_ids(SPACES))
def test_space_fixed_values_appear_in_specs(space_path):
    space = load_space(space_path)
    base = base_for(space_path)
    for family in space.family_names:
        spec = space.sample(_Corner(family, high=False), base, arch_defaults())
        assert spec.model == family
        for name, param in [*space.families[family].items(), *space.optim.items()]:
            if isinstance(param, Param) and param.kind == "fixed":
                section = spec.optim if name.startswith("optim.") else spec.arch
                assert section[name.split(".", 1)[1]] == param.value


@pytest.mark.parametrize("space_path", SPACES, ids=_ids(SPACES))
def test_space_models_build_and_run(space_path):
    """Random specs and the two corners (all low / all high) of every family build and give (batch, classes);
    a spec that fuses HRV features (``hrv_fusion``) runs with a feature vector, NaN included, and refuses none."""
    from ape_nas.models.heads import MissingFeaturesError

    space = load_space(space_path)
    base = base_for(space_path)
    specs = _random_specs(space, base, per_family=2, seed=1)
    corners = [_Corner(f, high) for f in space.family_names for high in (False, True)]
    specs += [space.sample(corner, base, arch_defaults()) for corner in corners]
    for spec in specs:
        _check_spec(spec, space, base)
        in_channels = len(spec.data["channels"])  # a space may choose the channel set
        net = build_model(spec.model, in_channels, NUM_CLASSES, n_features=N_FEATURES, **spec.arch).eval()
        assert net.uses_features == (spec.arch.get("hrv_fusion", "none") != "none")
        features = torch.randn(BATCH, N_FEATURES) * 20
        features[0, -4:] = float("nan")  # e.g. LF/HF on short windows
        with torch.no_grad():
            if net.uses_features:
                with pytest.raises(MissingFeaturesError):
                    net(torch.randn(BATCH, in_channels, WINDOW_LENGTHS[0]))
            for length in WINDOW_LENGTHS:
                out = net(torch.randn(BATCH, in_channels, length), features)
                assert out.shape == (BATCH, NUM_CLASSES), f"{spec.model} {spec.arch} on {length} samples"
                assert torch.isfinite(out).all()


OLD_SPEC_YAML = """\
model: cnn1d
arch: {depth: 3, width: 8}
optim: {lr: 0.01, weight_decay: 0.0001, batch_size: 64, optimizer: sgd, label_smoothing: 0.0}
data: {benchmark: synthetic}
protocol: {kind: holdout}
training: {max_epochs: 8, patience: 3, metric: f1_macro, direction: maximize}
seed: 7
version: 1
"""  # as recorded before specs carried SGD momentum/nesterov and the accelerator


def test_a_sampled_spec_describes_the_whole_network():
    space = load_space(ROOT / "search_spaces" / "quickstart.yaml")
    base = base_for(ROOT / "search_spaces" / "quickstart.yaml")
    for family in space.family_names:
        spec = space.sample(_Corner(family, high=True), base, arch_defaults())
        params = space.families[family].items()
        sampled = {name.split(".", 1)[1]: p.suggest(_Corner(family, True)) for name, p in params}
        assert spec.arch == {**arch_defaults()[family], **sampled}
        assert {"momentum", "nesterov"} <= set(spec.optim) and spec.training["accelerator"] == "cpu"


def test_an_old_spec_yaml_loads_with_the_defaults_it_trained_with():
    from ape_nas.spec import SPEC_VERSION
    from ape_nas.task import CardiacTask

    spec = TrialSpec.from_yaml(OLD_SPEC_YAML)
    assert spec.version == SPEC_VERSION
    assert (spec.optim["momentum"], spec.optim["nesterov"]) == (0.9, True)  # the values once hard-coded for SGD
    assert spec.training["accelerator"] == "cpu" and spec.training["max_epochs"] == 8
    assert TrialSpec.from_dict(spec.to_dict()) == spec and spec.digest() == TrialSpec.from_yaml(spec.to_yaml()).digest()
    group = CardiacTask(spec.to_dict(), in_channels=1, num_classes=2).configure_optimizers().param_groups[0]
    assert (group["momentum"], group["nesterov"]) == (0.9, True)


def test_a_spec_from_a_newer_version_is_refused():
    from ape_nas.spec import SPEC_VERSION

    data = TrialSpec.from_yaml(OLD_SPEC_YAML).to_dict() | {"version": SPEC_VERSION + 1}
    with pytest.raises(ValueError, match=f"version {SPEC_VERSION + 1}"):
        TrialSpec.from_dict(data)


# ---- experiments -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("exp_path", EXPERIMENTS, ids=_ids(EXPERIMENTS))
def test_experiment_validates_and_writes_nothing(exp_path, tmp_path, empty_cwd):
    workdir = tmp_path / "w"
    plan = prepare_sweep(exp_path, workdir=workdir)
    assert not workdir.exists()
    assert list(empty_cwd.iterdir()) == []
    assert plan.workdir == workdir
    exp = plan.experiment
    assert exp.space_path.is_file()
    assert Path(plan.space.path).resolve() == exp.space_path
    assert exp.direction == experiment_config.METRICS[exp.objective["metric"]]
    assert isinstance(plan.backend.sampler(), getattr(optuna.samplers, optuna_backend.SAMPLERS[exp.backend["sampler"]]))
    assert isinstance(plan.backend.pruner(), getattr(optuna.pruners, optuna_backend.PRUNERS[exp.backend["pruner"]]))
    base = exp.base()
    assert set(base) == {"data", "protocol", "training", "seed"}
    assert base["seed"] == exp.seed
    assert base["training"]["metric"] == exp.objective["metric"]
    assert base["training"]["direction"] == exp.direction
    assert {"benchmark", "channels", "window_s", "stride_s"} <= set(base["data"])
    assert {"kind", "test_subjects", "val_subjects", "seed"} <= set(base["protocol"])


@pytest.mark.parametrize("exp_path", EXPERIMENTS, ids=_ids(EXPERIMENTS))
def test_experiment_base_is_a_copy(exp_path):
    exp = load_experiment(exp_path)
    base = exp.base()
    base["data"]["channels"].append("bogus")
    base["training"]["max_epochs"] = -1
    assert "bogus" not in exp.data["channels"]
    assert exp.base()["training"]["max_epochs"] == exp.training["max_epochs"]


# ---- samplers and pruners --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(optuna_backend.SAMPLERS))
def test_every_sampler_drives_a_space(name, tmp_path):
    overrides = [f"backend.sampler={name}", "backend.sampler_options={}"]
    plan = prepare_sweep(QUICKSTART, overrides=overrides, workdir=tmp_path / "w")
    assert plan.experiment.backend["sampler"] == name
    sampler = plan.backend.sampler()
    assert isinstance(sampler, getattr(optuna.samplers, optuna_backend.SAMPLERS[name]))
    study = optuna.create_study(sampler=sampler, direction=plan.experiment.direction)
    base = plan.experiment.base()
    for i in range(4):
        trial = study.ask()
        spec = plan.space.sample(trial, base, arch_defaults())
        _check_spec(spec, plan.space, base)
        study.tell(trial, 0.1 * i)
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 4
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("name", list(optuna_backend.PRUNERS))
def test_every_pruner_validates_and_runs(name, tmp_path):
    options = PRUNER_OPTIONS.get(name, "{}")
    overrides = [f"backend.pruner={name}", f"backend.pruner_options={options}"]
    plan = prepare_sweep(QUICKSTART, overrides=overrides, workdir=tmp_path / "w")
    pruner = plan.backend.pruner()
    assert isinstance(pruner, getattr(optuna.pruners, optuna_backend.PRUNERS[name]))
    study = optuna.create_study(sampler=RandomSampler(seed=0), pruner=pruner, direction=plan.experiment.direction)
    for i in range(3):
        trial = study.ask()
        plan.space.suggest(trial)
        trial.report(0.5 + 0.1 * i, step=1)
        assert isinstance(trial.should_prune(), bool)
        study.tell(trial, 0.5 + 0.1 * i)
    assert not (tmp_path / "w").exists()


def test_the_stress_predict_space_can_choose_hrv_fusion_for_every_family():
    space = load_space(ROOT / "search_spaces" / "bvp.yaml")
    for family, params in space.families.items():
        assert list(params[f"{family}.hrv_fusion"].choices) == ["none", "concat", "gated"]
