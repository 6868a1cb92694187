"""Bad experiment / space files and flags: one line naming file, line, key and what is expected; exit 2; no writes.

Every case writes a broken copy of ``experiments/quickstart.yaml`` (its ``space:`` pointing at a copy of
``search_spaces/quickstart.yaml`` next to it) into ``tmp_path``, runs the CLI in-process and checks the whole
error line, that nothing under ``tmp_path`` changed (no work directory, no optuna.db, no mlflow.db, no cache)
and that nothing appeared in the working directory.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ape_nas.cli import main
from ape_nas.config.experiment import PRUNERS, SAMPLERS
from ape_nas.models import list_models

ROOT = Path(__file__).resolve().parents[1]
EXP_SOURCE = yaml.safe_load((ROOT / "experiments" / "quickstart.yaml").read_text())
SPACE_SOURCE = yaml.safe_load((ROOT / "search_spaces" / "quickstart.yaml").read_text())
PREFIX = "ape-nas: error: "

Edit = Callable[[dict[str, Any]], None]


def dump(data: dict[str, Any]) -> str:
    """Block style, one key per line, so every key has a line of its own."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=1000)


def line_of(text: str, *keys: str) -> int:
    """1-based line of the nested key ``keys`` in block-style YAML written by :func:`dump`."""
    lines = text.splitlines()
    start = 0
    for depth, key in enumerate(keys):
        prefix = " " * (2 * depth) + f"{key}:"
        start = next(i for i in range(start, len(lines)) if lines[i].startswith(prefix))
    return start + 1


def rename(mapping: dict[str, Any], old: str, new: str) -> None:
    """Rename a key in place, keeping the key order (so the file keeps its shape)."""
    items = [(new if k == old else k, v) for k, v in mapping.items()]
    assert old in mapping
    mapping.clear()
    mapping.update(items)


@dataclass
class Files:
    exp: Path
    space: Path

    @property
    def exp_text(self) -> str:
        return self.exp.read_text()

    @property
    def space_text(self) -> str:
        return self.space.read_text()

    @property
    def space_where(self) -> str:
        return str(self.space.resolve())  # the experiment resolves its space path


def write_files(folder: Path, exp_edit: Edit | None = None, space_edit: Edit | None = None) -> Files:
    exp, space = copy.deepcopy(EXP_SOURCE), copy.deepcopy(SPACE_SOURCE)
    exp["space"] = "space.yaml"
    if exp_edit:
        exp_edit(exp)
    if space_edit:
        space_edit(space)
    files = Files(folder / "exp.yaml", folder / "space.yaml")
    files.exp.write_text(dump(exp))
    files.space.write_text(dump(space))
    return files


@pytest.fixture
def files(tmp_path: Path, empty_cwd: Path) -> Callable[..., Files]:
    return lambda exp_edit=None, space_edit=None: write_files(tmp_path, exp_edit, space_edit)


@pytest.fixture
def run_cli(tmp_path: Path, empty_cwd: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., str]:
    """Run ``ape-nas <command> EXP --workdir tmp/w ARGS`` in-process; check exit 2, one line, no writes."""

    def run(exp: Path | str, *args: str, command: str = "sweep") -> str:
        workdir = tmp_path / "w"
        before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
        rc = main([command, str(exp), "--workdir", str(workdir), *args])
        out, err = capsys.readouterr()
        assert rc == 2, err
        assert out == ""
        assert "Traceback" not in err
        assert err.endswith("\n") and err.count("\n") == 1, f"expected one line, got {err!r}"
        assert err.startswith(PREFIX)
        assert not workdir.exists(), "a work directory was created"
        after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
        assert after == before, "files were written or changed"
        return err.removeprefix(PREFIX).rstrip("\n")

    return run


def known(names: Any) -> str:
    return "expected one of: " + ", ".join(sorted(names))


# ---- misspelt keys -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "typo"),
    [
        ((), "budget", "budgt"),
        ((), "seed", "sead"),
        (("budget",), "trials", "trails"),
        (("training",), "patience", "patiance"),
        (("data",), "stride_s", "strides"),
        (("backend",), "sampler", "samplr"),
    ],
)
def test_misspelt_experiment_key(files, run_cli, section, key, typo):
    def edit(exp):
        node = exp
        for part in section:
            node = node[part]
        rename(node, key, typo)

    f = files(exp_edit=edit)
    msg = run_cli(f.exp)
    dotted = ".".join((*section, typo))
    assert msg.startswith(f"{f.exp}:{line_of(f.exp_text, *section, typo)}: {dotted}: unknown key ")
    assert f"(did you mean {key!r}?)" in msg
    assert "expected one of: " in msg and key in msg.split("expected one of: ")[1]


