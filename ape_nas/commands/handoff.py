"""``ape-nas export``, ``predict`` and ``evaluate``: their arguments; the work is done in ``ape_nas.handoff``."""

from __future__ import annotations

import argparse

from ape_nas.commands.common import (
    Command,
    reader_args,
    set_args,
    tracking_uri_arg,
    workdir_arg,
)


def export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", help="MLflow run id of a trial, or an experiment YAML file (its best trial)")
    p.add_argument("--out", required=True, help="bundle folder to write (must not exist or be empty)")
    p.add_argument(
        "--final",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refit on every non-test subject for the trial's best epoch count + 1 (default for kfold/loso trials; "
        "--no-final: the fold-0 model as trained)",
    )
    p.add_argument(
        "--ensemble",
        metavar="K|folds",
        default=None,
        help="one bundle with the mean probability of the K best distinct trials of the experiment's sweep, or "
        "(folds) of one kfold/loso trial's fold models",
    )
    p.add_argument(
        "--trial",
        type=int,
        metavar="N",
        default=None,
        help="the experiment's trial N instead of its best (any point of a Pareto front: `ape-nas best`)",
    )
    tracking_uri_arg(p, "the workdir's")
    p.add_argument("--model-name", default=None, help="registered model name (default: ape-nas-<experiment>)")
    p.add_argument("--no-register", action="store_true", help="do not register the bundle in the MLflow registry")
    p.add_argument("--latency-runs", type=int, default=200, help="timed batch-1 runs for the model card")
    workdir_arg(p)  # trials are read from MLflow: no study storage, no backend
    set_args(p)


def run_export(args: argparse.Namespace) -> int:
    from ape_nas.handoff.export import cli_export

    return cli_export(args)


def recordings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="bundle folder written by `ape-nas export`")
    p.add_argument(
        "--data",
        required=True,
        help="recordings: a folder or file in any supported reader format, or a built-in benchmark name (synthetic)",
    )
    reader_args(p)


def predict_arguments(p: argparse.ArgumentParser) -> None:
    recordings_args(p)
    p.add_argument("--out", default="predictions.csv", help="CSV of per-window probabilities")


def run_predict(args: argparse.Namespace) -> int:
    from ape_nas.handoff.predict import cli_predict

    return cli_predict(args)


def evaluate_arguments(p: argparse.ArgumentParser) -> None:
    recordings_args(p)
    p.add_argument("--out", default=None, help="folder for evaluation.json and .png (default: next to the bundle)")
    p.add_argument(
        "--labelled-only",
        action="store_true",
        help="keep only labelled windows, as in training (per-subject normalisation then uses the same windows)",
    )


def run_evaluate(args: argparse.Namespace) -> int:
    from ape_nas.handoff.evaluate import cli_evaluate

    return cli_evaluate(args)


EXPORT = Command(
    "export",
    "write a self-contained bundle (ONNX, TorchScript, preprocessing, model card)",
    export_arguments,
    run_export,
)
PREDICT = Command(
    "predict",
    "run a bundle on new recordings through onnxruntime (probabilities per window)",
    predict_arguments,
    run_predict,
)
EVALUATE = Command(
    "evaluate",
    "run a bundle on labelled recordings: metrics per subject, confusion matrix",
    evaluate_arguments,
    run_evaluate,
)
