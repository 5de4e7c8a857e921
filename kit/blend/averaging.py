"""Averages other than the arithmetic mean: they need no labels either."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from .base import Blender, normalize_rows
from .registry import register_blender
from .voting import SoftVote


@register_blender("geomean")
class GeometricMean(SoftVote):
    """(Weighted) geometric mean of the members' probabilities, renormalised per row: a class needs
    every member's support, so one confident dissenter pulls it down more than in the soft vote.
    Weights are checked and described as the soft vote's."""

    def __init__(self, weights: list[float] | None = None, eps: float = 1e-7):
        self.weights = weights
        self.eps = eps

    def predict_proba(self, P):
        self._check_fitted(P)
        log_p = np.tensordot(self.weights_, np.log(np.clip(P, self.eps, 1.0)), axes=1)
        # subtract the row max before exp so that tiny probabilities do not underflow to 0/0
        return normalize_rows(np.exp(log_p - log_p.max(1, keepdims=True)))


@register_blender("rank")
class RankAverage(Blender):
    """Mean of the members' ranks: each member's probabilities of a class are replaced by their rank
    among the rows (scaled to 0..1), so members on different scales (an over-confident net, a
    calibrated one) count alike. Ranks are taken within the rows predicted (the OOF set, or the
    test set); the rows' mean ranks, normalised to sum to one, are not calibrated probabilities,
    so expect a poor log loss."""

    def predict_proba(self, P):
        self._check_fitted(P)
        ranks = rankdata(P, axis=1) / P.shape[1]  # ties share their mean rank
        return normalize_rows(ranks.mean(0))
