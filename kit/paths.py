"""Where kit keeps things, relative to the folder it runs in (a competition project's root).

    data/          competitions' files (the built-in ones are written here on first use)
    store/         the prediction store: folds, and one folder per trained model
    submissions/   submission CSVs and their reports

Each can be moved with an environment variable (KIT_DATA, KIT_STORE, KIT_SUBMISSIONS) or, for
the store and submissions, a command-line option.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    return Path(os.environ.get("KIT_DATA", "data"))


def store_dir() -> Path:
    return Path(os.environ.get("KIT_STORE", "store"))


def submissions_dir() -> Path:
    return Path(os.environ.get("KIT_SUBMISSIONS", "submissions"))