def test_misspelt_param_key_in_space(files, run_cli):
    f = files(space_edit=lambda s: rename(s["models"]["cnn1d"]["depth"], "low", "lowe"))
    msg = run_cli(f.exp)
    line = line_of(f.space_text, "models", "cnn1d", "depth", "lowe")
    assert msg.startswith(f"{f.space_where}:{line}: models.cnn1d.depth.lowe: unknown key (did you mean 'low'?)")
    assert msg.endswith(known(["type", "low", "high", "step", "log", "choices"]))


def test_misspelt_architecture_argument(files, run_cli):
    f = files(space_edit=lambda s: rename(s["models"]["cnn1d"], "depth", "dept"))
    msg = run_cli(f.exp)
    line = line_of(f.space_text, "models", "cnn1d", "dept")
    assert msg.startswith(f"{f.space_where}:{line}: models.cnn1d.dept: unknown key (did you mean 'depth'?)")
    from ape_nas.models import get_family

    assert msg.endswith(known(get_family("cnn1d").arch_defaults))


def test_misspelt_optimiser_key(files, run_cli):
    f = files(space_edit=lambda s: rename(s["optim"], "weight_decay", "weight_decai"))
    msg = run_cli(f.exp)
    line = line_of(f.space_text, "optim", "weight_decai")
    assert msg.startswith(f"{f.space_where}:{line}: optim.weight_decai: unknown key (did you mean 'weight_decay'?)")


def test_misspelt_sampler_option(files, run_cli):
    f = files(exp_edit=lambda e: rename(e["backend"]["sampler_options"], "n_startup_trials", "n_startup_trial"))
    msg = run_cli(f.exp)
    line = line_of(f.exp_text, "backend", "sampler_options", "n_startup_trial")
    assert msg.startswith(
        f"{f.exp}:{line}: backend.sampler_options.n_startup_trial: unknown key (did you mean 'n_startup_trials'?)"
    )
    assert "multivariate" in msg  # lists TPESampler's real keyword arguments


def test_unknown_pruner_option(files, run_cli):
    f = files(exp_edit=lambda e: e["backend"]["pruner_options"].update(warmup=2))
    msg = run_cli(f.exp)
    line = line_of(f.exp_text, "backend", "pruner_options", "warmup")
    assert msg.startswith(f"{f.exp}:{line}: backend.pruner_options.warmup: unknown key")
    assert "n_warmup_steps" in msg


# ---- wrong types -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "value", "expected"),
    [
        (("budget", "trials"), "three", "expected an integer, got 'three'"),
        (("budget", "trials"), 2.5, "expected an integer, got 2.5"),
        (("budget", "trials"), True, "expected an integer, got true"),
        (("data", "window_s"), "ten", "expected a number, got 'ten'"),
        (("training", "max_epochs"), None, "expected an integer, got nothing (null)"),
        (("data", "channels"), "ecg", "expected a list, got 'ecg'"),
        (("name",), 7, "expected a string, got 7"),
    ],
)
def test_wrong_type_in_experiment(files, run_cli, keys, value, expected):
    def edit(exp):
        node = exp
        for part in keys[:-1]:
            node = node[part]
        node[keys[-1]] = value

    f = files(exp_edit=edit)
    msg = run_cli(f.exp)
    assert msg == f"{f.exp}:{line_of(f.exp_text, *keys)}: {'.'.join(keys)}: {expected}"


@pytest.mark.parametrize(
    ("param", "key", "value", "expected"),
    [
        ("depth", "low", "abc", "expected an integer for an int parameter, got 'abc'"),
        ("depth", "low", 2.5, "expected an integer for an int parameter, got 2.5"),
        ("dropout", "high", "abc", "expected a number for a float parameter, got 'abc'"),
        ("dropout", "log", "maybe", "expected true or false, got 'maybe'"),
        ("depth", "type", "integer", "expected one of int, float, categorical, got 'integer'"),
    ],
)
def test_wrong_type_in_space(files, run_cli, param, key, value, expected):
    f = files(space_edit=lambda s: s["models"]["cnn1d"][param].update({key: value}))
    msg = run_cli(f.exp)
    line = line_of(f.space_text, "models", "cnn1d", param, key)
    assert msg == f"{f.space_where}:{line}: models.cnn1d.{param}.{key}: {expected}"


def test_choice_of_wrong_type_for_the_model(files, run_cli):
    f = files(space_edit=lambda s: s["models"]["cnn1d"]["width"].update(choices=["wide", "narrow"]))
    msg = run_cli(f.exp)
    line = line_of(f.space_text, "models", "cnn1d", "width")
    assert msg == f"{f.space_where}:{line}: models.cnn1d.width: expected values of type int for cnn1d, got 'wide'"


