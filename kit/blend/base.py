"""The contract every blender keeps, after scikit-learn's estimators.

    P: stacked member probabilities, shape (members, rows, classes)
    y: class indices, shape (rows,)

    blender = SoftVote().fit(P_oof, y)     # __init__ stores parameters; fit returns self
    blender.predict_proba(P_test)          # (rows, classes), rows sum to 1
    blender.weights_                       # fitted attributes end in '_'
    blender.describe()                     # {"weights": [one per member], ...} for the report

Inheriting BaseEstimator gives get_params/set_params, so sklearn.base.clone works for the
nested cross-validation that scores every blender honestly.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from ..errors import BlendError


class Blender(BaseEstimator):
    #: True when fit() learns from the labels (weights, a stacker): its OOF score needs nested CV
    learns = False
    #: parameters without a usable default (the weighted vote's weights): `--method all` skips the
    #: blender when they are not given
    required: tuple[str, ...] = ()

    def fit(self, P: np.ndarray, y: np.ndarray) -> "Blender":
        check_stack(P, y)
        self.n_members_, _, self.n_classes_ = P.shape
        return self

    def predict_proba(self, P: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, P: np.ndarray) -> np.ndarray:
        return self.predict_proba(P).argmax(1)

    def describe(self) -> dict:
        """What was fitted, for the report. A list with one value per member (weights, selection
        counts) is shown against the members' names."""
        return {}

    def _check_fitted(self, P: np.ndarray) -> None:
        if not hasattr(self, "n_members_"):
            raise BlendError(f"this {type(self).__name__} is not fitted yet; call fit(P, y) first")
        check_stack(P)
        if P.shape[0] != self.n_members_ or P.shape[2] != self.n_classes_:
            raise BlendError(f"{type(self).__name__} was fitted on {self.n_members_} members x {self.n_classes_} "
                             f"classes, got {P.shape[0]} x {P.shape[2]}")


class WeightedMean(Blender):
    """A blender whose prediction is the weighted mean of the members' probabilities: fit sets
    weights_ (given, as in the votes, or learned, as in optimized and caruana), one per member,
    summing to one."""

    def predict_proba(self, P: np.ndarray) -> np.ndarray:
        self._check_fitted(P)
        return np.tensordot(self.weights_, P, axes=1)

    def describe(self) -> dict:
        return {"weights": self.weights_.round(6).tolist()}


def check_stack(P: np.ndarray, y: np.ndarray | None = None) -> None:
    if not isinstance(P, np.ndarray) or P.ndim != 3:
        raise BlendError(f"expected member probabilities of shape (members, rows, classes), "
                         f"got {getattr(P, 'shape', type(P).__name__)}")
    if y is not None and len(y) != P.shape[1]:
        raise BlendError(f"P has {P.shape[1]} rows but y has {len(y)}")


def normalize_rows(p: np.ndarray) -> np.ndarray:
    return p / np.clip(p.sum(1, keepdims=True), 1e-12, None)


def check_weights(weights, n_members: int, field: str = "weights") -> np.ndarray:
    """Given member weights -> non-negative, summing to one; equal weights when None."""
    if weights is None:
        return np.full(n_members, 1.0 / n_members)
    try:
        w = np.asarray(weights, dtype=float)
    except (TypeError, ValueError):
        w = None
    if w is None or w.shape != (n_members,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise BlendError(f"{field}: expected {n_members} non-negative numbers (one per member), not all zero; "
                         f"got {weights}")
    return w / w.sum()
