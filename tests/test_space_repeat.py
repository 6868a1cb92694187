"""The space format's ``repeat`` construct (issue 11): nested, conditional structure as data — a stage's block
parameters exist only for the blocks that exist — sampled define-by-run through the suggester interface, checked
against the family's template, and every mistake a file:line error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

import ape_nas.models.searched  # noqa: F401  (registers searched1d)
from ape_nas.errors import ConfigError
from ape_nas.models import arch_defaults
from ape_nas.models.registry import canonical_spec
from ape_nas.space import Repeat, load_space

ROOT = Path(__file__).resolve().parents[1]
BASE = {
    "data": {"benchmark": "synthetic", "channels": ["ecg"], "window_s": 10.0},
    "protocol": {"kind": "holdout"},
    "training": {"max_epochs": 1},
    "seed": 0,
}
SPACE = """\
models:
  searched1d:
    head: gap
    stages:
      repeat: {type: int, low: 1, high: 3}
      each:
        width: {type: categorical, choices: [8, 16]}
        blocks:
          repeat: {type: int, low: 0, high: 2}
          each:
            op: {type: categorical, choices: [conv, sep_conv, identity]}
            kernel: {type: categorical, choices: [3, 5]}
optim:
  lr: 0.001
"""


def load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    space = load_space(path)
    space.check_families(arch_defaults())
    return space


class Recorder:
    """A suggester that records every name it is asked for (a real Optuna trial underneath)."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial, self.names = trial, []

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        self.names.append(name)
        return self.trial.suggest_int(name, low, high, step=step, log=log)

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False):
        self.names.append(name)
        return self.trial.suggest_float(name, low, high, step=step, log=log)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.names.append(name)
        return self.trial.suggest_categorical(name, choices)


