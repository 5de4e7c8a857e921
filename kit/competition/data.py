"""The decoded competition: uint8 images, string ids, labels as class indices."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..fileio import array_hash, text_array
from .sample import Sample, check_sample_submission, read_sample


def sort_classes(labels) -> list[str]:
    """Class names in a stable order: numerically when every label is an integer, else by text."""
    unique = sorted({str(label) for label in labels})
    try:
        return sorted(unique, key=lambda s: (int(s), s))
    except ValueError:
        return unique


def check_label_spelling(classes: list[str], source) -> None:
    """Two labels that differ only by spaces around them ('cat' and 'cat ') would silently be two classes."""
    by_stripped: dict[str, str] = {}
    for label in classes:
        other = by_stripped.setdefault(label.strip(), label)
        if other != label:
            raise DataError(f"{source}: the labels {other!r} and {label!r} differ only by spaces around them, which "
                            f"would make them two classes; write each class one way")


@dataclass
class Listing:
    """What a layout's reader finds: ids and labels as the files spell them, and either the images
    themselves (array layouts) or the image files to decode (file layouts)."""

    train_ids: np.ndarray  # str
    train_labels: np.ndarray  # str
    test_ids: np.ndarray  # str
    train_images: np.ndarray | None = None  # uint8 N x H x W x C
    test_images: np.ndarray | None = None
    train_files: list[str] | None = None  # paths
    test_files: list[str] | None = None
    # the competition's sample submission, read once (image-file layouts read their test ids from it)
    sample: Sample | None = None
    # where the training labels are written (a file, or the folder of class folders), for messages
    labels_source: Path | None = None

    def __post_init__(self):
        # one form however the reader made them (numbered rows, CSV text, archive arrays): see text_array
        self.train_ids, self.train_labels, self.test_ids = map(text_array, (self.train_ids, self.train_labels,
                                                                            self.test_ids))


def array_listing(spec, train: tuple, test: tuple, describe=None) -> Listing:
    """The Listing of an array layout, from its two splits as read: (ids, images, labels or None) each.

    The test images must be shaped like the training images (a network is built for one size and
    channel count); `describe` says what an images array is in the layout's own terms."""
    (train_ids, train_images, train_labels), (test_ids, test_images, _) = train, test
    describe = describe or (lambda images: "images of {}x{} pixels with {} channel(s)".format(*images.shape[1:]))
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(f"{spec.path(spec.test)}: {describe(test_images)} where {spec.path(spec.train)} has "
                        f"{describe(train_images)}; the test images must be shaped like the training images")
    if train_images.shape == test_images.shape and np.array_equal(train_images, test_images):
        raise DataError(f"{spec.path(spec.test)}: the test images are the training images ({spec.path(spec.train)}, "
                        f"row for row); the test set must be the images to predict, not those trained on")
    sample = read_sample(spec)
    if sample is not None:
        # the test ids come from the test file; the sample submission must list the same
        check_sample_submission(sample, test_ids)
    return Listing(train_ids=train_ids, train_labels=train_labels, test_ids=test_ids, train_images=train_images,
                   test_images=test_images, sample=sample, labels_source=spec.path(spec.train))


@dataclass
class CompetitionData:
    name: str
    classes: list[str]  # label values exactly as the competition spells them
    train_ids: np.ndarray  # str
    train_images: np.ndarray  # uint8, N x H x W x C (a read-only np.memmap for image-file layouts)
    train_labels: np.ndarray  # int64 indices into classes
    test_ids: np.ndarray  # str
    test_images: np.ndarray  # uint8, M x H x W x C
    sample_submission: Path
    solution: Path | None = None
    fingerprint: str = field(default="")
    # where the decoded images are cached, whether this load decoded them, and the cache's meta.json (image-file layouts)
    cache_folder: Path | None = None
    decoded: bool = False
    cache_meta: dict | None = None

    def __post_init__(self):
        if not self.fingerprint:
            # what the models saw: a changed image, label or id changes it
            self.fingerprint = array_hash(self.train_ids, self.train_labels, self.train_images,
                                          self.test_ids, self.test_images)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.train_images.shape[-1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train_images.shape[1]), int(self.train_images.shape[2])
