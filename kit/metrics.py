"""The headline metrics (what a model's CV, a blend's table and `--metric` are given in) and the one log loss.

Plain NumPy: training, the report and blending all score with these, so that a model's log loss
in model.json, its row in a blend's table and the loss greedy selection minimises are one number.
"""

from __future__ import annotations

import numpy as np

#: name -> True when higher is better, in the order tables list them
HEADLINE = {"accuracy": True, "log_loss": False, "macro_f1": True}
EPS = 1e-15  # the clip Kaggle's log loss uses


def log_loss(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Multi-class log loss in scikit-learn's argument order, rows clipped and renormalised as Kaggle's metric does."""
    p = np.clip(probs, EPS, 1.0)
    p = p / p.sum(1, keepdims=True)
    return float(log_loss_of(p[np.arange(len(y_true)), y_true]))


def log_loss_of(q: np.ndarray) -> np.ndarray:
    """q: (..., rows) probability each row gave its true class -> (...) log losses.

    The same loss on what it depends on alone, for whole batches of candidate blends at a time
    (Caruana's step, the optimised weights), which never hold every class's probabilities."""
    return -np.log(np.clip(q, EPS, 1.0)).mean(-1)