def test_block_parameters_exist_only_for_the_blocks_that_exist(tmp_path: Path):
    space = load(tmp_path, SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_counts = set()
    for _ in range(30):
        rec = Recorder(study.ask())
        spec = space.sample(rec, BASE, arch_defaults())
        stages = spec.arch["stages"]
        seen_counts.add(len(stages))
        expected = ["searched1d.stages.n"]
        for i, stage in enumerate(stages):
            expected += [f"searched1d.stages.{i}.width", f"searched1d.stages.{i}.blocks.n"]
            for j in range(len(stage["blocks"])):
                expected += [f"searched1d.stages.{i}.blocks.{j}.op", f"searched1d.stages.{i}.blocks.{j}.kernel"]
        assert rec.names == [*expected], "define-by-run: exactly the parameters of what exists, in order"
        for i, stage in enumerate(stages):
            assert stage["width"] == rec.trial.params[f"searched1d.stages.{i}.width"]
            assert stage["down"] == "stride", "a key the space leaves out takes the template's value"
            for j, block in enumerate(stage["blocks"]):
                assert block["op"] == rec.trial.params[f"searched1d.stages.{i}.blocks.{j}.op"]
                assert block["se"] is False and block["act"] == "relu", "template defaults fill the block"
    assert seen_counts == {1, 2, 3}


def test_a_sampled_genome_builds_and_its_canonical_form_drops_what_does_not_build(tmp_path: Path):
    from ape_nas.models import build_model

    space = load(tmp_path, SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(10):
        spec = canonical_spec(space.sample(study.ask(), BASE, arch_defaults()))
        for stage in spec.arch["stages"]:
            for block in stage["blocks"]:
                assert block["op"] != "identity"
                assert set(block) <= {"op", "kernel", "se", "act", "norm"}, block  # conv/sep_conv parameters only
        build_model("searched1d", 1, 2, **spec.arch)
        assert canonical_spec(spec) == spec


def test_a_fixed_count_and_a_parameter_list_listing(tmp_path: Path):
    space = load(tmp_path, SPACE.replace("repeat: {type: int, low: 1, high: 3}", "repeat: 2"))
    spec = space.sample(optuna.create_study().ask(), BASE, arch_defaults())
    assert len(spec.arch["stages"]) == 2
    node = space.families["searched1d"]["searched1d.stages"]
    assert isinstance(node, Repeat)
    names = [p.name for p in space.parameters()]
    assert "searched1d.stages.n" in names and "searched1d.stages.*.width" in names
    assert "searched1d.stages.*.blocks.*.op" in names


def test_the_op_level_space_of_the_repository_samples_distinct_networks():
    space = load_space(ROOT / "search_spaces" / "searched_bvp.yaml")
    space.check_families(arch_defaults())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    digests = {canonical_spec(space.sample(study.ask(), BASE, arch_defaults())).digest() for _ in range(20)}
    assert len(digests) == 20


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ("repeat: {type: int, low: 1, high: 3}", "repeat: {type: float, low: 1, high: 3}", 5, "expected an int"),
        ("repeat: {type: int, low: 1, high: 3}", "repeat: -1", 5, "expected a value >= 0"),
        ("repeat: {type: int, low: 1, high: 3}", "repeat: many", 5, "expected"),
        ("repeat: {type: int, low: 1, high: 3}", "repeat: {type: int, low: 3, high: 1}", 5, "empty range"),
        ("      each:\n        width", "      items:\n        width", 6, "unknown key"),
        ("          repeat: {type: int, low: 0, high: 2}\n", "", 8, "missing key 'repeat'"),
        (
            "            kernel: {type: categorical, choices: [3, 5]}",
            "            kernal: 3",
            12,
            "did you mean 'kernel'",
        ),
        (
            "        width: {type: categorical, choices: [8, 16]}",
            "        width: {type: categorical, choices: [a]}",
            7,
            "expected values of type int",
        ),
        (
            "            op: {type: categorical, choices: [conv, sep_conv, identity]}",
            "            op: {type: int}",
            11,
            "missing required key",
        ),
        ("    head: gap", "    head: {repeat: 2, each: {x: 1}}", 3, "cannot be repeated"),
    ],
    ids=[
        "float-count",
        "negative",
        "not-a-number",
        "empty-range",
        "no-each",
        "no-repeat",
        "unknown-block-key",
        "wrong-type",
        "bad-param",
        "not-a-list",
    ],
)
def test_repeat_errors_name_file_and_line(tmp_path: Path, old: str, new: str, line: int, words: str):
    assert old in SPACE
    with pytest.raises(ConfigError) as info:
        load(tmp_path, SPACE.replace(old, new))
    message = str(info.value)
    assert f"space.yaml:{line}" in message and words in message, message


