"""Layout `class_folders`: train/<class>/*.jpg, the class named by its folder; the test images in
one flat folder (Tiny ImageNet, Dogs vs. Cats sorted into folders, most course datasets).

Training ids are '<class>/<file name without extension>' (unique by construction); test ids come
from the sample submission, or from the test images' names when there is none."""

from __future__ import annotations

from .data import Listing
from .files import class_folder_images
from .sample import read_test_folder
from .spec import ClassFoldersSpec


def read_class_folders(spec: ClassFoldersSpec) -> Listing:
    folder = spec.path(spec.train_images)
    ids, labels, files = class_folder_images(folder, "train_images")
    return Listing(train_ids=ids, train_labels=labels, train_files=files, labels_source=folder,
                   **read_test_folder(spec))
