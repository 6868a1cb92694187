"""The README's commands stay true to the CLI: every `ape-nas ...` line of its shell blocks parses with the
real argument parser, its experiment file exists and its `--set` overrides and flags validate against the
experiment schema; the files the blocks name exist; the cheap commands run as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from _common import ROOT

from ape_nas.cli import build_parser, main

README = (ROOT / "README.md").read_text()
EXPERIMENT_COMMANDS = {"sweep", "status", "best", "worker", "reproduce", "export"}


def _shell_lines() -> list[list[str]]:
    lines: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                lines.append(words)
    return lines


COMMANDS = [w for w in _shell_lines() if "ape-nas" in w]


def _argv(words: list[str]) -> list[str]:
    return words[words.index("ape-nas") + 1 :]


def test_the_readme_has_commands():
    assert len(COMMANDS) >= 20
    assert _shell_lines()[0] == ["make", "quickstart"] and _shell_lines()[1] == ["make", "test"]


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(_argv(w))[:60] for w in COMMANDS])
def test_every_readme_command_parses_and_validates(words: list[str], monkeypatch: pytest.MonkeyPatch):
    from ape_nas.config.experiment import load_experiment
    from ape_nas.config.flags import flag_overrides

    monkeypatch.chdir(ROOT)
    args = build_parser().parse_args(_argv(words))  # argparse exits 2 on an unknown flag: the test fails
    experiment = getattr(args, "experiment", None) or getattr(args, "target", None)
    if args.command in EXPERIMENT_COMMANDS and experiment and experiment.endswith(".yaml"):
        assert Path(experiment).is_file(), experiment
        load_experiment(experiment, flag_overrides(args))  # --set keys and flag values are valid


@pytest.mark.parametrize(
    "path", sorted({w for line in _shell_lines() for w in line if re.match(r"^(experiments|slurm|mlflow)/\S+", w)})
)
def test_files_named_by_the_readme_exist(path: str):
    path = path.split("=", 1)[-1]
    if path.endswith(".env"):  # the user's copy of the committed example
        path += ".example"
    assert (ROOT / path).exists(), path


INSPECT = [_argv(w) for w in COMMANDS if _argv(w)[:2] == ["data", "inspect"]]


@pytest.mark.shared_data
@pytest.mark.parametrize("argv", INSPECT, ids=[a[2] for a in INSPECT])
def test_readme_data_inspect_commands_run_as_written(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch):
    monkeypatch.chdir(ROOT)
    if not Path(argv[2]).exists():
        pytest.skip(f"shared data absent: {argv[2]} (real recordings)")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "subjects" in out