# ---- ranges ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "low", "high"),
    [("depth", 5, 2), ("dropout", 0.3, 0.1)],
    ids=["int", "float"],
)
def test_empty_range(files, run_cli, param, low, high):
    f = files(space_edit=lambda s: s["models"]["cnn1d"][param].update(low=low, high=high))
    msg = run_cli(f.exp)
    line = line_of(f.space_text, "models", "cnn1d", param)
    assert msg == (
        f"{f.space_where}:{line}: models.cnn1d.{param}: empty range: low {low} > high {high}; expected low <= high"
    )


def test_empty_categorical_choices(files, run_cli):
    f = files(space_edit=lambda s: s["models"]["cnn1d"]["width"].update(choices=[]))
    msg = run_cli(f.exp)
    line = line_of(f.space_text, "models", "cnn1d", "width", "choices")
    assert msg == (
        f"{f.space_where}:{line}: models.cnn1d.width.choices: empty choices: expected a non-empty list of values"
    )


@pytest.mark.parametrize(
    ("block", "param", "low"),
    [(("models", "cnn1d"), "dropout", 0.0), (("optim",), "weight_decay", 0.0), (("optim",), "weight_decay", -1.0e-4)],
)
def test_log_scale_needs_positive_low(files, run_cli, block, param, low):
    def edit(space):
        node = space
        for part in block:
            node = node[part]
        node[param].update(low=low, log=True)

    f = files(space_edit=edit)
    msg = run_cli(f.exp)
    line = line_of(f.space_text, *block, param, "low")
    dotted = ".".join((*block, param, "low"))
    assert msg == f"{f.space_where}:{line}: {dotted}: log scale needs low > 0, got {low}"


def test_value_out_of_range_in_experiment(files, run_cli):
    f = files(exp_edit=lambda e: e["data"].update(label_purity=1.5))
    msg = run_cli(f.exp)
    line = line_of(f.exp_text, "data", "label_purity")
    assert msg == f"{f.exp}:{line}: data.label_purity: expected a value <= 1.0, got 1.5"


# ---- unknown names ---------------------------------------------------------------------------------------------


def test_unknown_model_family(files, run_cli):
    f = files(space_edit=lambda s: rename(s["models"], "cnn1d", "cnn2d"))
    msg = run_cli(f.exp)
    line = line_of(f.space_text, "models", "cnn2d")
    assert msg == f"{f.space_where}:{line}: models.cnn2d: unknown model family 'cnn2d'; {known(list_models())}"


def test_unknown_sampler(files, run_cli):
    f = files(exp_edit=lambda e: e["backend"].update(sampler="tpee"))
    msg = run_cli(f.exp)
    line = line_of(f.exp_text, "backend", "sampler")
    assert msg == f"{f.exp}:{line}: backend.sampler: unknown sampler 'tpee'; {known(SAMPLERS)}"


def test_unknown_pruner(files, run_cli):
    f = files(exp_edit=lambda e: e["backend"].update(pruner="mediam"))
    msg = run_cli(f.exp)
    line = line_of(f.exp_text, "backend", "pruner")
    assert msg == f"{f.exp}:{line}: backend.pruner: unknown pruner 'mediam'; {known(PRUNERS)}"


def test_wrong_direction_for_the_metric(files, run_cli):
    f = files(exp_edit=lambda e: e["objective"].update(direction="minimize"))
    msg = run_cli(f.exp)
    line = line_of(f.exp_text, "objective", "direction")
    metric = EXP_SOURCE["objective"]["metric"]
    assert msg == (
        f"{f.exp}:{line}: objective.direction: {metric} is better when it is maximised; expected direction: maximize"
    )


# ---- --set -----------------------------------------------------------------------------------------------------


def test_set_with_wrong_type(files, run_cli):
    f = files()
    msg = run_cli(f.exp, "--set", "budget.trials=abc")
    assert msg == "--set budget.trials=abc: budget.trials: expected an integer, got 'abc'"


def test_set_with_misspelt_key(files, run_cli):
    f = files()
    msg = run_cli(f.exp, "--set", "budget.trails=3")
    assert msg.startswith("--set budget.trails=3: budget.trails: unknown key (did you mean 'trials'?)")


def test_set_with_misspelt_section(files, run_cli):
    f = files()
    msg = run_cli(f.exp, "--set", "budgett.trials=3")
    assert msg.startswith("--set budgett.trials=3: budgett: unknown key (did you mean 'budget'?)")


def test_set_unknown_sampler(files, run_cli):
    f = files()
    msg = run_cli(f.exp, "--set", "backend.sampler=bayes")
    assert msg == f"--set backend.sampler=bayes: backend.sampler: unknown sampler 'bayes'; {known(SAMPLERS)}"


def test_set_without_equals(files, run_cli):
    f = files()
    msg = run_cli(f.exp, "--set", "budget.trials")
    assert msg == "--set budget.trials: expected key=value, e.g. --set budget.trials=5"


