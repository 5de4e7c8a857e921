"""The sample submission: where the test ids (and their order) come from for image-file layouts,
and what the submission must look like. A competition without one gets one written by kit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import fileio
from ..errors import DataError
from .files import ImagePattern, files_for_ids, folder_images, unlisted_images
from .spec import CompetitionSpec, ImageFilesSpec
from .tables import check_unique_ids, read_text_table


def read_sample(spec: CompetitionSpec) -> tuple[Path, pd.DataFrame] | None:
    if spec.sample_submission is None:
        return None
    path = spec.path(spec.sample_submission)
    frame = read_text_table(path, "sample_submission")
    if frame.shape[1] < 2:
        raise DataError(f"{path}: expected an id column and at least one answer column, found {list(frame.columns)}")
    if frame.empty:
        raise DataError(f"{path}: no rows; the sample submission must list every test image once")
    return path, frame


def sample_ids(path: Path, frame: pd.DataFrame, spec: CompetitionSpec) -> np.ndarray:
    """The test ids the sample submission lists, in its order (its id column, else its first)."""
    id_column = spec.id_column if spec.id_column in frame.columns else frame.columns[0]
    ids = frame[id_column].to_numpy(dtype=str)
    check_unique_ids(ids, path)
    return ids


def read_test_folder(spec: ImageFilesSpec) -> dict:
    """Test ids and files: the sample submission's ids in its order, each with its image; without a
    sample submission, every image in the test folder in natural order."""
    pattern = ImagePattern.parse(spec.root, spec.test_images)
    sample = read_sample(spec)
    if sample is None:
        ids, files = folder_images(pattern, "test_images")
        return {"test_ids": ids, "test_files": files}
    path, frame = sample
    ids = sample_ids(path, frame, spec)
    files = files_for_ids(pattern, ids, path, "test_images")
    extra = unlisted_images(pattern, files)
    if extra:
        raise DataError(f"{extra[0]}: a test image that {path.name} does not list ({len(extra)} such images); "
                        f"the sample submission must list every test image once")
    return {"test_ids": ids, "test_files": files, "sample_submission": path}


def check_sample_submission(path: Path, spec: CompetitionSpec, test_ids: np.ndarray) -> None:
    """The sample submission must list exactly the test images, once each."""
    ids = sample_ids(path, read_text_table(path, "sample_submission"), spec)
    missing = np.setdiff1d(test_ids, ids)
    extra = np.setdiff1d(ids, test_ids)
    if len(missing) or len(extra):
        detail = (f"{len(missing)} test ids missing from it (e.g. '{missing[0]}')" if len(missing)
                  else f"{len(extra)} ids that are not test images (e.g. '{extra[0]}')")
        raise DataError(f"{path}: {detail}; the sample submission must list every test image once")


def check_sample_answers(path: Path, spec: CompetitionSpec, classes: list[str]) -> None:
    """A label in the sample submission must be a training class; probability columns must be the classes."""
    frame = read_text_table(path, "sample_submission")
    id_column = spec.id_column if spec.id_column in frame.columns else frame.columns[0]
    answers = [c for c in frame.columns if c != id_column]
    if len(answers) > 1:
        unknown = [c for c in answers if c not in classes]
        if unknown or len(answers) != len(classes):
            raise DataError(f"{path}: columns {answers[:6]}{'...' if len(answers) > 6 else ''} are neither one label "
                            f"column nor one probability column per class ({_shown(classes)})"
                            + (f"; '{unknown[0]}' never occurs in training" if unknown else ""))
        return
    labels = frame[answers[0]].to_numpy(dtype=str)
    unknown = np.flatnonzero((np.char.strip(labels) != "") & ~np.isin(labels, np.asarray(classes, dtype=str)))
    if len(unknown):
        row = int(unknown[0])
        raise DataError(f"{path}: line {row + 2}: label '{labels[row]}' never occurs in training "
                        f"(classes: {_shown(classes)})")


def write_sample(folder: Path, spec: CompetitionSpec, test_ids: np.ndarray, classes: list[str]) -> Path:
    """A sample submission (id, label) in test order, for competitions that ship none."""
    path = folder / "sample_submission.csv"
    frame = pd.DataFrame({spec.id_column: test_ids, spec.label_column: classes[0]})
    text = frame.to_csv(index=False)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        fileio.write_text(path, text)
    return path


def _shown(classes: list[str]) -> str:
    return ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
