import numpy as np
import pytest

from kit.errors import DataError, StoreError
from kit.folds import load_or_make_folds, make_folds, read_folds

LABELS = np.repeat(np.arange(4), 25)
IDS = np.array([f"img{i}" for i in range(100)])
CLASSES = ["a", "b", "c", "d"]


def test_folds_are_stratified_and_stable():
    fold = make_folds(LABELS, 5, seed=3)
    assert np.array_equal(fold, make_folds(LABELS, 5, seed=3))
    assert not np.array_equal(fold, make_folds(LABELS, 5, seed=4))
    for k in range(5):
        assert np.array_equal(np.bincount(LABELS[fold == k]), [5, 5, 5, 5])


def test_folds_are_made_once_and_reread(tmp_path):
    first = load_or_make_folds(tmp_path, IDS, LABELS, CLASSES, 5, 0)
    assert first.path.name == "k5-seed0.csv"
    again = load_or_make_folds(tmp_path, IDS, LABELS, CLASSES, 5, 0)
    assert again.hash == first.hash and np.array_equal(again.fold, first.fold)
    assert list(read_folds(first.path).labels[:3]) == ["a", "a", "a"]
    train, held = first.split(2)
    assert len(held) == 20 and len(train) == 80 and not set(train) & set(held)


def test_changed_ids_are_refused(tmp_path):
    load_or_make_folds(tmp_path, IDS, LABELS, CLASSES, 5, 0)
    with pytest.raises(StoreError, match="these folds were made for other training ids"):
        load_or_make_folds(tmp_path, IDS[:-1], LABELS[:-1], CLASSES, 5, 0)


def test_too_many_folds_for_a_rare_class():
    with pytest.raises(DataError, match="cv.folds: 5 folds need at least 5 images of every class; the rarest class has 2"):
        make_folds(np.array([0] * 10 + [1] * 2), 5, 0)
