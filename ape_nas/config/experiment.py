"""Experiment files (``experiments/*.yaml``): schema, validation and ``--set`` overrides.

Every section is checked for exact keys, types and ranges; problems raise a ConfigError naming the file, line
and key. See ``docs/EXPERIMENTS.md`` for the reference of every key.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ape_nas.errors import UnknownNameError, UserError
from ape_nas.metrics import CONSTRAINTS, COST_METRICS, DIRECTIONS, SELECTIONS
from ape_nas.schema import Field, check_mapping, describe, is_kind, unknown_key_error
from ape_nas.search_names import BACKENDS, MULTI_OBJECTIVE_SAMPLERS, PRUNERS, SAMPLERS, SCHEDULERS
from ape_nas.spec import TRAINING_DEFAULTS
from ape_nas.yamlio import Document, KeyPath, dotted, load_yaml, parse_assignment

METRICS = DIRECTIONS  # metric name -> the direction in which it improves
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
PROTOCOLS = ("holdout", "kfold", "loso", "nested")
INNER_PROTOCOLS = ("holdout", "kfold", "loso")


def _subjects_check(value: Any) -> str | None:
    if is_kind(value, int):
        return None if value >= 1 else f"expected a count >= 1 or a list of subject ids, got {value}"
    if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
        return None if len(set(map(str, value))) == len(value) else "subject ids repeat"
    return f"expected a count >= 1 or a non-empty list of subject ids, got {describe(value)}"


def _band_problem(value: Any) -> str | None:
    ok = isinstance(value, list) and len(value) == 2 and all(is_kind(v, float) for v in value)
    if not ok or not 0 < value[0] < value[1]:
        return f"expected [low_hz, high_hz] with 0 < low < high, got {describe(value)}"
    return None


def _bandpass_check(value: Any) -> str | None:
    if isinstance(value, dict):  # per channel: {ecg: [0.5, 40], bvp: [0.5, 8]}
        for ch, band in value.items():
            problem = _band_problem(band)
            if problem:
                return f"channel {ch}: {problem}"
        return None
    return _band_problem(value)


QUALITY: dict[str, Field] = {
    "max_nan_frac": Field(float, 0.0, low=0.0, high=1.0, doc="share of NaN samples allowed in a window"),
    "flat_s": Field(float, 2.0, low=0.1, doc="identical values this long = flat line (sensor off)"),
    "clip_frac": Field(float, 0.05, low=0.0, high=1.0, doc="share of samples at the rails = clipping"),
    "max_gap_frac": Field(float, 0.25, low=0.0, high=1.0, doc="beat-interval channels: share inside gaps"),
}


INNER: dict[str, Field] = {
    "kind": Field(str, "kfold", choices=INNER_PROTOCOLS, doc="protocol of the search on an outer fold's subjects"),
    "val_subjects": Field(object, None, nullable=True, check=_subjects_check, doc="holdout: validation subjects"),
    "folds": Field(int, None, nullable=True, low=2, doc="kfold: number of validation groups"),
    "max_folds": Field(int, None, nullable=True, low=1, doc="run only the first n inner folds"),
}

SECTIONS: dict[str, dict[str, Field]] = {
    "data": {
        "benchmark": Field(str, doc="benchmark name (ape-nas data benchmarks)"),
        "params": Field(dict, dict, doc="loader parameters of the benchmark"),
        "channels": Field(list, doc="channels fed to the model, in order"),
        "rate_hz": Field(float, None, nullable=True, low=1.0, doc="resample every channel to this rate"),
        "bandpass_hz": Field(object, None, nullable=True, check=_bandpass_check, doc="[low, high] Hz, or per channel"),
        "quality": Field(dict, dict, doc="signal-quality rejection thresholds"),
        "hrv_source": Field(str, None, nullable=True, doc="channel the HRV baseline takes beats from"),
        "normalize": Field(str, "subject", choices=("subject", "window", "none"), doc="z-score statistics"),
        "window_s": Field(float, low=0.5, doc="window length in seconds"),
        "stride_s": Field(float, low=0.1, doc="step between window starts in seconds"),
        "label_purity": Field(float, 0.8, low=0.5, high=1.0, doc="min share of a window's samples in its label"),
    },
    "protocol": {
        "kind": Field(str, "holdout", choices=PROTOCOLS, doc="how subjects are split"),
        "test_subjects": Field(
            object, None, nullable=True, check=_subjects_check, doc="held-out test subjects: count or ids"
        ),
        "val_subjects": Field(object, None, nullable=True, check=_subjects_check, doc="holdout: validation subjects"),
        "folds": Field(int, None, nullable=True, low=2, doc="kfold: number of validation groups"),
        "max_folds": Field(int, None, nullable=True, low=1, doc="run only the first n folds"),
        "seed": Field(int, None, nullable=True, doc="seed of the subject draw (default: experiment seed)"),
        "outer_folds": Field(int, None, nullable=True, low=2, doc="nested: folds of outer test subjects"),
        "inner": Field(dict, None, nullable=True, doc="nested: the protocol of the search inside each outer fold"),
    },
    "objective": {
        "metric": Field(str, "f1_macro", choices=tuple(METRICS), doc="validation metric the search optimises"),
        "direction": Field(str, None, nullable=True, choices=("maximize", "minimize"), doc="default: metric's"),
        "selection": Field(str, "mean", choices=SELECTIONS, doc="multi-fold score: mean, or mean - k·SE"),
        "se_multiple": Field(float, 1.0, low=0.0, doc="k of mean_minus_se"),
        "metrics": Field(
            list,
            None,
            nullable=True,
            doc="several objectives: a validation metric, then costs (" + ", ".join(COST_METRICS) + ")",
        ),
        "directions": Field(list, None, nullable=True, doc="of metrics (default: each metric's own)"),
        "constraints": Field(dict, dict, doc="cost limits, checked before training: " + ", ".join(CONSTRAINTS)),
    },
    "training": {
        "max_epochs": Field(int, 10, low=1, doc="epochs per trial at most"),
        "patience": Field(int, 3, low=1, doc="early-stopping patience in epochs"),
        "num_threads": Field(int, None, nullable=True, low=1, doc="torch CPU threads per trial"),
        "accelerator": Field(
            str, TRAINING_DEFAULTS["accelerator"], choices=("cpu", "gpu", "auto"), doc="where trials train"
        ),
        "precision": Field(
            str, TRAINING_DEFAULTS["precision"], choices=PRECISIONS, doc="Lightning precision (mixed on GPUs)"
        ),
        "compile": Field(bool, False, doc="torch.compile each network (its first-epoch cost is logged: compile_s)"),
    },
    "budget": {
        "trials": Field(int, 10, low=1, doc="trials to add in this run"),
        "timeout_s": Field(float, None, nullable=True, low=1.0, doc="stop starting trials after this many s"),
    },
    "backend": {
        "name": Field(str, "optuna", choices=BACKENDS, doc="search backend"),
        "sampler": Field(str, "tpe", doc="sampler name"),
        "sampler_options": Field(dict, dict, doc="keyword arguments of the sampler"),
        "pruner": Field(str, None, nullable=True, doc="pruner name (default: median; none with several objectives)"),
        "pruner_options": Field(dict, dict, doc="keyword arguments of the pruner"),
        "storage": Field(str, None, nullable=True, doc="study storage URL (default: workdir SQLite)"),
        "scheduler": Field(str, "asha", choices=SCHEDULERS, doc="ray: trial scheduler"),
        "scheduler_options": Field(dict, dict, doc="ray: keyword arguments of the scheduler"),
        "max_concurrent": Field(int, 2, low=1, doc="ray: trials running at once"),
        "cpus_per_trial": Field(float, 1.0, low=0.1, doc="ray: CPUs per trial (torch threads follow)"),
        "gpus_per_trial": Field(float, 0.0, low=0.0, doc="ray: GPUs per trial (fractions pack trials)"),
        "address": Field(str, None, nullable=True, doc="ray: cluster address (default: start a local one)"),
    },
}

TOP: dict[str, Field] = {
    "name": Field(str, doc="study and MLflow experiment name"),
    "description": Field(str, ""),
    "seed": Field(int, 0, low=0, doc="seed of data split, sampler and training"),
    "space": Field(str, doc="search-space file, relative to this file"),
    **{section: Field(dict, dict) for section in SECTIONS},
}


@dataclass
class ExperimentConfig:
    """A validated experiment. Sections are plain dicts with every default filled in."""

    name: str
    description: str
    seed: int
    space_path: Path
    data: dict[str, Any]
    protocol: dict[str, Any]
    objective: dict[str, Any]
    training: dict[str, Any]
    budget: dict[str, Any]
    backend: dict[str, Any]
    doc: Document

    @property
    def direction(self) -> str:
        """The direction of the first objective (the validation metric)."""
        return self.objective["direction"]

    @property
    def objectives(self) -> list[str]:
        """Every objective in order: the validation metric, then the cost metrics."""
        return [self.objective["metric"], *self.objective["costs"]]

    @property
    def directions(self) -> list[str]:
        return [self.direction, *(["minimize"] * len(self.objective["costs"]))]

    @property
    def multi_objective(self) -> bool:
        return bool(self.objective["costs"])

    def base(self) -> dict[str, Any]:
        """What every TrialSpec of this experiment shares (see :meth:`ape_nas.space.Space.to_spec`)."""
        training = {**self.training, "metric": self.objective["metric"], "direction": self.direction}
        if not training.get("compile"):  # recorded only when on: specs and digests stay as they were
            training.pop("compile", None)
        if self.objective["selection"] != "mean":  # recorded only when it changes the score (digests stay)
            training["selection"] = self.objective["selection"]
            training["se_multiple"] = self.objective["se_multiple"]
        return {
            "data": copy.deepcopy(self.data),
            "protocol": copy.deepcopy(self.protocol),
            "training": training,
            "seed": self.seed,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "seed": self.seed,
            "space": str(self.space_path),
            "data": self.data,
            "protocol": self.protocol,
            "objective": self.objective,
            "training": self.training,
            "budget": self.budget,
            "backend": self.backend,
        }


class Flag(str):
    """An override that a command-line flag stands for: ``Flag("budget.trials=-3", "--trials -3")``.

    Errors about its key name the flag as the user typed it, not a ``--set`` they never wrote.
    """

    typed: str

    def __new__(cls, text: str, typed: str) -> Flag:
        obj = super().__new__(cls, text)
        obj.typed = typed
        return obj


def apply_overrides(doc: Document, overrides: list[str]) -> None:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to the document in place."""
    for text in overrides:
        key, value = parse_assignment(text)
        parts = key.split(".")
        node = doc.data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise UserError(f"--set {text}: {'.'.join(parts[: i + 1])} is not a mapping")
            node = child
        node[parts[-1]] = value
        doc.overrides[tuple(parts)] = getattr(text, "typed", None) or f"--set {text}"


