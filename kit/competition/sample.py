"""The sample submission: where the test ids (and their order) come from for image-file layouts,
and what the submission must look like. A competition without one gets one written by kit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import fileio
from ..errors import DataError
from .files import ImagePattern, files_for_ids, folder_images, list_folder, unlisted_images
from .spec import CompetitionSpec, ImageFilesSpec
from .tables import check_unique_ids, read_text_table


@dataclass
class Sample:
    """A sample submission as read once: its file, its cells as text, and the column of its ids."""

    path: Path
    frame: pd.DataFrame
    id_column: str  # the competition's id column, else the file's first

    @property
    def answer_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c != self.id_column]

    def ids(self) -> np.ndarray:
        """The test ids it lists, in its order."""
        ids = self.frame[self.id_column].to_numpy(dtype=str)
        check_unique_ids(ids, self.path)
        return ids


def read_sample(spec: CompetitionSpec) -> Sample | None:
    if spec.sample_submission is None:
        return None
    path = spec.path(spec.sample_submission)
    frame = read_text_table(path, "sample_submission")
    if frame.shape[1] < 2:
        raise DataError(f"{path}: expected an id column and at least one answer column, found {list(frame.columns)}")
    if frame.empty:
        raise DataError(f"{path}: no rows; the sample submission must list every test image once")
    return Sample(path, frame, spec.id_column if spec.id_column in frame.columns else frame.columns[0])


def read_test_folder(spec: ImageFilesSpec) -> dict:
    """Test ids and files: the sample submission's ids in its order, each with its image; without a
    sample submission, every image in the test folder in natural order."""
    pattern = ImagePattern.parse(spec.root, spec.test_images)
    sample = read_sample(spec)
    if sample is None:
        ids, files = folder_images(pattern, "test_images")
        return {"test_ids": ids, "test_files": files}
    ids = sample.ids()
    listing = list_folder(pattern.folder, "test_images")  # one scan for both
    files = files_for_ids(pattern, listing, ids, sample.path, "test_images")
    extra = unlisted_images(pattern, listing, files)
    if extra:
        raise DataError(f"{extra[0]}: a test image that {sample.path.name} does not list ({len(extra)} such images); "
                        f"the sample submission must list every test image once")
    return {"test_ids": ids, "test_files": files, "sample": sample}


def check_sample_submission(sample: Sample, test_ids: np.ndarray) -> None:
    """The sample submission must list exactly the test images, once each."""
    ids = sample.ids()
    missing = np.setdiff1d(test_ids, ids)
    extra = np.setdiff1d(ids, test_ids)
    if len(missing) or len(extra):
        detail = (f"{len(missing)} test ids missing from it (e.g. '{missing[0]}')" if len(missing)
                  else f"{len(extra)} ids that are not test images (e.g. '{extra[0]}')")
        raise DataError(f"{sample.path}: {detail}; the sample submission must list every test image once")


def check_sample_answers(sample: Sample, classes: list[str]) -> None:
    """A label in the sample submission must be a training class; probability columns must be the classes."""
    path, answers = sample.path, sample.answer_columns
    if len(answers) > 1:
        unknown = [c for c in answers if c not in classes]
        if unknown or len(answers) != len(classes):
            raise DataError(f"{path}: columns {answers[:6]}{'...' if len(answers) > 6 else ''} are neither one label "
                            f"column nor one probability column per class ({_shown(classes)})"
                            + (f"; '{unknown[0]}' never occurs in training" if unknown else ""))
        return
    labels = sample.frame[answers[0]].to_numpy(dtype=str)
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
