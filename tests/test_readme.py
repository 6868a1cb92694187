"""The README's commands stay true to the CLI: every `ape-nas ...` line of its shell blocks parses with the
real argument parser, its experiment file exists and its `--set` overrides and flags validate against the
experiment schema; the files the blocks name exist; the cheap commands run as written."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any

import pytest
from _common import ROOT, require_shared

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
    from ape_nas.config.flags import flag_overrides
    from ape_nas.experiments import load_experiment

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
    require_shared(argv[2])  # skipped when absent; fails in CI
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "subjects" in out


# ---------------------------------------------------------------------------------------------------------------
# Figures you can trace: every measured figure of the README equals the results file its command wrote
# ---------------------------------------------------------------------------------------------------------------

README_TEXT = " ".join(README.split())  # sentences wrap across lines: match on single spaces


@dataclass(frozen=True)
class Figure:
    """A README figure: ``pattern`` captures it (group 1); ``value`` (a dotted key, or a function of the file's
    data) reads it from ``file``, which ``command`` writes (with date, commit and machine)."""

    name: str
    pattern: str
    file: str
    value: str | Callable[[dict[str, Any]], Any]

    def read(self, data: dict[str, Any]) -> Any:
        if callable(self.value):
            return self.value(data)
        return reduce(lambda node, key: node[key], self.value.split("."), data)

    @property
    def command(self) -> str:
        return COMMANDS_OF[self.file]


QS, SP = "docs/results/quickstart.json", "docs/results/stress_predict.json"
SPN, NC = "docs/results/stress_predict_nested.json", "benchmarks/results/nested_cost.json"
PF = "docs/results/stress_predict_pareto.json"
CO, SE = "benchmarks/results/cost_overhead.json", "benchmarks/results/search_efficiency.json"
LR = "benchmarks/results/latency_repeatability.json"
TT = "benchmarks/results/transfer_time.json"
TO, CL, CS = (
    "benchmarks/results/trial_overhead.json",
    "benchmarks/results/cli_startup.json",
    "benchmarks/results/cache_speed.json",
)
COMMANDS_OF = {
    QS: "python docs/results/sweep_scores.py experiments/quickstart.yaml",
    SP: "python docs/results/sweep_scores.py experiments/stress_predict.yaml",
    TO: "python benchmarks/trial_overhead.py",
    CL: "python benchmarks/cli_startup.py",
    CS: "python benchmarks/cache_speed.py",
    SPN: "python docs/results/nested_scores.py experiments/stress_predict_nested.yaml",
    NC: "python benchmarks/nested_cost.py",
    CO: "python benchmarks/cost_overhead.py",
    SE: "python benchmarks/search_efficiency.py",
    LR: "python benchmarks/latency_repeatability.py",
    TT: "python benchmarks/transfer_time.py",
    PF: "python docs/results/pareto_front.py experiments/stress_predict_pareto.yaml --workdir W --bundle B ...",
}
NUM, DATE = r"([\d.]+)", r"(\d{4}-\d\d-\d\d)"
# the three rows of the Stress-Predict table: README row label → the keys of its three columns in stress_predict.json
_HRV, _NORM = "hrv_baseline", "hrv_baseline.subject_normalised"
SP_ROWS = {
    r"best deep model \(trial \d+, `\w+`\)": ("best.val", "best.test.test_balanced_accuracy", "best.test.test_auroc"),
    r"HRV baseline \(8 HRV features from BVP beats \+ logistic regression\)": (
        f"{_HRV}.val.balanced_accuracy",
        f"{_HRV}.test.balanced_accuracy",
        f"{_HRV}.test.auroc",
    ),
    r"HRV baseline, features z-scored per subject": (
        f"{_NORM}.val.balanced_accuracy",
        f"{_NORM}.test.balanced_accuracy",
        f"{_NORM}.test.auroc",
    ),
}
SP_COLUMNS = ("val balanced accuracy", "test balanced accuracy", "test AUROC")


def _table_cell(row: str, column: int) -> str:
    cells = [NUM if i == column else r"[\d.]+" for i in range(len(SP_COLUMNS))]
    return rf"\| {row} \| " + r" \| ".join(cells) + r" \|"


FIGURES = [
    Figure("quickstart seconds", r"quickstart sweep itself (\d+) s \(", QS, "sweep_s"),
    Figure("quickstart trials", r"quickstart sweep itself \d+ s \((\d+) trials", QS, "trials"),
    Figure("quickstart best val macro-F1", rf"best validation macro-F1 {NUM}", QS, "best.val"),
    Figure("quickstart best test macro-F1", rf"and {NUM} on its test subjects", QS, "best.test.test_f1_macro"),
    Figure("quickstart HRV baseline", rf"test subjects; the HRV baseline {NUM}", QS, "hrv_baseline.val.f1_macro"),
    Figure(
        "quickstart HRV baseline per subject",
        rf"but {NUM} with its features normalised per subject",
        QS,
        "hrv_baseline.subject_normalised.val.f1_macro",
    ),
    Figure("Stress-Predict minutes", rf"10 epochs at most; {NUM} min on 2 CPU cores", SP, lambda d: d["sweep_s"] / 60),
    Figure(
        "Stress-Predict date", rf"min on 2 CPU cores, measured {DATE}[;)]", SP, lambda d: d["measured"]["date"][:10]
    ),
    Figure("Stress-Predict best trial", r"best deep model \(trial (\d+),", SP, "best.number"),
    Figure("Stress-Predict best family", r"best deep model \(trial \d+, `(\w+)`", SP, "best.model"),
    *(
        Figure(f"Stress-Predict {row[:24]}: {col}", _table_cell(row, n), SP, key)
        for row, keys in SP_ROWS.items()
        for n, (col, key) in enumerate(zip(SP_COLUMNS, keys, strict=True))
    ),
    Figure(
        "trial loop overhead",
        rf"sweep overhead inside the trial loop \| {NUM} s per trial",
        TO,
        "loop_overhead_per_trial_s",
    ),
    Figure("trial overhead date", rf"trial_overhead.json` \({DATE}\)", TO, lambda d: d["measured"]["date"][:10]),
    Figure("fixed cost per sweep", rf"fixed cost per sweep command \| {NUM} s", TO, "fixed_overhead_s"),
    Figure("--help", rf"`ape-nas --help` \| {NUM} s", CL, "help_s"),
    Figure("bare Python", rf"bare Python ≈ {NUM} s", CL, "python_bare_s"),
    Figure("heavy imports", rf"torch\+lightning\+optuna\+mlflow imports ≈ {NUM} s", CL, "heavy_imports_s"),
    Figure("warm cache", rf"warm window cache \(Stress-Predict\) \| {NUM} s vs", CS, "warm_s"),
    Figure("cold cache", rf"warm window cache \(Stress-Predict\) \| [\d.]+ s vs {NUM} s cold", CS, "cold_s"),
    Figure("cache speed-up", r"s cold: (\d+)×", CS, "speedup"),
    Figure("cache windows", r"loading the ([\d,]+) Stress-Predict windows", CS, "windows"),
]


# the nested table: one row per outer fold and a pooled row; columns = the searched model and the two baselines,
# each "point [low, high]" (balanced accuracy, 95% subject bootstrap)
_NESTED_COLUMNS = (("search",), ("baselines", "hrv"), ("baselines", "hrv_subjnorm"))
_CELL = r"[\d.]+ \[[\d.]+, [\d.]+\]"


def _nested_value(column: tuple[str, ...], row: int | None, part: str) -> Any:
    def read(d: dict[str, Any]) -> float:
        for key in column:
            d = d[key]
        if row is None:
            return d["intervals"]["balanced_accuracy"][part]
        if part == "point":
            return d["per_fold"][row]["balanced_accuracy"]
        return d["per_fold_intervals"][row]["balanced_accuracy"][part]

    return read


def _nested_figures() -> list[Figure]:
    out = []
    for row in (*range(4), None):
        label = "pooled, 28 subjects" if row is None else f"{row + 1}"
        for c, column in enumerate(_NESTED_COLUMNS):
            for g, part in enumerate(("point", "low", "high")):
                cell = (
                    rf"{NUM} \[[\d.]+, [\d.]+\]"
                    if g == 0
                    else (rf"[\d.]+ \[{NUM}, [\d.]+\]" if g == 1 else rf"[\d.]+ \[[\d.]+, {NUM}\]")
                )
                cells = [cell if i == c else _CELL for i in range(len(_NESTED_COLUMNS))]
                pattern = rf"\| {label} \| " + r" \| ".join(cells) + r" \|"
                out.append(
                    Figure(f"nested {label} {'/'.join(column)} {part}", pattern, SPN, _nested_value(column, row, part))
                )
    return out


FIGURES += [
    *_nested_figures(),
    Figure("nested minutes", rf"\(nested\) {NUM} min on a 2-core CPU", SPN, lambda d: d["nested_s"] / 60),
    Figure(
        "nested date",
        rf"\(nested\) [\d.]+ min on a 2-core CPU, measured {DATE}",
        SPN,
        lambda d: d["measured"]["date"][:10],
    ),
    *(
        Figure(f"nested fold {k + 1} {part}", rf"fold {k + 1} {pattern}", SPN, read)
        for k in range(4)
        for part, pattern, read in (
            ("val", rf"{NUM} → [\d.]+", lambda d, k=k: d["folds"][k]["best_val"]),
            ("test", rf"[\d.]+ → {NUM}", lambda d, k=k: d["folds"][k]["test_metrics"]["test_balanced_accuracy"]),
        )
    ),
    Figure("nested cost ratio", rf"nested search vs plain sweep [^|]*\| {NUM}×", NC, "ratio"),
    Figure("nested fixed cost per fold", rf"fixed cost per outer fold {NUM} s", NC, "fixed_per_fold_s"),
    Figure("plain fixed cost", rf"s \(plain sweep {NUM} s\)", NC, "plain_fixed_s"),
]


# the Pareto table: one row per front point (trial number first, in the results file's front order); columns
# val | latency | parameters | MACs (thousands) | test [low, high]
_PF_COLUMNS = (
    ("val", lambda p: p["values"]["balanced_accuracy"]),
    ("latency", lambda p: p["values"]["latency_ms"]),
    ("params", lambda p: p["cost"]["params"]),
    ("kMACs", lambda p: p["cost"]["macs"] / 1000),
    ("test", lambda p: p["test_balanced_accuracy"]),
    ("test low", lambda p: p["test_ci"][0]),
    ("test high", lambda p: p["test_ci"][1]),
)
_PF_CELLS = (r"[\d.]+", r"[\d.]+", r"[\d,]+", r"[\d,]+k", r"[\d.]+ \[[\d.]+, [\d.]+\]")
_PF_TEST = (rf"{NUM} \[[\d.]+, [\d.]+\]", rf"[\d.]+ \[{NUM}, [\d.]+\]", rf"[\d.]+ \[[\d.]+, {NUM}\]")


def _pareto_figures() -> list[Figure]:
    path = ROOT / PF
    front = json.loads(path.read_text())["front"] if path.is_file() else []
    out = []
    for k, point in enumerate(front):
        for c, (name, read) in enumerate(_PF_COLUMNS):
            cells = list(_PF_CELLS)
            if c < 4:
                cells[c] = NUM if c < 2 else (r"([\d,]+)" if c == 2 else r"([\d,]+)k")
            else:
                cells[4] = _PF_TEST[c - 4]
            pattern = rf"\| {point['trial']} \| " + r" \| ".join(cells) + r" \|"
            out.append(
                Figure(f"pareto trial {point['trial']} {name}", pattern, PF, lambda d, k=k, r=read: r(d["front"][k]))
            )
    return out


FIGURES += [
    *_pareto_figures(),
    Figure("pareto minutes", rf"\(Pareto\) {NUM} min of trials", PF, lambda d: d["trial_seconds_total"] / 60),
    Figure("pareto date", rf"min of trials on 2 CPU cores, measured {DATE}", PF, lambda d: d["measured"]["date"][:10]),
    Figure("pareto HRV val", rf"same folds scores val {NUM} \(test", PF, "hrv_baseline.val"),
    Figure("pareto HRV test", rf"same folds scores val [\d.]+ \(test {NUM}\)", PF, "hrv_baseline.test"),
    Figure(
        "pareto HRV subjnorm val", rf"z-scored per subject val {NUM} \(test", PF, "hrv_baseline.subject_normalised_val"
    ),
    Figure(
        "pareto HRV subjnorm test",
        rf"z-scored per subject val [\d.]+ \(test {NUM}\)",
        PF,
        "hrv_baseline.subject_normalised_test",
    ),
    Figure(
        "pareto tied",
        r"(\d+) of the \d+ other trials are statistically",
        PF,
        "indistinguishable_from_most_accurate.tied",
    ),
    Figure(
        "pareto tied of",
        r"\d+ of the (\d+) other trials are statistically",
        PF,
        "indistinguishable_from_most_accurate.of",
    ),
    Figure(
        "pareto largest network",
        r"the largest sampled network had ([\d,]+) parameters",
        PF,
        lambda d: max(t["cost"]["params"] for t in d["all_trials"]),
    ),
    Figure(
        "pareto export latency", rf"ms during the search and {NUM} ms at export", PF, "exported_point.cost.latency_ms"
    ),
    Figure(
        "pareto evaluate",
        rf"test subjects gives balanced accuracy {NUM} over",
        PF,
        "exported_point.evaluate.balanced_accuracy",
    ),
    Figure(
        "pareto evaluate windows",
        r"balanced accuracy [\d.]+ over ([\d,]+) windows",
        PF,
        "exported_point.evaluate.windows",
    ),
    Figure(
        "pareto card = evaluate", rf"test subjects gives balanced accuracy {NUM} over", PF, "exported_point.card_test"
    ),
]


_REACH = "single_objective.seconds_to_reach_target"
FIGURES += [
    Figure(
        "cost latency ratio", rf"the latency part at most {NUM}% of a trial", CO, lambda d: 100 * d["max_latency_ratio"]
    ),
    Figure("cost measure ratio", rf"the whole measurement at most {NUM}%", CO, lambda d: 100 * d["max_measure_ratio"]),
    Figure("cost cold", rf"the first measurement in a process {NUM} s more", CO, "cold_measure_s.total"),
    Figure("latency cv one", rf"variation {NUM}% for one session", LR, lambda d: 100 * d["median_cv"]["one_session"]),
    Figure("latency cv min", rf"runs, {NUM}% for the fastest", LR, lambda d: 100 * d["median_cv"]["min_of_sessions"]),
    Figure("latency steadier", r"\(steadier in (\d+) of", LR, "steadier.min_of_sessions"),
    Figure("latency steadier of", r"\(steadier in \d+ of (\d+) cases", LR, "steadier.of"),
    Figure("TPE reach", rf"best val macro-F1 in {NUM} ±", SE, f"{_REACH}.tpe+median.mean"),
    Figure("TPE reach sd", rf"best val macro-F1 in [\d.]+ ± {NUM} s", SE, f"{_REACH}.tpe+median.sd"),
    Figure("random reach", rf"random search in {NUM} ±", SE, f"{_REACH}.random.mean"),
    Figure("random reach sd", rf"random search in [\d.]+ ± {NUM} s", SE, f"{_REACH}.random.sd"),
    Figure(
        "TPE pruned min", r"TPE pruned (\d+)–", SE, lambda d: min(d["single_objective"]["pruned_trials"]["tpe+median"])
    ),
    Figure(
        "TPE pruned max",
        r"TPE pruned \d+–(\d+) of",
        SE,
        lambda d: max(d["single_objective"]["pruned_trials"]["tpe+median"]),
    ),
    *(
        Figure(f"hypervolume {name} {part}", pattern, SE, f"multi_objective.final_hypervolume.{name}.{part}")
        for name, label in (("nsga2", "NSGA-II"), ("tpe", "multi-objective TPE"), ("random", "random"))
        for part, pattern in (("mean", rf"{label} {NUM} ±"), ("sd", rf"{label} [\d.]+ ± {NUM}"))
    ),
]


# the transfer tables (issue 12): one per source; a row per method — `| <source>: `method` | trained parameters |
# personalise K=1 | K=5 | K=20 | new-population K=1 | K=5 | K=20 |`, each cell `point [low, high]`
TR = {
    "Stress-Predict": "docs/results/transfer/stress_predict/transfer.json",
    "generated": "docs/results/transfer/synth_pretrained/transfer.json",
}
COMMANDS_OF.update(dict.fromkeys(TR.values(), "bash docs/results/transfer.sh"))
_TR_CELLS = tuple((p, k) for p in ("personalise", "new-population") for k in (1, 5, 20))
_TR_PARTS = ("point", "low", "high")


def _transfer_cell(c: int, part: int) -> str:
    cells = [r"[\d.]+ \[[\d.]+, [\d.]+\]"] * len(_TR_CELLS)
    groups = [r"[\d.]+", r"[\d.]+", r"[\d.]+"]
    groups[part] = NUM
    cells[c] = rf"{groups[0]} \[{groups[1]}, {groups[2]}\]"
    return r" \| ".join(cells)


def _transfer_figures() -> list[Figure]:
    out = []
    for label, file in TR.items():
        path = ROOT / file
        rows = json.loads(path.read_text())["results"] if path.is_file() else []
        methods = list(dict.fromkeys(r["method"] for r in rows))
        for method in methods:
            head = rf"\| {label}: `{re.escape(method)}` \| "
            cells = {(r["protocol"], r["k"]): r for r in rows if r["method"] == method}
            assert set(cells) >= set(_TR_CELLS), f"{file}: {method} lacks a protocol or K of the README table"
            out.append(
                Figure(
                    f"transfer {label} {method} params",
                    head + r"([\d,]+) \|",
                    file,
                    lambda d, m=method: next(r for r in d["results"] if r["method"] == m)["trained_parameters"],
                )
            )
            for c, (protocol, k) in enumerate(_TR_CELLS):
                for p, part in enumerate(_TR_PARTS):
                    out.append(
                        Figure(
                            f"transfer {label} {method} {protocol} K={k} {part}",
                            head + r"[\d,]+ \| " + _transfer_cell(c, p) + r" \|",
                            file,
                            lambda d, m=method, pk=(protocol, k), q=part: next(
                                r for r in d["results"] if r["method"] == m and (r["protocol"], r["k"]) == pk
                            )["balanced_accuracy"][q],
                        )
                    )
    return out


FIGURES += [
    Figure(
        "transfer weighting K=20",
        rf"`weighting` with K = 20 per class {NUM} s",
        TT,
        "seconds_per_subject.weighting.k20",
    ),
    Figure("transfer weighting / head", rf"\(target < 10 s\), {NUM}× the linear probe", TT, "ratio_to_head.weighting"),
    Figure("transfer head K=20", rf"\(`head` {NUM} s\)", TT, "seconds_per_subject.head.k20"),
    *(
        Figure(f"transfer {m} K=20", rf"`{m}` {NUM} s", TT, f"seconds_per_subject.{m}.k20")
        for m in ("finetune", "bn", "scratch")
    ),
    *_transfer_figures(),
    *(
        Figure(f"transfer {label} date", rf"{label} source: measured {DATE}", f, lambda d: d["measured"]["date"][:10])
        for label, f in TR.items()
    ),
]


# the explanation tables (issue 13): `| <method> | point [low, high] | ... |` per faithfulness metric, from the
# `faithfulness.rows` of each explain.json; the Stress-Predict table ends with the beat-synchronous numbers
EX = {
    "cue": "docs/results/explain/synthetic_cue/explain.json",
    "sp": "docs/results/explain/stress_predict/explain.json",
    "proto": "docs/results/explain/synthetic_cue_protonet/explain.json",
}
COMMANDS_OF.update(dict.fromkeys(EX.values(), "bash docs/results/explain.sh"))
_EX_METHODS = {
    "Grad-CAM": "gradcam",
    "Integrated Gradients": "integrated_gradients",
    "Occlusion": "occlusion",
    "gradient": "gradient",
}
_EX_COLUMNS = {
    "cue": (
        "deletion_auc",
        "deletion_gain",
        "insertion_auc",
        "insertion_gain",
        "randomisation_rank_corr",
        "mass_on_mask",
        "pointing_game",
    ),
    "sp": ("deletion_auc", "deletion_gain", "insertion_auc", "insertion_gain", "randomisation_rank_corr"),
}
_IV = r"-?[\d.]+ \[-?[\d.]+, -?[\d.]+\]"
_SNUM = r"(-?[\d.]+)"


def _row_of(data: dict[str, Any], method: str) -> dict[str, Any]:
    return next(r for r in data["faithfulness"]["rows"] if r["method"] == method)


def _explain_figures() -> list[Figure]:
    out = []
    for key, cols in _EX_COLUMNS.items():
        file = EX[key]
        rows = dict(_EX_METHODS)
        extra = r" \| [\d.]+ \| [\d.]+ \|" if key == "sp" else r" \|"
        for label, method in rows.items():
            for c, col in enumerate(cols):
                for p, part in enumerate(("point", "low", "high")):
                    groups = [r"-?[\d.]+"] * 3
                    groups[p] = _SNUM
                    cells = [_IV] * len(cols)
                    cells[c] = rf"{groups[0]} \[{groups[1]}, {groups[2]}\]"
                    out.append(
                        Figure(
                            f"explain {key} {method} {col} {part}",
                            rf"\| {label} \| " + r" \| ".join(cells) + extra,
                            file,
                            lambda d, m=method, k=col, q=part: _row_of(d, m)[k][q],
                        )
                    )
        if key == "sp":
            for label, method in rows.items():
                for j, name in enumerate(("phase_locking", "between_beats")):
                    tail = [r"[\d.]+", r"[\d.]+"]
                    tail[j] = NUM
                    out.append(
                        Figure(
                            f"explain sp {method} {name}",
                            rf"\| {label} \| " + r" \| ".join([_IV] * len(cols)) + rf" \| {tail[0]} \| {tail[1]} \|",
                            file,
                            lambda d, m=method, n=name: d["beat_synchronous"][m][n],
                        )
                    )
    return out


FIGURES += [
    *_explain_figures(),
    *(
        Figure(f"explain {key} date", rf"{label}; measured {DATE}\)", EX[key], lambda d: d["measured"]["date"][:10])
        for key, label in (("cue", "31 with a cue"), ("sp", "60 windows of its 10 test subjects"))
    ),
    Figure(
        "explain cue test accuracy",
        rf"best of 4 trials, test balanced accuracy {NUM}",
        EX["cue"],
        "source.scores.test_balanced_accuracy",
    ),
    Figure("explain cue windows", rf"{NUM} windows of\s+its 8 test subjects", EX["cue"], lambda d: len(d["windows"])),
    Figure(
        "explain cue cue windows", rf"test subjects, {NUM} with a cue", EX["cue"], "faithfulness.localisation_windows"
    ),
    Figure(
        "explain sp val accuracy",
        rf"val balanced accuracy {NUM}; 60 windows",
        EX["sp"],
        "source.scores.best_val_balanced_accuracy",
    ),
    Figure(
        "explain proto test accuracy",
        rf"test balanced accuracy {NUM} on the same\s+split",
        EX["proto"],
        "source.scores.test_balanced_accuracy",
    ),
    Figure(
        "explain proto mass on cue",
        rf"Its native map puts {NUM} of its relevance on the cue",
        EX["proto"],
        lambda d: _row_of(d, "prototypes")["mass_on_mask"]["point"],
    ),
    Figure(
        "explain proto chance",
        rf"on the cue \(chance {NUM}\)",
        EX["proto"],
        lambda d: _row_of(d, "random")["mass_on_mask"]["point"],
    ),
    Figure(
        "explain proto randomisation",
        rf"passes the sanity check \(ρ {NUM}\)\.",
        EX["proto"],
        lambda d: _row_of(d, "prototypes")["randomisation_rank_corr"]["point"],
    ),
    Figure(
        "explain time",
        rf"`explain.json` {NUM} s \(target < 30 s",
        "benchmarks/results/explain_time.json",
        "explain_s",
    ),
    Figure(
        "explain occlusion time",
        rf"Occlusion {NUM} s of it\)",
        "benchmarks/results/explain_time.json",
        "seconds_per_method.occlusion",
    ),
    Figure(
        "explain evaluate time",
        rf"`--evaluate` another {NUM} s",
        "benchmarks/results/explain_time.json",
        "evaluate_s",
    ),
]
COMMANDS_OF["benchmarks/results/explain_time.json"] = "python benchmarks/explain_time.py"


# The "Speed" section: the peer benchmark, parallel efficiency, torch.compile
PS, PE, CP = (
    "benchmarks/results/peer_speed.json",
    "benchmarks/results/parallel_efficiency.json",
    "benchmarks/results/compile_speed.json",
)
COMMANDS_OF.update(
    {
        PS: "python benchmarks/peer_speed.py --trials 12 --epochs 10 --repeat 2",
        PE: "python benchmarks/parallel_efficiency.py --trials 12 --epochs 3 --repeat 2",
        CP: "python benchmarks/compile_speed.py",
    }
)
_SIDES = {
    "sweep": r"`ape-nas sweep` \(whole command\)",
    "script": "Optuna \\+ Lightning \\+ MLflow script",
    "raw": "plain PyTorch loop",
}
FIGURES += [
    Figure("peer date", rf"peer_speed.json`, {DATE}\)", PS, lambda d: d["measured"]["date"][:10]),
    Figure("peer same work", rf"largest difference {NUM}\)", PS, "max_f1_diff.sweep_vs_script"),
    *(Figure(f"peer wall {k}", rf"\| {label} \| {NUM} s \|", PS, f"wall_s.{k}") for k, label in _SIDES.items()),
    Figure("peer sweep/script", rf"whole command\) \| [\d.]+ s \| {NUM}×", PS, "sweep_over_script"),
    Figure("peer raw/script", rf"plain PyTorch loop \| [\d.]+ s \| {NUM}×", PS, "raw_over_script"),
    *(
        Figure(f"peer rate {k}", rf"\| {label} \| [\d.]+ s \| [\d.]+× \| {NUM} \|", PS, f"epoch_windows_per_s.{k}")
        for k, label in _SIDES.items()
    ),
    Figure("peer sweep/raw", rf"whole command\) \| [\d.]+ s \| [\d.]+× \| [\d.]+ \| {NUM}×", PS, "sweep_over_raw"),
    Figure("peer script/raw", rf"MLflow script \| [\d.]+ s \| 1× \| [\d.]+ \| {NUM}×", PS, "script_over_raw"),
    Figure("peer target wall", rf"the whole command takes {NUM}× the script's time", PS, "sweep_over_script"),
    Figure("peer target epoch", rf"an epoch runs at {NUM}× the raw loop's speed", PS, "sweep_over_raw"),
    Figure("peer outside sweep", rf"the sweep spends {NUM} s against", PS, "outside_epochs_s.sweep"),
    Figure("peer outside script", rf"against the script's {NUM} s", PS, "outside_epochs_s.script"),
    Figure("peer before first", rf"before the first trial {NUM} s", PS, "sweep_phases_s.before_first_trial"),
    Figure("peer in trials", rf"outside epochs {NUM} s \(per trial", PS, "sweep_phases_s.in_trials_outside_epochs"),
    Figure("peer after last", rf"after the last trial {NUM} s \(plots", PS, "sweep_phases_s.after_last_trial"),
    Figure("speed fixed cost", rf"command fell from 4.9 s to {NUM} s", TO, "fixed_overhead_s"),
    Figure(
        "compile resnet", rf"`resnet1d` epoch took {NUM}×", CP, lambda d: d["specs"][0]["compiled_over_eager_epoch"]
    ),
    Figure("compile cost", rf"compiling cost {NUM} s", CP, lambda d: d["specs"][0]["compiled"]["compile_s"]),
    Figure("compile win back", rf"\({NUM} epochs to win back\)", CP, lambda d: d["specs"][0]["epochs_to_win_back"]),
    Figure("compile cnn", rf"slower compiled \({NUM}×\)", CP, lambda d: d["specs"][1]["compiled_over_eager_epoch"]),
    Figure("workers 2", rf"reach {NUM} trials/hour", PE, "trials_per_hour_wall.2w1t"),
    Figure("workers 1", rf"against {NUM} for one worker", PE, "trials_per_hour_wall.1w1t"),
    Figure("efficiency wall", rf"an efficiency of {NUM} over the whole command", PE, "efficiency_2w_wall"),
    Figure("efficiency steady", rf"over the whole command and {NUM} between", PE, "efficiency_2w_steady"),
    Figure("workers 1w2t", rf"one worker at 2 threads does {NUM} trials/hour", PE, "trials_per_hour_wall.1w2t"),
    Figure("worker start", rf"\(about {NUM} s from start to first trial", PE, "timeline_s.2w1t.start_to_first_trial"),
    Figure(
        "worker first trial",
        rf"first trial, {NUM} s more in its first trial",
        PE,
        "per_worker_s.2w1t.first_trial_extra",
    ),
    Figure("worker spawn", rf"plus {NUM} s for the spawning process", PE, "timeline_s.2w1t.spawn"),
    Figure("training side by side", rf"train {NUM}× slower each", PE, "training_per_trial_2w_over_1w"),
    Figure("efficiency row wall", rf"efficiency {NUM} over the whole command, ", PE, "efficiency_2w_wall"),
    Figure("efficiency row steady", rf"{NUM} in steady state \(section", PE, "efficiency_2w_steady"),
]


def _shown(value: Any, text: str) -> str:
    """``value`` written as the README writes ``text`` (same decimals; thousands separators dropped)."""
    if not isinstance(value, int | float):
        return str(value)
    digits = text.replace(",", "")
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    return f"{value:.{decimals}f}"


@pytest.mark.parametrize("figure", FIGURES, ids=[f.name for f in FIGURES])
def test_readme_figure_equals_its_results_file(figure: Figure):
    match = re.search(figure.pattern, README_TEXT)
    assert match, f"README: figure {figure.name!r} not found (pattern {figure.pattern!r}); update FIGURES"
    path = ROOT / figure.file
    assert path.is_file(), f"README {figure.name}: no results file {figure.file} (run: {figure.command})"
    data = json.loads(path.read_text())
    assert {"date", "commit", "machine"} <= set(data.get("measured", {})), f"{figure.file}: no date/commit/machine"
    text = match.group(1)
    expected = _shown(figure.read(data), text)
    assert text.replace(",", "") == expected, f"README {figure.name}: {text}, but {figure.file} says {expected}"


def test_every_results_file_named_by_the_readme_is_checked():
    named = set(re.findall(r"(?:benchmarks|docs)/results/\w+\.json", README))
    assert named <= {f.file for f in FIGURES}, named - {f.file for f in FIGURES}
