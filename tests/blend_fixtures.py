"""Hand-made members for the blending tests: probabilities whose best blend is known, and small
synthetic stores laid out as `kit train` writes them (no training, so they take milliseconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kit.blend.synthetic import make_members, write_store


def one_hot(labels, n_classes, confidence=0.9):
    p = np.full((len(labels), n_classes), (1 - confidence) / (n_classes - 1))
    p[np.arange(len(labels)), labels] = confidence
    return p


def noisy(labels, n_classes, accuracy, rng, confidence=0.7):
    """A member right on about `accuracy` of the rows, otherwise confident in a random wrong class."""
    wrong = (labels + rng.integers(1, n_classes, len(labels))) % n_classes
    return one_hot(np.where(rng.random(len(labels)) < accuracy, labels, wrong), n_classes, confidence)


def store_of_accuracies(root: Path, accuracies: dict[str, float], n_rows=400, n_classes=4, seed=0, seeds=1):
    """A store whose members are right on about the given share of rows; each model has `seeds` runs."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_rows)
    fold = np.arange(n_rows) % 4
    y_test = rng.integers(0, n_classes, 50)
    members = {name: [(noisy(y, n_classes, acc, rng), noisy(y_test, n_classes, acc, rng)) for _ in range(seeds)]
               for name, acc in accuracies.items()}
    return write_store(root, "syn", y, fold, members), y, members


def synthetic_store(root: Path, n_members=3, n_rows=600, n_classes=5, seed=0):
    y, fold, P, T = make_members(n_members=n_members, n_rows=n_rows, n_test=80, n_classes=n_classes, n_folds=3,
                                 seed=seed)
    return write_store(root, "syn", y, fold, {f"m{i}": [(P[i], T[i])] for i in range(n_members)}), y, P
