"""Stratified k-fold assignment, made once per competition and stored.

Every model of a competition trains on the same folds, so that their out-of-fold predictions
line up row for row and a blender fitted on them never sees a row scored by a model that
trained on it. The folds live in the store as a plain CSV (id, fold) and are identified by a
hash of their content; each model records that hash, and blending mixed folds is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import fileio
from .errors import DataError, StoreError


@dataclass(frozen=True)
class Folds:
    ids: np.ndarray  # str, in the competition's training order
    labels: np.ndarray  # str, each row's label as the competition spells it (so blending needs only the store)
    fold: np.ndarray  # int, the fold each row is held out in
    path: Path

    @property
    def n_folds(self) -> int:
        return int(self.fold.max()) + 1

    @property
    def hash(self) -> str:
        return fileio.array_hash(self.ids, self.labels, self.fold)

    def split(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row indices (train, held out) of fold k."""
        return np.flatnonzero(self.fold != k), np.flatnonzero(self.fold == k)


def make_folds(labels: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(labels)
    if counts[counts > 0].min() < n_folds:
        raise DataError(f"cv.folds: {n_folds} folds need at least {n_folds} images of every class; "
                        f"the rarest class has {counts[counts > 0].min()}")
    fold = np.empty(len(labels), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        fold[held_out] = k
    return fold


def folds_path(competition_dir: Path, n_folds: int, seed: int) -> Path:
    return competition_dir / "folds" / f"k{n_folds}-seed{seed}.csv"


def load_or_make_folds(competition_dir: Path, ids: np.ndarray, labels: np.ndarray, classes: list[str],
                       n_folds: int, seed: int) -> Folds:
    """The stored folds for (n_folds, seed), made and written on first use.

    `labels` are class indices into `classes`; the file keeps the label text."""
    path = folds_path(competition_dir, n_folds, seed)
    ids, label_text = fileio.text_array(ids), fileio.text_array(np.asarray(classes, dtype=str)[labels])
    if path.exists():
        folds = read_folds(path)
        if (len(folds.ids) != len(ids) or not np.array_equal(folds.ids, ids)
                or not np.array_equal(folds.labels, label_text)):
            raise StoreError(f"{path}: these folds were made for other training ids the competition has now "
                             f"({len(folds.ids)} rows stored, {len(ids)} now) or other labels; the data changed: use a new store "
                             f"or delete the folds file and retrain every model")
        return folds
    fold = make_folds(labels, n_folds, seed)
    fileio.write_csv(path, pd.DataFrame({"id": ids, "label": label_text, "fold": fold}))
    return Folds(ids=ids, labels=label_text, fold=fold, path=path)


def read_folds(path: Path) -> Folds:
    if not path.is_file():
        raise StoreError(f"{path}: missing; the models trained on these folds cannot be blended "
                         f"(restore the file, or retrain them with --force to make new folds)")
    try:
        frame = pd.read_csv(path, dtype={"id": str, "label": str}, keep_default_na=False)
        fold = frame["fold"].to_numpy(dtype=np.int64)
        ids, labels = fileio.text_array(frame["id"]), fileio.text_array(frame["label"])
    except Exception as exc:  # any damage to the file reads as the same problem
        raise StoreError(f"{path}: damaged folds file ({type(exc).__name__}: {exc}); delete it and retrain") from None
    if len(fold) == 0 or fold.min() < 0:
        raise StoreError(f"{path}: damaged folds file (no rows or a negative fold); delete it and retrain")
    return Folds(ids=ids, labels=labels, fold=fold, path=path)
