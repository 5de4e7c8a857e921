"""Synthetic members in a real store, for the blending tests, demos and the benchmark.

`make_members` draws OOF and test probabilities of members that are right more or less often,
share part of their mistakes (as nets trained on the same images do), and are over- or
under-confident; `write_store` lays any such arrays out exactly as `kit train` does, so
`kit blend` reads them like trained models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import fileio
from ..folds import folds_path, read_folds
from ..metrics import HEADLINE
from ..report import classification_metrics
from ..store import Manifest, Store


def make_members(n_members: int = 10, n_rows: int = 50_000, n_test: int = 10_000, n_classes: int = 10,
                 n_folds: int = 5, seed: int = 0):
    """-> y (rows,), fold (rows,), P_oof (members, rows, classes), P_test (members, test rows, classes), float32.

    What members share is what makes blending hard: every row has a difficulty (a hard image is
    hard for every net) and a wrong class it looks like, both common to all members and scaled by
    each member's strength, so no mix of members cancels them. On top, each member has its own
    noise, its own bias towards some classes, and a temperature that makes it over- or under-confident."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_rows)
    fold = rng.permutation(np.arange(n_rows) % n_folds)
    y_test = rng.integers(0, n_classes, n_test)
    strength = np.linspace(1.6, 3.0, n_members)
    temperature = rng.choice([0.5, 1.0, 2.0], n_members)
    bias = rng.normal(0, 0.3, (n_members, n_classes))

    def probs(labels):
        rows = np.arange(len(labels))
        difficulty = rng.uniform(0.2, 1.8, len(labels))
        lookalike = (labels + rng.integers(1, n_classes, len(labels))) % n_classes
        pull = rng.uniform(0.0, 0.9, len(labels))
        out = np.empty((n_members, len(labels), n_classes), dtype=np.float32)
        for m in range(n_members):
            logits = rng.normal(0, 1, (len(labels), n_classes)) + bias[m]
            logits[rows, labels] += strength[m] * difficulty
            logits[rows, lookalike] += strength[m] * pull
            logits = logits / temperature[m]
            logits -= logits.max(1, keepdims=True)
            e = np.exp(logits)
            out[m] = e / e.sum(1, keepdims=True)
        return out

    return y, fold, probs(y), probs(y_test)


def write_store(root: str | Path, competition: str, y: np.ndarray, fold: np.ndarray,
                members: dict[str, list[tuple[np.ndarray, np.ndarray]]], classes: list[str] | None = None,
                test_ids: np.ndarray | None = None, epochs: int = 0) -> Store:
    """Write each member's per-seed (oof, test) probabilities into a store as `kit train` would.

    members: {name: [(oof (rows, classes), test (test rows, classes)) for each seed]}. Every member
    shares the folds and test ids, so they blend; a test may edit the manifests to make them not.
    epochs: also a made-up history.csv of that many epochs per fold (for the report's curves)."""
    store = Store(root)
    first_oof, first_test = next(iter(members.values()))[0]
    classes = classes or [str(c) for c in range(first_oof.shape[1])]
    ids = np.array([f"r{i}" for i in range(len(y))])
    test_ids = np.array([f"t{i}" for i in range(len(first_test))]) if test_ids is None else np.asarray(test_ids)
    cdir = store.competition_dir(competition)
    n_folds = int(fold.max()) + 1
    path = folds_path(cdir, n_folds, seed=0)
    fileio.write_csv(path, pd.DataFrame({"id": ids, "label": np.asarray(classes)[y], "fold": fold}))
    fileio.write_csv(store.sample_submission(competition), pd.DataFrame({"id": test_ids, "label": classes[0]}))
    folds = read_folds(path)
    for name, runs in members.items():
        for seed, (oof, test) in enumerate(runs):
            for k in range(n_folds):
                held = fold == k
                history = made_up_history(epochs, seed * 1000 + k + len(name)) if epochs else None
                record = {"seed": seed, "fold": k}
                if history:
                    best = min(history, key=lambda h: h["val_loss"])
                    record.update(best_epoch=best["epoch"], val_loss=best["val_loss"], val_acc=best["val_acc"],
                                  seconds=sum(h["seconds"] for h in history), history=history)
                store.write_fold(competition, name, seed, k, oof_ids=ids[held], oof=oof[held], test_ids=test_ids,
                                 test=test, record=record, history=history)
        cv = classification_metrics(y, np.mean([oof for oof, _ in runs], axis=0), classes)
        store.write_manifest(Manifest(
            name=name, competition=competition, arch="synthetic", status="complete",
            data_fingerprint=f"synthetic-{len(y)}", folds_file=str(path.relative_to(cdir)), folds_hash=folds.hash,
            n_folds=n_folds, seeds=list(range(len(runs))), classes=classes, test_ids_hash=fileio.array_hash(test_ids),
            cv={k: cv[k] for k in HEADLINE}))
    return store


def made_up_history(epochs: int, seed: int) -> list[dict]:
    """Per-epoch rows shaped like a real run's: losses falling, validation flattening and turning up."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, epochs + 1) / epochs
    train_loss = 2.0 * np.exp(-4 * t) + 0.1 + rng.normal(0, 0.01, epochs)
    val_loss = 2.0 * np.exp(-3.5 * t) + 0.3 + 0.4 * t ** 3 + rng.normal(0, 0.02, epochs)
    return [{"epoch": e + 1, "train_loss": float(train_loss[e]), "train_acc": float(1 - train_loss[e] / 2.2),
             "val_loss": float(val_loss[e]), "val_acc": float(1 - val_loss[e] / 2.4), "lr": 0.001,
             "seconds": float(rng.uniform(1, 2))} for e in range(epochs)]