class BenchmarkCatalog(Protocol):
    """What the experiment schema needs to know of the benchmarks (``ape_nas.data.benchmarks`` is one):
    passed in, so that ``config`` never imports ``data``."""

    def loader_defaults(self, name: str) -> dict[str, Any]:
        """The loader's keyword parameters with their defaults; an unknown name raises UnknownNameError."""
        ...

    def path_params(self, name: str) -> tuple[str, ...]:
        """The loader parameters that name files or folders."""
        ...


def _check_benchmark_params(doc: Document, data: dict[str, Any], catalog: BenchmarkCatalog) -> None:
    try:
        defaults = catalog.loader_defaults(data["benchmark"])
    except UnknownNameError as err:
        raise doc.error(("data", "benchmark"), str(err)) from None
    for key, value in data["params"].items():
        keypath: KeyPath = ("data", "params", key)
        if key not in defaults:
            raise unknown_key_error(doc, ("data", "params"), key, list(defaults))
        default = defaults[key]
        if default is not None and not isinstance(default, list | tuple):
            kind = float if isinstance(default, float) else type(default)
            if not is_kind(value, kind):
                problem = f"expected {kind.__name__} like the default {default!r}, got {describe(value)}"
                raise doc.error(keypath, problem)


def _resolve_data_paths(doc: Document, data: dict[str, Any], catalog: BenchmarkCatalog) -> None:
    """Relative data paths in ``data.params`` are relative to the experiment file (not to the shell's cwd)."""
    base = Path(doc.path).parent
    for key in catalog.path_params(data["benchmark"]):
        value = data["params"].get(key)
        if (
            isinstance(value, str)
            and value
            and not Path(value).is_absolute()
            and (*("data", "params", key),) not in doc.overrides
        ):
            data["params"][key] = str((base / value).resolve())


