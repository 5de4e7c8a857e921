"""Voting: the blends that need no labels."""

from __future__ import annotations

import numpy as np

from ..errors import BlendError
from .base import Blender, normalize_rows
from .registry import register_blender


@register_blender("soft")
class SoftVote(Blender):
    """Mean (or weighted mean) of the members' probabilities."""

    def __init__(self, weights: list[float] | None = None):
        self.weights = weights

    def fit(self, P, y):
        super().fit(P, y)
        w = np.ones(len(P)) if self.weights is None else np.asarray(self.weights, dtype=float)
        if w.shape != (len(P),) or (w < 0).any() or w.sum() <= 0:
            raise BlendError(f"weights: expected {len(P)} non-negative numbers, not all zero; got {self.weights}")
        self.weights_ = w / w.sum()
        return self

    def predict_proba(self, P):
        self._check_fitted(P)
        return np.tensordot(self.weights_, P, axes=1)

    def describe(self):
        return {"weights": self.weights_.round(6).tolist()}


@register_blender("hard")
class HardVote(Blender):
    """Majority vote of the members' top-1 labels; ties go to the class with the higher mean
    probability, then to the lower class index. Probabilities are the vote shares."""

    def predict_proba(self, P):
        self._check_fitted(P)
        votes = np.zeros(P.shape[1:], dtype=float)
        rows = np.arange(P.shape[1])
        for member in P:
            votes[rows, member.argmax(1)] += 1
        # the soft mean is below one vote, so it only orders tied classes
        tiebreak = 1e-6 * P.mean(0)
        return normalize_rows(votes + tiebreak)
