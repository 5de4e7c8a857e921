"""Member weights fitted to the OOF labels: the weighted soft vote with the lowest log loss."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from .base import WeightedMean
from .metrics import EPS, log_loss_of
from .registry import register_blender


@register_blender("optimized")
class OptimizedWeights(WeightedMean):
    """Non-negative weights summing to one that minimise the soft vote's log loss on the OOF rows.

    The log loss of a weighted mean depends only on each member's probability of the true class,
    q[m, row], and is convex in the weights: -mean(log(w @ q)). So the search runs on a
    (members x rows) array with its exact gradient (SLSQP on the simplex), in milliseconds even
    for 50,000 rows.
    """

    learns = True

    def __init__(self, max_iter: int = 200, tol: float = 1e-9):
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, P, y):
        super().fit(P, y)
        q = P[:, np.arange(P.shape[1]), y].astype(float)  # (members, rows)

        def loss(w):
            blended = np.clip(w @ q, EPS, None)
            return -np.log(blended).mean(), -(q / blended).mean(1)

        n = len(P)
        result = minimize(loss, np.full(n, 1.0 / n), jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * n,
                          constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(n)}],
                          options={"maxiter": self.max_iter, "ftol": self.tol})
        w = np.clip(result.x, 0.0, None)
        self.weights_ = w / w.sum()
        self.converged_ = bool(result.success)
        self.oof_log_loss_ = float(log_loss_of(self.weights_ @ q))
        return self

    def describe(self):
        return {"weights": self.weights_.round(6).tolist(), "converged": self.converged_,
                "fitted_log_loss": round(self.oof_log_loss_, 6)}