def _check_kind_keys(doc: Document, where: KeyPath, protocol: dict[str, Any]) -> None:
    kind = protocol["kind"]
    needs = {"holdout": "val_subjects", "kfold": "folds"}.get(kind)
    for key in ("val_subjects", "folds"):
        if key == needs and protocol[key] is None:
            raise doc.error((*where, key), f"missing: protocol kind {kind} needs {key}")
        if key != needs and protocol[key] is not None:
            raise doc.error((*where, key), f"not used by protocol kind {kind}; remove it")


def _check_protocol(doc: Document, protocol: dict[str, Any]) -> None:
    """Keys each protocol kind needs and refuses; ``nested`` gets its ``inner`` protocol checked and filled."""
    if protocol["kind"] != "nested":
        for key in ("outer_folds", "inner"):
            if protocol[key] is not None:
                raise doc.error(("protocol", key), "only used by protocol kind nested; remove it")
        if protocol["test_subjects"] is None:
            raise doc.error(
                ("protocol", "test_subjects"), f"missing: protocol kind {protocol['kind']} needs test_subjects"
            )
        _check_kind_keys(doc, ("protocol",), protocol)
        return
    for key, why in (
        ("test_subjects", "the outer folds choose the test subjects"),
        ("val_subjects", "set it under protocol.inner"),
        ("folds", "use protocol.outer_folds, or protocol.inner.folds"),
        ("max_folds", "set it under protocol.inner"),
    ):
        if protocol[key] is not None:
            raise doc.error(("protocol", key), f"not used by protocol kind nested ({why}); remove it")
    if protocol["outer_folds"] is None:
        raise doc.error(("protocol", "outer_folds"), "missing: protocol kind nested needs outer_folds (an int >= 2)")
    if protocol["inner"] is None:
        raise doc.error(("protocol", "inner"), "missing: protocol kind nested needs inner: {kind: kfold, folds: 3}")
    protocol["inner"] = check_mapping(doc, ("protocol", "inner"), protocol["inner"], INNER)
    _check_kind_keys(doc, ("protocol", "inner"), protocol["inner"])


