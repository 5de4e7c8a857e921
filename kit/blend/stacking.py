"""Stacking: a second-level model trained on the members' out-of-fold probabilities."""

from __future__ import annotations

import numpy as np

from .base import Blender, normalize_rows
from .registry import register_blender


def stack_features(P: np.ndarray) -> np.ndarray:
    """(members, rows, classes) -> (rows, members * classes)."""
    return P.transpose(1, 0, 2).reshape(P.shape[1], -1)


@register_blender("lgbm")
class LGBMStacker(Blender):
    """A LightGBM classifier on the members' probabilities, kept small: the OOF set is the whole training set."""

    learns = True

    def __init__(self, n_estimators: int = 200, learning_rate: float = 0.05, num_leaves: int = 15,
                 min_child_samples: int = 10, subsample: float = 0.8, colsample_bytree: float = 0.8,
                 reg_lambda: float = 1.0, random_state: int = 0, n_jobs: int = 2):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, P, y):
        from lightgbm import LGBMClassifier

        super().fit(P, y)
        self.model_ = LGBMClassifier(
            objective="multiclass" if self.n_classes_ > 2 else "binary", n_estimators=self.n_estimators,
            learning_rate=self.learning_rate, num_leaves=self.num_leaves, min_child_samples=self.min_child_samples,
            subsample=self.subsample, subsample_freq=1, colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda, random_state=self.random_state, n_jobs=self.n_jobs, verbose=-1)
        self.model_.fit(stack_features(P), y)
        return self

    def predict_proba(self, P):
        self._check_fitted(P)
        # a class absent from the training rows gets probability 0, in its own column
        out = np.zeros((P.shape[1], self.n_classes_))
        out[:, self.model_.classes_] = self.model_.predict_proba(stack_features(P))
        return normalize_rows(out)

    def describe(self):
        gain = self.model_.booster_.feature_importance("gain").reshape(self.n_members_, self.n_classes_).sum(1)
        return {"member_gain_share": (gain / max(gain.sum(), 1e-12)).round(6).tolist()}
