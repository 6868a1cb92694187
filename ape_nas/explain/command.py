"""``ape-nas explain``: source → windows → saliency per method → beat-synchronous profiles → PNGs, ``explain.json``
(raw attributions), with ``--evaluate`` the faithfulness table → MLflow.

Everything that can be wrong with the input is checked before the first attribution (methods, layer, the
source's checksums, the data's channels and rates, the chosen windows). Results are written into a staging
folder beside ``--out`` and renamed into place at the end, so a failure or Ctrl-C leaves no half-written folder;
the MLflow artifacts are logged after that.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.errors import UserError

RESULT_FORMAT = "ape-nas-explain/1"


@dataclass
class Explained:
    methods: list[str]
    maps: dict[str, np.ndarray]  # method → (n, T) relevance
    target: np.ndarray  # (n,) class each window is explained for
    probs: np.ndarray  # (n, classes)
    seconds: dict[str, float]  # method → seconds spent


def split_list(text: str | None) -> list[str]:
    return [v.strip() for v in str(text or "").split(",") if v.strip()]


def check_args(args: argparse.Namespace) -> None:
    if args.per_class < 1:
        raise UserError(f"--per-class {args.per_class}: expected at least 1")
    if args.max_windows < 1:
        raise UserError(f"--max-windows {args.max_windows}: expected at least 1")
    if args.plots < 0:
        raise UserError(f"--plots {args.plots}: expected 0 or more")
    if args.method is not None and not split_list(args.method):
        raise UserError("--method: name at least one method")


def check_out(out: Path) -> None:
    """``--out`` must not exist, or be an empty folder."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out}: exists and is not an empty folder; give a new folder")


def fresh_out(out: Path) -> Path:
    """The staging folder beside ``out`` (checked by :func:`check_out` before any work)."""
    stage = out.with_name(f".{out.name}.partial")
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    return stage


def data_request(
    args: argparse.Namespace, preprocessing: dict[str, Any], overrides: dict[str, Any]
) -> tuple[str, dict[str, Any], str | None]:
    """(data, reader params, reader): ``--data`` as given, or else the model's own training data as it was read."""
    if args.data is not None:
        return str(args.data), overrides, args.benchmark
    own = preprocessing.get("source_data") or {}
    if not own.get("benchmark"):
        raise UserError("--data: this model does not record the data it was trained on; name the recordings")
    params = {**dict(own.get("params") or {}), **overrides}
    path = params.pop("path", None)
    return (str(path), params, own["benchmark"]) if path else (str(own["benchmark"]), params, None)


def explain_windows(
    net: Any, w: Any, methods: list[str], layer: str | None, target_mode: str, progress: Any = None
) -> Explained:
    import time

    import torch

    from ape_nas.explain.saliency import attribute

    x = torch.from_numpy(w.X)
    feats = None if w.features is None else torch.from_numpy(w.features)
    with torch.no_grad():
        probs = torch.softmax(net.eval()(x, feats), dim=1).numpy()
    if target_mode == "label":
        if (w.labels < 0).any():
            raise UserError("--target label: some chosen windows have no label (use --target predicted)")
        target = w.labels.copy()
    else:
        target = probs.argmax(axis=1)
    maps: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for method in methods:
        t0 = time.perf_counter()
        maps[method] = attribute(net, x, torch.from_numpy(target), method, layer=layer, features=feats, rate=w.rate_hz)
        seconds[method] = time.perf_counter() - t0
        if progress is not None:
            progress(method)
    return Explained(methods, maps, target, probs, seconds)


def _short(values: np.ndarray) -> list[float]:
    return [float(f"{v:.4g}") for v in np.asarray(values, dtype=float)]


def window_records(w: Any, ex: Explained, class_names: list[str]) -> list[dict[str, Any]]:
    out = []
    for i in range(len(w)):
        out.append(
            {
                "subject": w.subjects[i],
                "window": int(w.index[i]),
                "start_s": round(float(w.starts_s[i]), 3),
                "label": class_names[w.labels[i]] if w.labels[i] >= 0 else None,
                "explained_class": class_names[ex.target[i]],
                "probabilities": _short(ex.probs[i]),
                "beats_samples": [round(float(b), 2) for b in w.beats[i]],
                "cue_samples": np.flatnonzero(w.cue[i]).tolist() if w.cue is not None else None,
                "attributions": {m: _short(ex.maps[m][i]) for m in ex.methods},
            }
        )
    return out