def _raw_objective(doc: Document) -> dict[str, Any]:
    raw = doc.data.get("objective") if isinstance(doc.data, dict) else None
    return raw if isinstance(raw, dict) else {}


def _check_objectives(doc: Document, objective: dict[str, Any], *, backend: dict[str, Any], nested: bool) -> None:
    """``metrics`` (several objectives) → ``metric`` (the first) and ``costs`` (the rest, minimised); constraints;
    what a multi-objective search cannot do (pruning, CMA-ES, Ray, nested CV) is refused here, in one line."""
    key: KeyPath = ("objective", "metrics")
    metrics = objective.pop("metrics")
    directions = objective.pop("directions")
    objective["costs"] = []
    if metrics is not None:
        if not metrics:
            raise doc.error(key, "expected a list of metric names: a validation metric first, then cost metrics")
        for i, name in enumerate(metrics):
            known = list(METRICS) if i == 0 else list(COST_METRICS)
            if name not in known:
                what = "a validation metric" if i == 0 else "a cost metric"
                raise doc.error((*key, i), f"expected {what} ({', '.join(known)}), got {describe(name)}")
        if "metric" in _raw_objective(doc) and objective["metric"] != metrics[0]:
            raise doc.error(
                ("objective", "metric"),
                f"{objective['metric']} is not the first of objective.metrics: give one of them",
            )
        if len(set(metrics)) != len(metrics):
            raise doc.error(key, "a metric repeats")
        objective["metric"], objective["costs"] = metrics[0], list(metrics[1:])
        natural = [METRICS[metrics[0]], *(["minimize"] * (len(metrics) - 1))]
        if directions is not None:
            if len(directions) != len(metrics):
                raise doc.error(("objective", "directions"), f"expected {len(metrics)} directions, one per metric")
            for i, (have, want) in enumerate(zip(directions, natural, strict=True)):
                if have != want:
                    raise doc.error(("objective", "directions", i), f"{metrics[i]} is better {want[:3]}imised")
    elif directions is not None:
        raise doc.error(("objective", "directions"), "directions go with objective.metrics (several objectives)")
    for name, limit in objective["constraints"].items():
        if name not in CONSTRAINTS:
            raise unknown_key_error(doc, ("objective", "constraints"), name, list(CONSTRAINTS))
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0:
            raise doc.error(("objective", "constraints", name), f"expected a positive number, got {describe(limit)}")
    multi = bool(objective["costs"])
    if backend["pruner"] is None:
        backend["pruner"] = "none" if multi else "median"
    if not multi:
        if objective["constraints"] and backend["name"] == "ray":
            raise doc.error(("objective", "constraints"), "cost constraints need backend optuna (Ray: not supported)")
        return
    if backend["pruner"] != "none":
        raise doc.error(
            ("backend", "pruner"),
            f"{backend['pruner']}: Optuna cannot prune a trial of a multi-objective study (objective.metrics has "
            f"{len(metrics)}); expected pruner none",
        )
    if backend["sampler"] in SAMPLERS and backend["sampler"] not in MULTI_OBJECTIVE_SAMPLERS:
        raise doc.error(
            ("backend", "sampler"),
            f"{backend['sampler']} handles one objective; with several use {', '.join(MULTI_OBJECTIVE_SAMPLERS)}",
        )
    if backend["name"] == "ray":
        raise doc.error(key, "several objectives need backend optuna (the Ray backend searches one objective)")
    if nested:
        raise doc.error(key, "several objectives: nested CV refits one best trial per fold, a front has many")


