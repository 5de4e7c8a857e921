"""Hill climbing with negative weights, as Kaggle competitors blend.

Start from the best member alone (weight 1), then at each step try adding and subtracting `step`
of every member's probabilities to the blend, keep the move that improves the OOF metric most,
and stop when no move improves it by more than `tolerance` (or after `max_iter` moves). A move is

    w <- (w + s * e_m) / (1 + s),   s = +step or -step,

so the weights always sum to one and the blend stays on the probabilities' scale. Subtracting a
member is what Caruana's selection cannot do: when one member is another's predictions mixed
with a bias that a third member carries, `B - c * C` removes the bias.

Why blend the probabilities linearly and clip, rather than in log space: with non-negative weights
the blend is then exactly the weighted mean that soft, optimized and caruana produce, so hill
climbing is comparable with them weight for weight, and a negative weight means what competitors
mean by it ("take away some of C"). A negative weight can push a class below zero, which no
probability may be: such entries are clipped to `eps` and each row renormalised, as Kaggle's log
loss itself does to a submission. The climb scores the clipped blend, so a move that overshoots on
the OOF rows is paid for there; `eps` (1e-5, above the metric's 1e-15) bounds what one overshooting
test row can cost: -log(1e-5) = 11.5 instead of 34.5.
"""

from __future__ import annotations

import numpy as np

from ..errors import BlendError
from .base import WeightedMean
from .metrics import METRICS, accuracy_of, check_metric, log_loss_of, macro_f1_of
from .registry import register_blender


@register_blender("hill")
class HillClimbing(WeightedMean):
    """Signed weights summing to one, found by greedy steps of +/- `step` from the best member."""

    learns = True

    def __init__(self, step: float = 0.05, tolerance: float = 1e-6, max_iter: int = 200, metric: str = "log_loss",
                 allow_negative: bool = True, eps: float = 1e-5):
        self.step = step
        self.tolerance = tolerance
        self.max_iter = max_iter
        self.metric = metric
        self.allow_negative = allow_negative
        self.eps = eps

    def fit(self, P, y):
        super().fit(P, y)
        self._check_params()
        P = P.astype(np.float64)
        alone = [self._keys(p, y) for p in P]  # (metric, log loss) of each member alone
        self.start_ = self._best(alone)
        w = np.zeros(len(P))
        w[self.start_] = 1.0
        blend, score = P[self.start_].copy(), alone[self.start_]
        self.path_ = [score[0]]
        self.stopped_ = "max_iter"
        for _ in range(self.max_iter):
            # the move's normalisation (1 + s > 0) keeps every other weight's sign, so only member m's
            # can turn negative: w[m] + s < 0
            moves = [(m, s) for m in range(len(P)) for s in (self.step, -self.step)
                     if self.allow_negative or w[m] + s >= -1e-12]
            # scored one at a time, keeping only the best: 2 x members candidate blends held at once
            # would be 400 MB for 50 members x 50,000 rows x 10 classes
            keys = [self._keys((blend + s * P[m]) / (1 + s), y) for m, s in moves]
            best = self._best(keys)
            gain = keys[best][0] - score[0] if METRICS[self.metric] else score[0] - keys[best][0]
            if not gain > self.tolerance:
                self.stopped_ = "no move improved by more than the tolerance"
                break
            m, s = moves[best]
            w[m] += s
            w /= 1 + s
            blend, score = (blend + s * P[m]) / (1 + s), keys[best]
            self.path_.append(score[0])
        self.weights_ = w
        self.moves_ = len(self.path_) - 1
        return self

    def predict_proba(self, P):
        return self._clip(super().predict_proba(P))

    def _clip(self, blend: np.ndarray) -> np.ndarray:
        """The blend as probabilities: entries a negative weight pushed below `eps` raised to it, rows
        renormalised (see the module's docstring for why)."""
        p = np.clip(blend, self.eps, None)
        return p / p.sum(1, keepdims=True)

    def _keys(self, blend: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(metric, log loss) of a blend (rows x classes) after clipping."""
        p = self._clip(blend)
        loss = float(log_loss_of(p[np.arange(len(y)), y]))
        if self.metric == "log_loss":
            return loss, loss
        pred = p.argmax(1)
        primary = accuracy_of(y, pred) if self.metric == "accuracy" else macro_f1_of(y, pred, p.shape[1])[0]
        return float(primary), loss

    def _best(self, keys: list[tuple[float, float]]) -> int:
        """The index of the best (metric, then log loss; the first on a tie)."""
        sign = -1 if METRICS[self.metric] else 1
        return min(range(len(keys)), key=lambda i: (sign * keys[i][0], keys[i][1], i))

    def _check_params(self):
        check_metric(self.metric, "hill.metric")
        if not 0 < self.step < 1:  # a step of 1 or more would divide by zero (or flip signs) on subtracting
            raise BlendError(f"hill.step: expected a number in (0, 1), got {self.step}")
        if not self.tolerance >= 0:
            raise BlendError(f"hill.tolerance: expected a number >= 0, got {self.tolerance}")
        if self.max_iter < 0:
            raise BlendError(f"hill.max_iter: expected an integer >= 0, got {self.max_iter}")
        if not 0 < self.eps < 1e-2:
            raise BlendError(f"hill.eps: expected a small positive number below 0.01, got {self.eps}")

    def describe(self):
        return {"weights": self.weights_.round(6).tolist(), "metric": self.metric, "moves": self.moves_,
                "fitted_score": round(float(self.path_[-1]), 6), "stopped": self.stopped_}
