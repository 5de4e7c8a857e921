"""The metrics a blend is chosen by, fast enough to call inside a greedy search.

`report.classification_metrics` writes the full per-class report once per blend; these score a
whole batch of candidate blends at a time (Caruana's step tries every member), so they work on
arrays of predictions and never build a report.
"""

from __future__ import annotations

import numpy as np

from ..errors import BlendError, did_you_mean
from ..metrics import EPS, log_loss_of  # noqa: F401  (the blenders score with the one log loss)
from ..metrics import HEADLINE as METRICS  # name -> True when higher is better


def check_metric(metric: str, field: str = "--metric") -> str:
    if metric not in METRICS:
        raise BlendError(f"{field}: '{metric}' is not one of {', '.join(METRICS)}{did_you_mean(metric, METRICS)}")
    return metric


def accuracy_of(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """pred: (..., rows) labels -> (...) accuracies."""
    return (pred == y).mean(-1)


def macro_f1_of(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """pred: (candidates, rows) labels -> (candidates,) macro F1 over every class, as
    sklearn's f1_score(average='macro', labels=range(n_classes), zero_division=0)."""
    pred = np.atleast_2d(pred)
    n = len(pred)
    cells = np.arange(n)[:, None] * n_classes * n_classes + y[None] * n_classes + pred
    confusion = np.bincount(cells.ravel(), minlength=n * n_classes * n_classes).reshape(n, n_classes, n_classes)
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    denom = confusion.sum(1) + confusion.sum(2)  # 2TP + FP + FN
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0).mean(1)