def test_set_through_a_scalar(files, run_cli):
    f = files()
    msg = run_cli(f.exp, "--set", "seed.value=3")
    assert msg == "--set seed.value=3: seed is not a mapping"


def test_set_invalid_yaml_value(files, run_cli):
    f = files()
    msg = run_cli(f.exp, "--set", "data.channels=[ecg")
    assert msg == "--set data.channels=[ecg: value '[ecg' is not a valid YAML scalar or list"


# ---- files -----------------------------------------------------------------------------------------------------


def test_missing_experiment_file(tmp_path, run_cli):
    missing = tmp_path / "nope.yaml"
    assert run_cli(missing) == f"{missing}: file not found (expected a YAML file)"


def test_missing_space_file(files, run_cli):
    f = files(exp_edit=lambda e: e.update(space="nope.yaml"))
    msg = run_cli(f.exp)
    line = line_of(f.exp_text, "space")
    looked = (f.exp.parent / "nope.yaml").resolve()
    assert msg == f"{f.exp}:{line}: space: search-space file 'nope.yaml' not found (looked at {looked})"


def test_invalid_yaml_in_experiment(files, run_cli):
    f = files()
    line = line_of(f.exp_text, "budget", "trials")
    lines = f.exp_text.splitlines(keepends=True)
    lines[line - 1] = "  trials: 8: 9\n"
    f.exp.write_text("".join(lines))
    assert run_cli(f.exp) == f"{f.exp}:{line}: invalid YAML: mapping values are not allowed here"


def test_invalid_yaml_in_space(files, run_cli):
    f = files()
    line = line_of(f.space_text, "models", "cnn1d", "depth", "high")
    lines = f.space_text.splitlines(keepends=True)
    lines[line - 1] = lines[line - 1].rstrip("\n") + ": 1\n"
    f.space.write_text("".join(lines))
    assert run_cli(f.exp) == f"{f.space_where}:{line}: invalid YAML: mapping values are not allowed here"


@pytest.mark.parametrize("which", ["experiment", "space"])
def test_duplicated_key(files, run_cli, which):
    f = files()
    path, keys = (f.exp, ("training", "patience")) if which == "experiment" else (f.space, ("models", "cnn1d", "pool"))
    text = path.read_text()
    line = line_of(text, *keys)
    lines = text.splitlines(keepends=True)
    lines.insert(line, " " * 2 * (len(keys) - 1) + f"{keys[-1]}: 1\n")  # the keys hold scalars
    path.write_text("".join(lines))
    where = f.exp if which == "experiment" else f.space_where
    assert run_cli(f.exp) == f"{where}:{line + 1}: {'.'.join(keys)}: key appears twice"


def test_experiment_that_is_not_a_mapping(tmp_path, run_cli):
    exp = tmp_path / "exp.yaml"
    exp.write_text("- just\n- a list\n")
    assert run_cli(exp) == f"{exp}:1: expected a mapping at the top of the file, got a list"


# ---- status / best on a study that does not exist --------------------------------------------------------------


@pytest.mark.parametrize("command", ["status", "best"])
def test_status_of_missing_study(files, run_cli, tmp_path, command):
    f = files()
    msg = run_cli(f.exp, command=command)
    db = (tmp_path / "w" / "optuna.db").resolve()
    assert msg == f"no study 'quickstart': sqlite:///{db} does not exist; run `ape-nas sweep` first"


def test_status_in_empty_workdir_creates_nothing(files, tmp_path, capsys):
    f = files()
    workdir = tmp_path / "w"
    workdir.mkdir()
    rc = main(["status", str(f.exp), "--workdir", str(workdir)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(PREFIX + "no study 'quickstart'") and err.count("\n") == 1
    assert list(workdir.iterdir()) == []


# ---- through a real process ------------------------------------------------------------------------------------


def _run_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ape_nas", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_subprocess_sweep_with_misspelt_key(files, tmp_path, empty_cwd):
    f = files(exp_edit=lambda e: rename(e["budget"], "trials", "trails"))
    proc = _run_process(["sweep", str(f.exp), "--workdir", str(tmp_path / "w")], empty_cwd)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    line = line_of(f.exp_text, "budget", "trails")
    assert proc.stderr.startswith(f"{PREFIX}{f.exp}:{line}: budget.trails: unknown key (did you mean 'trials'?)")
    assert not (tmp_path / "w").exists()
    assert list(empty_cwd.iterdir()) == []


def test_subprocess_status_of_missing_study_with_default_workdir(files, empty_cwd):
    f = files()
    proc = _run_process(["status", str(f.exp)], empty_cwd)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"{PREFIX}no study 'quickstart': ")
    assert list(empty_cwd.iterdir()) == [], "not even ./runs"
