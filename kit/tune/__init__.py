"""`kit tune`: hyper-parameter search over any recipe field with Optuna, each trial a model of the store scored
by its k-fold CV (docs/tuning.md). space.py reads and checks a recipe's `tune:` section; run.py runs the study;
outputs.py writes what it leaves in the store."""

from .run import TrialJob, TrialOutcome, TuneSummary, parse_duration, run_trial, tune_recipe

__all__ = ["TrialJob", "TrialOutcome", "TuneSummary", "parse_duration", "run_trial", "tune_recipe"]
