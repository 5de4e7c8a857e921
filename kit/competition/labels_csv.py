"""Layout `labels_csv`: a CSV of id, label for the training images and one image file per id;
the test images in a folder, their ids from the sample submission (Kaggle's CIFAR-10:
trainLabels.csv, train/{id}.png, test/{id}.png, sampleSubmission.csv)."""

from __future__ import annotations

from ..errors import DataError
from .data import Listing
from .files import ImagePattern, files_for_ids, list_folder
from .sample import read_test_folder
from .spec import LabelsCsvSpec
from .tables import check_unique_ids, read_text_table, text_column


def read_labels_csv(spec: LabelsCsvSpec) -> Listing:
    path = spec.path(spec.train_labels)
    frame = read_text_table(path, "train_labels")
    if frame.empty:
        raise DataError(f"{path}: no rows (the competition's 'train_labels')")
    ids = text_column(frame, path, spec.id_column, "id_column")
    labels = text_column(frame, path, spec.label_column, "label_column")
    check_unique_ids(ids, path)
    pattern = ImagePattern.parse(spec.root, spec.train_images)
    files = files_for_ids(pattern, list_folder(pattern.folder, "train_images"), ids, path, "train_images")
    return Listing(train_ids=ids, train_labels=labels, train_files=files, labels_source=path,
                   **read_test_folder(spec))

