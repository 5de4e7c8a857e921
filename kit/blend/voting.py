"""Voting: the blends that need no labels."""

from __future__ import annotations

import numpy as np

from ..errors import BlendError
from .base import Blender, WeightedMean, check_weights, normalize_rows
from .registry import register_blender


@register_blender("soft")
class SoftVote(WeightedMean):
    """Mean (or weighted mean) of the members' probabilities. Where classes tie exactly, predict()
    takes the lower class index (numpy's argmax), whatever the order of the members."""

    def __init__(self, weights: list[float] | None = None):
        self.weights = weights

    def fit(self, P, y):
        super().fit(P, y)
        self.weights_ = check_weights(self.weights, len(P), f"{self.method_name}.weights")
        return self


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


@register_blender("weighted")
class WeightedVote(SoftVote):
    """Soft vote with weights you give (`kit blend --weights vgg=0.7,resnet=0.3`), e.g. from a public
    notebook or the leaderboard; they are normalised to sum to one."""

    required = ("weights",)

    def fit(self, P, y):
        if self.weights is None:
            raise BlendError("weighted: needs weights, one per member; pass --weights 0.7,0.3 "
                             "or --weights NAME=0.7,NAME=0.3")
        return super().fit(P, y)
