"""Ensemble selection (Caruana, Niculescu-Mizil, Crew and Ksikes, ICML 2004).

Greedy forward selection with replacement from the library of members: start from the best
`init_size` members (sorted initialisation), then at each step add the member, possibly one
already in, whose addition gives the best blend on the OOF rows. A member chosen k times gets
weight k / total. The ensemble kept is the best one met along the way (the paper's guard against
overfitting the hill-climbing set). With `n_bags`, the selection runs on random halves of the
library and the bags' weights are averaged, so no single strong member crowds out the rest.

Each step scores every candidate at once from a running sum of the chosen members'
probabilities, so a step costs one pass over (members x rows x classes), not one per member.
"""

from __future__ import annotations

import numpy as np

from ..errors import BlendError
from .base import WeightedMean
from .metrics import METRICS, accuracy_of, check_metric, log_loss_of, macro_f1_of
from .registry import register_blender


@register_blender("caruana")
class EnsembleSelection(WeightedMean):
    """Weights from greedy selection with replacement; the prediction is the mean of the members so weighted."""

    learns = True

    def __init__(self, iterations: int = 100, metric: str = "log_loss", init_size: int = 1, n_bags: int = 0,
                 bag_fraction: float = 0.5, random_state: int = 0):
        self.iterations = iterations
        self.metric = metric
        self.init_size = init_size
        self.n_bags = n_bags
        self.bag_fraction = bag_fraction
        self.random_state = random_state

    def fit(self, P, y):
        super().fit(P, y)
        self._check_params()
        n = len(P)
        if not self.n_bags:
            counts, self.path_ = greedy_selection(P, y, self.metric, self.iterations, self.init_size)
            self.counts_ = counts
            self.weights_ = counts / counts.sum()
            return self
        rng = np.random.default_rng(self.random_state)
        size = max(1, round(self.bag_fraction * n))
        self.weights_ = np.zeros(n)
        self.counts_ = np.zeros(n, dtype=int)
        for _ in range(self.n_bags):
            bag = np.sort(rng.choice(n, size=size, replace=False))
            counts, _ = greedy_selection(P[bag], y, self.metric, self.iterations, min(self.init_size, size))
            self.counts_[bag] += counts
            self.weights_[bag] += counts / counts.sum() / self.n_bags
        self.path_ = []
        return self

    def _check_params(self):
        check_metric(self.metric, "caruana.metric")
        for field, value, low in (("iterations", self.iterations, 0), ("init_size", self.init_size, 1),
                                  ("n_bags", self.n_bags, 0)):
            if value < low:
                raise BlendError(f"caruana.{field}: expected an integer >= {low}, got {value}")
        if not 0 < self.bag_fraction <= 1:
            raise BlendError(f"caruana.bag_fraction: expected a fraction in (0, 1], got {self.bag_fraction}")

    def describe(self):
        out = {"weights": self.weights_.round(6).tolist(), "times_selected": self.counts_.tolist(),
               "metric": self.metric}
        if self.path_:
            best = int(np.argmax(self.path_) if METRICS[self.metric] else np.argmin(self.path_))
            out.update(ensemble_size=int(self.counts_.sum()), best_score=round(float(self.path_[best]), 6))
        return out


def greedy_selection(P: np.ndarray, y: np.ndarray, metric: str, iterations: int,
                     init_size: int) -> tuple[np.ndarray, list[float]]:
    """Times each member is selected in the best ensemble met, and the score after each addition.

    Candidates that tie on `metric` (common for accuracy) are ordered by log loss, then by index."""
    n_members, n_rows, n_classes = P.shape
    rows = np.arange(n_rows)
    q = P[:, rows, y].astype(np.float64)  # each member's probability of the true class
    higher = METRICS[metric]
    # classes x rows layout: the argmax over classes becomes a few passes over contiguous rows,
    # 4x faster than numpy's argmax over a short last axis
    by_class = np.ascontiguousarray(P.transpose(0, 2, 1)) if metric != "log_loss" else None
    total = np.zeros((n_classes, n_rows), dtype=P.dtype)  # the chosen members' summed probabilities
    total_q = np.zeros(n_rows)  # ... of the true class, in float64 for the log loss
    candidates = np.empty_like(by_class) if by_class is not None else None  # reused at every step

    def keys(summed: np.ndarray | None, summed_q: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(primary score, log loss) of ensembles of `size` members whose probabilities sum to `summed`
        (ensembles x classes x rows; unread, so may be None, for the log loss) and, of the true class,
        to `summed_q` (ensembles x rows)."""
        loss = log_loss_of(summed_q / size)
        if metric == "log_loss":
            return loss, loss
        pred = argmax_over_classes(summed)  # the scale does not change it
        primary = accuracy_of(y, pred) if metric == "accuracy" else macro_f1_of(y, pred, n_classes)
        return primary, loss

    def candidate_keys(size: int) -> tuple[np.ndarray, np.ndarray]:
        """(primary score, log loss) of adding each member to the current ensemble of `size`."""
        summed = np.add(by_class, total, out=candidates) if by_class is not None else None
        return keys(summed, total_q + q, size + 1)

    def order(primary: np.ndarray, loss: np.ndarray) -> np.ndarray:
        return np.lexsort((np.arange(len(primary)), loss, -primary if higher else primary))

    def add(m: int) -> None:
        chosen.append(m)
        total[:] += P[m].T
        total_q[:] += q[m]

    chosen: list[int] = []
    for m in order(*candidate_keys(0))[:init_size]:  # sorted initialisation: the best members alone
        add(int(m))
    n_init = len(chosen)
    path = [float(keys(total[None], total_q[None], n_init)[0][0])]  # the initial ensemble, as a batch of one
    for _ in range(iterations):
        primary, loss = candidate_keys(len(chosen))
        best = int(order(primary, loss)[0])
        add(best)
        path.append(float(primary[best]))
    scores = np.asarray(path) if higher else -np.asarray(path)
    # the first ensemble within rounding of the best: adding a member that changes nothing is no gain
    keep = n_init + int(np.flatnonzero(scores >= scores.max() - 1e-12)[0])
    return np.bincount(chosen[:keep], minlength=n_members), path


def argmax_over_classes(a: np.ndarray) -> np.ndarray:
    """np.argmax over axis -2 of (..., classes, rows), the lowest class on ties, in contiguous passes:
    the max over classes, then the lowest class reaching it (coded in reverse so that max finds it)."""
    n_classes = a.shape[-2]
    reverse = np.arange(n_classes - 1, -1, -1, dtype=np.min_scalar_type(n_classes))[:, None]
    at_max = a == a.max(-2, keepdims=True)
    return (n_classes - 1) - np.multiply(at_max, reverse).max(-2).astype(np.intp)
