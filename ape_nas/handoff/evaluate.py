"""``ape-nas evaluate BUNDLE --data PATH``: a prediction run (:mod:`ape_nas.handoff.predict`) on labelled
recordings, scored per subject and overall with the metric definitions of training
(:func:`ape_nas.handoff.scores.score`), plus a confusion matrix, as JSON and PNG. No torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.console import make_console
from ape_nas.data.types import UNLABELLED
from ape_nas.errors import UserError
from ape_nas.handoff.predict import PredictionRun, run_prediction
from ape_nas.handoff.scores import score
from ape_nas.metrics import CLASS_METRICS
from ape_nas.yamlio import parse_assignments

COLUMNS = {"balanced_accuracy": "balanced_acc"}  # shorter table headers


def evaluation_report(run: PredictionRun) -> dict[str, Any]:
    names = run.bundle.class_names
    k = len(names)
    per_subject, ys, ps = {}, [], []
    unlabelled = 0
    for s in run.subjects:
        keep = s.labels != UNLABELLED
        unlabelled += int((~keep).sum())
        y, p = s.labels[keep], s.probs[keep]
        if len(y):
            per_subject[s.subject] = score(y, p, k)
            ys.append(y)
            ps.append(p)
    if not ys:
        raise UserError(
            f"{run.data}: no labelled window (evaluate needs labels, e.g. labels.csv of a folder data set, with "
            f"windows at least {100 * run.bundle.preprocessing['label_purity']:.0f} % one class); "
            "use `ape-nas predict` for unlabelled recordings"
        )
    overall = score(np.concatenate(ys), np.concatenate(ps), k)
    f1s = [m["f1_macro"] for m in per_subject.values()]
    return {
        "bundle": str(run.bundle.path),
        "source_run_id": run.bundle.info.get("source", {}).get("run_id"),
        "spec_digest": run.bundle.info.get("spec_digest"),
        "data": run.data,
        "reader": run.reader,
        "class_names": names,
        "normalisation": run.bundle.preprocessing["normalize"],
        "overall": overall,
        "subject_mean_f1_macro": float(np.mean(f1s)),
        "per_subject": per_subject,
        "unlabelled_windows": unlabelled,
        "unlabelled_subjects": [s.subject for s in run.subjects if s.subject not in per_subject],
        "skipped": run.skipped,
    }


def plot_evaluation(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = report["class_names"]
    cm = np.asarray(report["overall"]["confusion"], dtype=float)
    subjects = list(report["per_subject"])
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.4]})
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}\n{100 * share[i, j]:.0f}%",
                ha="center",
                va="center",
                color="white" if share[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({report['overall']['windows']} windows)")
    ba = [report["per_subject"][s]["balanced_accuracy"] for s in subjects]
    f1 = [report["per_subject"][s]["f1_macro"] for s in subjects]
    x = np.arange(len(subjects))
    bx.bar(x - 0.2, ba, 0.4, label="balanced accuracy")
    bx.bar(x + 0.2, f1, 0.4, label="F1 macro")
    bx.axhline(1.0 / len(names), color="grey", lw=0.8, ls="--", label="chance")
    bx.set_xticks(x, subjects, rotation=60 if len(subjects) > 8 else 0, fontsize=8)
    bx.set_ylim(0, 1)
    bx.set_title("per subject")
    bx.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_evaluation(report: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    js = out / "evaluation.json"
    js.write_text(json.dumps(report, indent=2))
    return js, plot_evaluation(report, out / "evaluation.png")


def print_evaluation(report: dict[str, Any], console: Any = None) -> None:
    from rich.table import Table

    console = console or make_console()
    names = report["class_names"]
    table = Table(title=f"evaluation on {report['data']}")
    metric_columns = [COLUMNS.get(m, m) for m in CLASS_METRICS]
    for col in ("subject", "windows", *(f"{c} n" for c in names), *metric_columns, "accuracy"):
        table.add_column(col, justify="left" if col == "subject" else "right")

    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    rows = [*report["per_subject"].items(), ("overall (pooled)", report["overall"])]
    for subject, m in rows:
        table.add_row(
            subject,
            str(m["windows"]),
            *map(str, m["counts"]),
            *(fmt(m[k]) for k in (*CLASS_METRICS, "accuracy")),
        )
    console.print(table)
    cm = report["overall"]["confusion"]
    console.print(
        "confusion (rows true, columns predicted: "
        + ", ".join(names)
        + "): "
        + "; ".join(" ".join(map(str, r)) for r in cm)
    )


def cli_evaluate(args: Any) -> int:
    """``ape-nas evaluate BUNDLE --data PATH [--out DIR] [--benchmark NAME] [--set name=value] [--labelled-only]``.

    Default ``--out``: ``evaluation/`` next to the bundle folder.
    """
    run = run_prediction(
        args.bundle,
        args.data,
        parse_assignments(getattr(args, "overrides", None)),
        getattr(args, "benchmark", None),
        labelled_only=bool(getattr(args, "labelled_only", False)),
        need_labels=True,
    )
    report = evaluation_report(run)
    out = getattr(args, "out", None) or Path(args.bundle).resolve().parent / "evaluation"
    js, png = write_evaluation(report, out)
    console = make_console()
    print_evaluation(report, console)
    console.print(f"→ {js}, {png}")
    return 0
