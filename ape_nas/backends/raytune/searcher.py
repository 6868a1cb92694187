"""A Ray Tune ``Searcher`` on the study's public ask interface. Imports Ray: only for a Ray sweep."""

from __future__ import annotations

import pickle
import time
from typing import Any

import optuna
from ray.tune.search import Searcher

from ape_nas.backends.raytune.keys import NUMBER
from ape_nas.backends.raytune.live import LIVE
from ape_nas.backends.raytune.study import load


class StudySearcher(Searcher):
    """Each Ray trial is one trial of the study: ``study.ask()``, its point sampled by the experiment's Space
    exactly as the Optuna backend samples it (``Space.suggest`` on the Optuna trial), and its study trial
    number in the config. How a trial ended is told to the study by the driver's ``Recorder``, which knows why.

    The sampler travels with the searcher (Ray saves it with the experiment), so a restored experiment does not
    draw the points of its first trials again."""

    def __init__(
        self,
        space_path: str,
        storage_url: str,
        study_name: str,
        sampler: optuna.samplers.BaseSampler,
        metric: str,
        mode: str,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.space_path, self.storage_url, self.study_name = space_path, storage_url, study_name
        self.sampler = sampler
        self._study: optuna.Study | None = None
        self._space: Any = None

    def __getstate__(self) -> dict[str, Any]:  # the study and the space are opened again where it is restored
        return {**self.__dict__, "_study": None, "_space": None}

    def _opened(self) -> tuple[optuna.Study, Any]:
        if self._study is None:
            from ape_nas.space import load_space

            self._study = load(self.storage_url, self.study_name, self.sampler)
            self._space = load_space(self.space_path)
        return self._study, self._space

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        deadline = LIVE.get("deadline")
        if deadline is not None and time.time() >= deadline:
            return Searcher.FINISHED  # timeout: start no more trials, let running ones finish
        study, space = self._opened()
        trial = study.ask()
        return {**space.suggest(trial), NUMBER: trial.number}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass  # the Recorder tells the study (complete, pruned by the scheduler, or failed)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"sampler": self.sampler}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.sampler = pickle.load(f)["sampler"]
        self._study = None
