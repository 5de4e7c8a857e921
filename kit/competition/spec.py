"""What a competition is on disk: its layout, its files and its column names.

A recipe names a competition in one of three ways:

    competition: digits                         # a built-in one (written under data/ on first use)
    competition: recipes/cifar10/competition.yaml   # a shared competition file
    competition: {name: ..., layout: ..., root: ...}  # inline

Paths are relative to the folder kit runs in (the project's root), as in a Kaggle notebook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ..schema import Strict


class CompetitionSpec(Strict):
    name: str
    root: Path
    layout: Literal["pixel_csv"]
    train: str = "train.csv"
    test: str = "test.csv"
    sample_submission: str = "sample_submission.csv"
    # the test labels, for scoring a submission locally (`kit score`); Kaggle keeps these hidden
    solution: str | None = None
    id_column: str = "id"
    label_column: str = "label"

    def path(self, name: str) -> Path:
        return self.root / name
