"""Training: the per-fold loop, optimizers and schedules, and the k-fold run that fills the store."""

from .run import TrainSummary, train_recipe

__all__ = ["TrainSummary", "train_recipe"]