def test_every_genome_the_op_level_space_samples_builds_runs_and_exports(tmp_path: Path):
    """Property over the repository's op-level space: 32 random genomes (every op, head and stage count comes up)
    build, give finite (batch, classes) logits on two window lengths, and a spread of them exports to ONNX with
    a dynamic batch, matching PyTorch within 1e-4 (and TorchScript likewise)."""
    import numpy as np
    import torch

    from ape_nas.handoff.convert import Probabilities, export_onnx, export_torchscript
    from ape_nas.handoff.onnx_session import ort_probs, ort_session
    from ape_nas.models import build_model

    torch.set_num_threads(1)
    space = load_space(ROOT / "search_spaces" / "searched_bvp.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=11))
    specs = [canonical_spec(space.sample(study.ask(), BASE, arch_defaults())) for _ in range(32)]
    ops = {b["op"] for s in specs for st in s.arch["stages"] for b in st["blocks"]}
    assert ops >= {"conv", "sep_conv", "inverted_residual", "basic", "tcn", "inception", "attention", "gru"}
    assert {s.arch["head"] for s in specs} == {"gap", "attention", "gru"}
    rng = np.random.default_rng(0)
    for k, spec in enumerate(specs):
        torch.manual_seed(k)
        net = build_model(spec.model, 1, 2, n_features=11, **{**spec.arch, "hrv_fusion": "none"}).eval()
        with torch.no_grad():
            for length in (960, 333):
                out = net(torch.randn(2, 1, length))
                assert out.shape == (2, 2) and torch.isfinite(out).all(), spec.arch
        if k % 8:
            continue  # export a spread of them (4): ONNX export costs about a second each
        x = rng.standard_normal((3, 1, 960)).astype(np.float32)
        model = Probabilities(net).eval()
        export_onnx(model, torch.from_numpy(x[:2]), tmp_path / f"{k}.onnx")
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = ort_probs(ort_session(tmp_path / f"{k}.onnx"), x)  # batch 3: the batch axis is dynamic
        assert np.abs(got - expected).max() <= 1e-4, spec.arch
        export_torchscript(model, torch.from_numpy(x[:2]), tmp_path / f"{k}.ts")
        scripted = torch.jit.load(str(tmp_path / f"{k}.ts"))
        with torch.no_grad():
            assert np.abs(scripted(torch.from_numpy(x)).numpy() - expected).max() <= 1e-4, spec.arch


DUP_SPACE = """\
models:
  searched1d:
    stem_stride: 4
    head: gap
    stages:
      repeat: 1
      each:
        width: 4
        blocks:
          repeat: 1
          each:
            op: {type: categorical, choices: [identity, conv]}
            kernel: {type: categorical, choices: [3, 5, 9]}
optim:
  lr: 0.001
"""
DUP_EXPERIMENT = """\
name: dup
seed: 1
space: space.yaml
data:
  benchmark: synthetic
  params: {subjects: 8, minutes_per_state: 1.0, fs: 128.0, states: [baseline, stress], seed: 7}
  channels: [ecg]
  window_s: 10.0
  stride_s: 5.0
protocol: {kind: holdout, test_subjects: 2, val_subjects: 2}
training: {max_epochs: 1, patience: 1}
budget: {trials: 8}
backend: {sampler: random, pruner: none}
"""


def test_a_genome_equal_to_an_evaluated_one_is_not_retrained(tmp_path: Path):
    """Identity blocks with different kernels are one network: with 4 distinct networks in the space, 8 trials
    train at most 4 times; the others reuse the recorded result of the trial with the same canonical digest."""
    from ape_nas.cli import main

    (tmp_path / "space.yaml").write_text(DUP_SPACE)
    (tmp_path / "dup.yaml").write_text(DUP_EXPERIMENT)
    assert main(["sweep", str(tmp_path / "dup.yaml"), "--workdir", str(tmp_path / "runs"), "--no-progress"]) == 0
    study = optuna.load_study(study_name="dup", storage=f"sqlite:///{tmp_path / 'runs' / 'optuna.db'}")
    trials = study.trials
    assert len(trials) == 8 and all(t.state.name == "COMPLETE" for t in trials)
    digests = {t.user_attrs["spec_digest"] for t in trials}
    assert len(digests) <= 4
    trained = [t for t in trials if "duplicate_of" not in t.user_attrs]
    assert len(trained) == len(digests), "one training per distinct network"
    by_number = {t.number: t for t in trials}
    for t in trials:
        if "duplicate_of" in t.user_attrs:
            twin = by_number[t.user_attrs["duplicate_of"]]
            assert t.user_attrs["spec_digest"] == twin.user_attrs["spec_digest"]
            assert t.values == twin.values and t.user_attrs["mlflow_run_id"] == twin.user_attrs["mlflow_run_id"]
    identity = [t for t in trials if not t.user_attrs["spec"]["arch"]["stages"][0]["blocks"]]
    assert len(identity) >= 2 and len({t.user_attrs["spec_digest"] for t in identity}) == 1
    assert len({t.params["searched1d.stages.0.blocks.0.kernel"] for t in identity}) >= 2, "kernels differ, one network"
