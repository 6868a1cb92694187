"""Optuna backend: samplers and pruners by exact name, an RDB study storage, resumable studies.

The study lives in ``<workdir>/optuna.db`` (SQLite) unless ``backend.storage`` or ``--storage`` gives any
SQLAlchemy URL. Re-running the same experiment loads the same study (same name) and adds trials to it.
"""

from __future__ import annotations

import inspect
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from ape_nas.backends.base import Backend, TrialFunction, TrialRecord
from ape_nas.config.experiment import ExperimentConfig
from ape_nas.config.schema import unknown_key_error
from ape_nas.errors import UserError
from ape_nas.reporting import TrialPruned

SAMPLERS: dict[str, str] = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "cmaes": "CmaEsSampler",
    "nsga2": "NSGAIISampler",
    "qmc": "QMCSampler",
    "gp": "GPSampler",
}
PRUNERS: dict[str, str] = {
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "hyperband": "HyperbandPruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "threshold": "ThresholdPruner",
    "wilcoxon": "WilcoxonPruner",
    "none": "NopPruner",
}
_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    optuna.logging.disable_propagation()
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.getLogger("optuna").setLevel(logging.ERROR)


def default_storage(workdir: Path) -> str:
    return f"sqlite:///{(Path(workdir) / 'optuna.db').resolve()}"


class _Handle:
    """Adapts an optuna.Trial to the backend-neutral TrialHandle."""

    def __init__(self, trial: optuna.Trial) -> None:
        self._trial = trial
        self.number = trial.number

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return self._trial.suggest_int(name, low, high, step=step, log=log)

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return self._trial.suggest_float(name, low, high, step=step, log=log)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._trial.suggest_categorical(name, choices)

    def report(self, value: float, step: int) -> bool:
        self._trial.report(value, step)
        return self._trial.should_prune()

    def set_attr(self, key: str, value: Any) -> None:
        self._trial.set_user_attr(key, value)