def parse_experiment(doc: Document, catalog: BenchmarkCatalog) -> ExperimentConfig:
    """Validate a loaded experiment document; ``data.params`` are checked against ``catalog``."""
    top = check_mapping(doc, (), doc.data, TOP)
    sections = {name: check_mapping(doc, (name,), top[name], fields) for name, fields in SECTIONS.items()}
    data, protocol, objective = sections["data"], sections["protocol"], sections["objective"]
    if not data["channels"] or not all(isinstance(c, str) for c in data["channels"]):
        raise doc.error(("data", "channels"), f"expected a non-empty list of channel names, got {data['channels']}")
    if data["stride_s"] > data["window_s"] * 4:
        raise doc.error(("data", "stride_s"), "expected a stride no longer than 4 window lengths")
    _check_benchmark_params(doc, data, catalog)
    _resolve_data_paths(doc, data, catalog)
    data["quality"] = check_mapping(doc, ("data", "quality"), data["quality"], QUALITY)
    _check_objectives(doc, objective, backend=sections["backend"], nested=protocol["kind"] == "nested")
    natural = METRICS[objective["metric"]]
    if objective["direction"] is None:
        objective["direction"] = natural
    elif objective["direction"] != natural:
        raise doc.error(
            ("objective", "direction"),
            f"{objective['metric']} is better when it is {natural[:3]}imised; expected direction: {natural}",
        )
    if protocol["seed"] is None:
        protocol["seed"] = top["seed"]
    training = sections["training"]
    if training["precision"] == "16-mixed" and training["accelerator"] == "cpu":
        raise doc.error(("training", "precision"), "16-mixed needs a GPU; on CPU use 32-true or bf16-mixed")
    _check_protocol(doc, protocol)
    backend = sections["backend"]
    if backend["sampler"] not in SAMPLERS:
        raise doc.error(("backend", "sampler"), str(UnknownNameError("sampler", backend["sampler"], list(SAMPLERS))))
    if backend["pruner"] not in PRUNERS:
        raise doc.error(("backend", "pruner"), str(UnknownNameError("pruner", backend["pruner"], list(PRUNERS))))
    space_path = (Path(doc.path).parent / top["space"]).resolve()
    if not space_path.is_file():
        raise doc.error(("space",), f"search-space file {top['space']!r} not found (looked at {space_path})")
    return ExperimentConfig(
        name=top["name"], description=top["description"], seed=top["seed"], space_path=space_path, doc=doc, **sections
    )


def load_experiment(
    path: str | Path, overrides: list[str] | None = None, *, catalog: BenchmarkCatalog
) -> ExperimentConfig:
    """Load, override and validate an experiment file against a benchmark catalog.

    Callers above the config and data layers use :func:`ape_nas.experiments.load_experiment`, which passes
    ``ape_nas.data.benchmarks``.
    """
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise doc.error((), f"expected a mapping at the top of the file, got {describe(doc.data)}")
    apply_overrides(doc, overrides or [])
    return parse_experiment(doc, catalog)


__all__ = ["METRICS", "PRUNERS", "SAMPLERS", "ExperimentConfig", "Flag", "apply_overrides", "dotted", "load_experiment"]