def plot_choice(w: Any, ex: Explained, n: int) -> list[int]:
    """Up to ``n`` windows, taking each explained class and subject in turn (so every class is drawn)."""
    by_group: dict[tuple[int, str], list[int]] = {}
    for i in range(len(w)):
        by_group.setdefault((int(ex.target[i]), w.subjects[i]), []).append(i)
    order: list[int] = []
    queues = [list(v) for _, v in sorted(by_group.items())]
    while len(order) < n and any(queues):
        for q in queues:
            if q and len(order) < n:
                order.append(q.pop(0))
    return sorted(order)


def draw(stage: Path, w: Any, ex: Explained, class_names: list[str], title: str, n_plots: int) -> dict[str, Any]:
    from ape_nas.explain.beatsync import beat_profile
    from ape_nas.explain.plots import beat_figure, window_figure

    signal = w.beat_signal()
    groups = [class_names[t] for t in ex.target]
    profiles = {m: beat_profile(ex.maps[m], signal, w.beats, groups, w.rate_hz) for m in ex.methods}
    beat_png = beat_figure(profiles, f"beat-synchronous saliency — {title}", stage / "beats.png")
    pngs = []
    (stage / "windows").mkdir()
    for i in plot_choice(w, ex, n_plots):
        label = class_names[w.labels[i]] if w.labels[i] >= 0 else "unlabelled"
        head = (
            f"{w.subjects[i]} window {w.index[i]} (t = {w.starts_s[i]:.0f} s) · label {label} · explained: "
            f"{class_names[ex.target[i]]} (p = {ex.probs[i, ex.target[i]]:.2f})"
        )
        path = stage / "windows" / f"{w.subjects[i]}_w{int(w.index[i]):04d}.png"
        cue = w.cue[i] if w.cue is not None else None
        window_figure(
            signal[i],
            {m: ex.maps[m][i] for m in ex.methods},
            w.beats[i],
            w.rate_hz,
            head,
            path,
            cue,
            channel=w.beat_channel or w.channels[0],
        )
        pngs.append(str(path.relative_to(stage)))
    return {
        "beat_png": str(beat_png.relative_to(stage)),
        "window_pngs": pngs,
        "profiles": {m: p.to_json() for m, p in profiles.items()},
    }


