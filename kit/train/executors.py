"""Where kit train's jobs run: one (recipe, seed, fold) each (kit/train/run.py: plan -> jobs -> finish).

    serial    in this process, one after the other (the default)

An executor is told the jobs and a `done(job, record)` callback, which it calls in this process as each
job's fold lands in the store (the driver reports it, finishes a model whose last job it was, and tells
kit tune's pruner); an exception from `done` stops it: jobs not started are dropped, running ones end first.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Callable

from ..errors import KitError
from ..progress import SILENT, Reporter
from .run import TrainJob, run_job

Done = Callable[[TrainJob, dict], None]

EXECUTORS: dict[str, type] = {}


def register_executor(cls):
    EXECUTORS[cls.name] = cls
    return cls


def create_executor(name: str, workers: int | None = None, address: str | None = None):
    """The executor called `name`; an unknown name, or an option it does not take, is one clear error."""
    if name not in EXECUTORS:
        from ..errors import did_you_mean

        raise KitError(f"--executor: '{name}' is not one of {', '.join(EXECUTORS)}{did_you_mean(name, list(EXECUTORS))}")
    if workers is not None and workers < 1:
        raise KitError(f"--workers: expected at least 1, got {workers}")
    if address is not None and name != "ray":
        raise KitError(f"--address: only --executor ray joins a cluster; '{name}' runs on this machine")
    if workers not in (None, 1):
        raise KitError("--workers: --executor serial runs one job at a time")
    return SerialExecutor()


@register_executor
class SerialExecutor:
    """Every job in this process, in order, with the plan's data already in memory: kit train as it always was."""

    name = "serial"

    def run(self, jobs: list[TrainJob], done: Done, reporter: Reporter = SILENT) -> None:
        epochs = sum(job.recipe.train.epochs for job in jobs)
        names = sorted({job.recipe.name for job in jobs}, key=[j.recipe.name for j in jobs].index)
        reporter.start("train", ", ".join(names), total=epochs)
        try:
            for job in jobs:
                n_folds = job.recipe.cv.folds
                reporter.advance("train", 0, description=f"{job.recipe.name} seed {job.seed} fold {job.fold} of {n_folds}")
                done(job, run_job(job, reporter))
        finally:
            reporter.finish("train")

