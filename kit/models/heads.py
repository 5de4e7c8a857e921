"""Heads trained on a frozen backbone's cached features (kit/features.py), by name, as the models are:

    train:
      finetune:
        mode: embeddings
        head: {name: mlp, params: {hidden: 1024, dropout: 0.3}}

  linear     one linear layer (a linear probe; trained by kit's loop with the recipe's optimiser)
  mlp        linear, ReLU, dropout, linear: a small non-linear head (kit's loop)
  logreg     scikit-learn's multinomial LogisticRegression on standardised features (lbfgs)
  lightgbm   LightGBM's gradient-boosted trees on the features

linear and mlp are torch modules and train in the one training loop (epochs, optimiser, schedule,
label smoothing, early stopping); logreg and lightgbm are estimators, fitted once per fold and
seed with their own parameters.
"""

from __future__ import annotations

import inspect
from typing import Callable

from ..errors import RecipeError, did_you_mean

HEADS: dict[str, Callable] = {}
ESTIMATOR_HEADS: set[str] = set()  # fitted by scikit-learn's contract (fit / predict_proba), not by kit's loop
BUILDER_ARGS = ("dim", "num_classes", "seed")


def register_head(name: str, estimator: bool = False):
    def decorate(builder):
        HEADS[name] = builder
        if estimator:
            ESTIMATOR_HEADS.add(name)
        return builder
    return decorate


def check_head(name: str, params: dict) -> None:
    if name not in HEADS:
        raise RecipeError(f"train.finetune.head.name: no head '{name}'{did_you_mean(name, HEADS)}; heads: "
                          f"{', '.join(HEADS)}")
    accepted = [p for p in inspect.signature(HEADS[name]).parameters if p not in BUILDER_ARGS]
    unknown = [p for p in params if p not in accepted]
    if unknown:
        raise RecipeError(f"train.finetune.head.params.{unknown[0]}: head '{name}' takes no such parameter"
                          f"{did_you_mean(unknown[0], accepted)}; it takes: {', '.join(accepted)}")


def build_head(name: str, dim: int, num_classes: int, seed: int, params: dict):
    """A torch module (linear, mlp) or an unfitted estimator (logreg, lightgbm) for `dim` features."""
    check_head(name, params)
    return HEADS[name](dim=dim, num_classes=num_classes, seed=seed, **params)


@register_head("linear")
def linear(dim: int, num_classes: int, seed: int, dropout: float = 0.0):
    from torch import nn

    layers = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(*layers, nn.Linear(dim, num_classes))


@register_head("mlp")
def mlp(dim: int, num_classes: int, seed: int, hidden: int = 1024, dropout: float = 0.3):
    from torch import nn

    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(hidden, num_classes))


@register_head("logreg", estimator=True)
def logreg(dim: int, num_classes: int, seed: int, C: float = 0.5, max_iter: int = 300):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))


@register_head("lightgbm", estimator=True)
def lightgbm(dim: int, num_classes: int, seed: int, n_estimators: int = 300, learning_rate: float = 0.05,
             num_leaves: int = 31, colsample_bytree: float = 0.3):
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=n_estimators, learning_rate=learning_rate, num_leaves=num_leaves,
                          colsample_bytree=colsample_bytree, random_state=seed, verbose=-1, n_jobs=os_threads())


def os_threads() -> int:
    import torch

    return torch.get_num_threads()