class OptunaBackend(Backend):
    name = "optuna"

    def __init__(self, experiment: ExperimentConfig, workdir: Path, storage: str | None = None) -> None:
        self.experiment = experiment
        self.workdir = Path(workdir)
        self._storage_url = storage or experiment.backend["storage"] or default_storage(self.workdir)
        self.study: optuna.Study | None = None
        quiet_optuna()

    @property
    def storage_url(self) -> str:
        return self._storage_url

    def _build(self, kind: str, table: dict[str, str], defaults: dict[str, Any]) -> Any:
        cfg = self.experiment.backend
        name, options = cfg[kind], dict(cfg[f"{kind}_options"])
        cls = getattr(optuna.samplers if kind == "sampler" else optuna.pruners, table[name])
        accepted = inspect.signature(cls).parameters
        for key in options:
            if key not in accepted or key == "self":
                raise unknown_key_error(
                    self.experiment.doc, ("backend", f"{kind}_options"), key, [p for p in accepted if p != "self"]
                )
        kwargs = {k: v for k, v in defaults.items() if k in accepted and k not in options}
        kwargs.update(options)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise self.experiment.doc.error(
                ("backend", f"{kind}_options"), f"{table[name]} rejected {kwargs}: {exc}"
            ) from None

    def sampler(self) -> optuna.samplers.BaseSampler:
        return self._build("sampler", SAMPLERS, {"seed": self.experiment.seed})

    def pruner(self) -> optuna.pruners.BasePruner:
        max_epochs = self.experiment.training["max_epochs"]
        defaults = {"percentile": 25.0, "min_resource": 1, "n_warmup_steps": 1, "n_startup_trials": 3}
        if self.experiment.backend["pruner"] == "hyperband":
            defaults["max_resource"] = max_epochs
        return self._build("pruner", PRUNERS, defaults)

    def validate(self) -> None:
        self.sampler()
        self.pruner()
        if "://" not in self._storage_url:
            raise UserError(
                f"storage {self._storage_url!r}: expected an SQLAlchemy URL such as "
                "sqlite:///path/optuna.db or postgresql://user@host/db"
            )

    def _storage(self) -> optuna.storages.RDBStorage:
        kwargs: dict[str, Any] = {}
        if self._storage_url.startswith("sqlite"):
            kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
        try:
            return optuna.storages.RDBStorage(self._storage_url, **kwargs)
        except Exception as exc:
            raise UserError(f"storage {self._storage_url}: cannot open ({type(exc).__name__}: {exc})") from None

    def open(self, create: bool = True) -> None:
        name = self.experiment.name
        if not create:
            if self._storage_url.startswith("sqlite:///") and not Path(self._storage_url[10:]).exists():
                raise UserError(f"no study {name!r}: {self._storage_url} does not exist; run `ape-nas sweep` first")
            try:
                self.study = optuna.load_study(study_name=name, storage=self._storage())
            except KeyError:
                raise UserError(f"no study {name!r} in {self._storage_url}; run `ape-nas sweep` first") from None
            return
        if self._storage_url.startswith("sqlite:///"):
            Path(self._storage_url[10:]).parent.mkdir(parents=True, exist_ok=True)
        self.study = optuna.create_study(
            study_name=name,
            storage=self._storage(),
            sampler=self.sampler(),
            pruner=self.pruner(),
            direction=self.experiment.direction,
            load_if_exists=True,
        )
        have = self.study.direction.name.lower()
        if have != self.experiment.direction:
            raise UserError(
                f"study {name!r} in {self._storage_url} was created to {have}, but the experiment "
                f"asks to {self.experiment.direction}; use another name or storage"
            )

    def run(
        self,
        fn: TrialFunction,
        n_trials: int,
        timeout_s: float | None,
        on_trial_end: Callable[[TrialRecord], None] | None = None,
        on_trial_start: Callable[[int, str], None] | None = None,
    ) -> None:
        assert self.study is not None

        def objective(trial: optuna.Trial) -> float:
            try:
                return fn(_Handle(trial), on_start=on_trial_start)
            except TrialPruned:
                raise optuna.TrialPruned() from None
            except Exception as exc:
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:1000])
                raise

        callbacks = [lambda study, ft: on_trial_end(self._record(ft))] if on_trial_end else []
        self.study.optimize(
            objective,
            n_trials=n_trials,
            timeout=timeout_s,
            catch=(Exception,),
            callbacks=callbacks,
            gc_after_trial=False,
            show_progress_bar=False,
        )

    @staticmethod
    def _record(ft: optuna.trial.FrozenTrial) -> TrialRecord:
        duration = ft.duration.total_seconds() if ft.duration is not None else None
        if duration is None and ft.datetime_start is not None and ft.state.name == "RUNNING":
            duration = time.time() - ft.datetime_start.timestamp()
        return TrialRecord(
            number=ft.number,
            state=_STATES.get(ft.state.name, ft.state.name.lower()),
            value=ft.value,
            duration_s=duration,
            params=dict(ft.params),
            attrs=dict(ft.user_attrs),
        )

    def records(self) -> list[TrialRecord]:
        assert self.study is not None
        return [self._record(ft) for ft in self.study.get_trials(deepcopy=False)]

    def attrs(self) -> dict[str, Any]:
        assert self.study is not None
        return dict(self.study.user_attrs)

    def set_attrs(self, values: dict[str, Any]) -> None:
        assert self.study is not None
        for key, value in values.items():
            self.study.set_user_attr(key, value)

    def figures(self) -> dict[str, Any]:
        assert self.study is not None
        import matplotlib

        matplotlib.use("Agg")
        from optuna.visualization import matplotlib as vm

        complete = [t for t in self.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        plots = {
            "optimization_history.png": vm.plot_optimization_history,
            "parallel_coordinate.png": vm.plot_parallel_coordinate,
        }
        if len(complete) >= 2:
            plots["param_importances.png"] = vm.plot_param_importances
        out = {}
        for name, fn in plots.items():
            try:
                with warnings.catch_warnings():  # "few trials per regime", "no artists for legend"
                    warnings.simplefilter("ignore")
                    ax = fn(self.study)
            except (ValueError, RuntimeError, ZeroDivisionError):  # too few distinct trials for this plot
                continue
            ax = ax[0] if hasattr(ax, "__len__") and not hasattr(ax, "figure") else ax
            fig = ax.figure if hasattr(ax, "figure") else ax
            fig.set_size_inches(9, 5)
            fig.tight_layout()
            out[name] = fig
        return out