def cli_explain(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ape_nas.console import make_console
    from ape_nas.explain.saliency import NATIVE, available_methods, check_methods, resolve_layer
    from ape_nas.explain.windows import load_windows, parse_windows
    from ape_nas.transfer.command import provenance
    from ape_nas.transfer.source import load_source
    from ape_nas.transfer.target import report_left_out
    from ape_nas.yamlio import parse_assignments

    check_args(args)
    chosen = parse_windows(args.windows)
    measured = provenance()
    out = Path(args.out)
    check_out(out)
    err = make_console(stderr=True)
    with err.status("explain: reading the source") as status:
        source = load_source(
            args.source,
            workdir=args.workdir,
            tracking_uri=args.tracking_uri,
            step=lambda text: status.update(f"explain: {text}"),
        )
        net = source.net.eval()
        if args.method is None:  # every method that applies
            methods = available_methods(net)
        else:
            methods = check_methods(list(dict.fromkeys(split_list(args.method))), net)
        data, params, reader = data_request(args, source.bundle.preprocessing, parse_assignments(args.overrides))
        status.update(f"explain: reading and windowing {data}")
        w = load_windows(
            source.bundle,
            data,
            params,
            reader,
            subjects=split_list(args.subjects) or None,
            chosen=chosen,
            per_class=args.per_class,
            max_windows=args.max_windows,
        )
        layer = None
        if "gradcam" in methods:
            import torch

            feats = None if w.features is None else torch.from_numpy(w.features[:1])
            layer = resolve_layer(net, args.layer, w.X.shape[1], feats)
    report_left_out(err, w.left_out, w.reader)
    class_names = list(source.bundle.class_names)
    title = f"{source.spec.model} ({source.kind} {source.where}) on {w.reader}"
    stage = fresh_out(out)
    try:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task(f"explaining {len(w)} windows", total=len(methods))
            ex = explain_windows(
                net, w, methods, layer, args.target, lambda m: bar.update(task, advance=1, description=f"{m} done")
            )
        with err.status("explain: drawing"):
            drawn = draw(stage, w, ex, class_names, title, args.plots)
            if NATIVE in methods:
                drawn["prototype_png"] = _prototype_figure(stage, net, w, ex, class_names)
        faith = None
        if args.evaluate:
            from ape_nas.explain.evaluate import evaluate_methods, print_table

            faith = evaluate_methods(net, w, ex, layer=layer, seed=args.seed, stage=stage, title=title, console=err)
        record = {
            "format": RESULT_FORMAT,
            "measured": measured,
            "source": {**source.describe(), "scores": trial_scores(source)},
            "data": {"data": w.data, "reader": w.reader, "left_out": w.left_out, "beat_channel": w.beat_channel},
            "class_names": class_names,
            "methods": methods,
            "gradcam_layer": layer,
            "target": args.target,
            "rate_hz": w.rate_hz,
            "seconds": {m: round(s, 3) for m, s in ex.seconds.items()},
            "beat_synchronous": drawn["profiles"],
            "figures": {k: v for k, v in drawn.items() if k != "profiles"},
            "faithfulness": faith["record"] if faith else None,
            "windows": window_records(w, ex, class_names),
        }
        if NATIVE in methods:
            for entry, report in zip(record["windows"], prototype_records(net, w, ex), strict=True):
                entry["prototypes"] = report
            record["prototypes"] = prototype_table(net, class_names)
        # compact: the raw attributions are most of it (one number per sample, method and window)
        (stage / "explain.json").write_text(json.dumps(record, separators=(",", ":")) + "\n")
        stage.rename(out) if not out.exists() else _move_into(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    console = make_console()
    _print_summary(console, record, ex)
    if faith:
        print_table(faith["rows"], f"faithfulness — {title}", console)
    if not args.no_track:
        from ape_nas.explain.tracking import log_explain

        where = log_explain(source, record, out, args)
        console.print(f"MLflow: {where}")
    console.print(f"results: {out} (explain.json, beats.png, windows/*.png{', faithfulness.*' if faith else ''})")
    return 0


def trial_scores(source: Any) -> dict[str, float]:
    """A trial source's recorded validation and test-subject scores (``best_val_*``, ``test_*``); {} for a bundle."""
    if source.kind != "trial" or not source.tracking_uri or not source.run_id:
        return {}
    from ape_nas.tracking import TrialStore

    run = TrialStore(source.tracking_uri).run(source.run_id)
    metrics = run.metrics if run is not None else {}
    return {k: float(v) for k, v in sorted(metrics.items()) if k.startswith(("best_val_", "test_"))}


def _move_into(stage: Path, out: Path) -> None:
    for item in stage.iterdir():
        item.rename(out / item.name)
    stage.rmdir()


def _prototype_figure(stage: Path, net: Any, w: Any, ex: Explained, class_names: list[str]) -> str:
    import torch

    from ape_nas.explain.prototypes import plot_prototypes

    i = int(np.argmax(ex.probs[np.arange(len(w)), ex.target]))
    feats = None if w.features is None else torch.from_numpy(w.features[i : i + 1])
    path = stage / "prototypes.png"
    plot_prototypes(
        net,
        torch.from_numpy(w.X[i : i + 1]),
        torch.as_tensor(ex.target[i : i + 1]),
        path,
        features=feats,
        rate_hz=w.rate_hz,
        class_names=class_names,
        channel=w.channels.index(w.beat_channel) if w.beat_channel in w.channels else 0,
    )
    return str(path.relative_to(stage))


def prototype_table(net: Any, class_names: list[str]) -> list[dict[str, Any]]:
    """Every prototype: its class and the training segment nearest to it (samples of each channel)."""
    from ape_nas.explain.prototypes import nearest_segment

    out = []
    for m, c in enumerate(net.prototype_class.tolist()):
        segment = net.prototype_segments[m].detach().cpu().numpy()
        out.append(
            {
                "prototype": m,
                "class": class_names[c] if 0 <= c < len(class_names) else c,
                "nearest": nearest_segment(net, m),
                "segment": [_short(ch) for ch in segment],
            }
        )
    return out


def prototype_records(net: Any, w: Any, ex: Explained) -> list[dict[str, Any]]:
    """Per window, which prototypes fired where (the part-based family's own explanation)."""
    import torch

    from ape_nas.explain.prototypes import prototype_report

    feats = None if w.features is None else torch.from_numpy(w.features)
    reports = prototype_report(net, torch.from_numpy(w.X), torch.as_tensor(ex.target), features=feats)
    return [{k: v for k, v in r.items() if k != "window"} for r in reports]


def _print_summary(console: Any, record: dict[str, Any], ex: Explained) -> None:
    from rich.table import Table

    table = Table(title=f"explained {len(record['windows'])} windows ({record['data']['reader']})")
    for col in ("method", "s", "phase-locked", "between beats", "peak of relevance (ms from beat)"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for m in ex.methods:
        prof = record["beat_synchronous"][m]
        peaks = []
        for cls, values in sorted(prof["saliency"].items()):
            k = int(np.argmax(values))
            peaks.append(f"{cls}: {prof['ms'][k]:+.0f}")
        table.add_row(
            m,
            f"{ex.seconds[m]:.2f}",
            f"{prof['phase_locking']:.2f}",
            f"{prof['between_beats']:.2f}",
            ", ".join(peaks) or "no complete beat",
        )
    console.print(table)
