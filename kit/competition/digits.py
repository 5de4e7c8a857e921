"""The built-in competition `digits`: scikit-learn's bundled UCI handwritten digits, laid out
like Kaggle's "Digit Recognizer" (pixel CSVs), written on first use.

1,797 grayscale 8x8 images in 10 classes, split once 80/20 (stratified, fixed seed) into a
training set with labels and a test set without; the test labels go to `solution.csv` so that
`kit score` can play the leaderboard.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import fileio
from ..paths import data_dir
from .spec import PixelCsvSpec

NAME = "digits"
SPLIT_SEED = 2024


def digits_spec(root: Path | None = None) -> PixelCsvSpec:
    root = Path(root) if root is not None else data_dir() / NAME
    return PixelCsvSpec(name=NAME, root=root, solution="solution.csv")


def ensure_digits(spec: PixelCsvSpec) -> None:
    """Write the competition's files unless they are all there already."""
    files = [spec.train, spec.test, spec.sample_submission, spec.solution]
    if all(spec.path(f).exists() for f in files):
        return
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # the bundled values run 0..16; Kaggle's pixel CSVs hold 0..255
    pixels = np.clip(digits.data * 16, 0, 255).astype(np.uint8)
    ids = np.arange(1, len(pixels) + 1)
    train_idx, test_idx = train_test_split(np.arange(len(pixels)), test_size=0.2,
                                           stratify=digits.target, random_state=SPLIT_SEED)
    columns = [f"pixel{i}" for i in range(pixels.shape[1])]

    def frame(idx, with_label):
        df = pd.DataFrame(pixels[idx], columns=columns)
        if with_label:
            df.insert(0, "label", digits.target[idx])
        df.insert(0, "id", ids[idx])
        return df

    test_ids = ids[test_idx]
    fileio.write_csv(spec.path(spec.train), frame(train_idx, True))
    fileio.write_csv(spec.path(spec.test), frame(test_idx, False))
    fileio.write_csv(spec.path(spec.sample_submission), pd.DataFrame({"id": test_ids, "label": 0}))
    fileio.write_csv(spec.path(spec.solution), pd.DataFrame({"id": test_ids, "label": digits.target[test_idx]}))
