"""What a competition is on disk: its layout, its files and its column names.

A recipe names a competition in one of three ways:

    competition: digits                              # a built-in one (written under data/ on first use)
    competition: recipes/cifar10/competition.yaml    # a shared competition file
    competition: {name: ..., layout: ..., root: ...} # inline

Paths are relative to the folder kit runs in (the project's root), as in a Kaggle notebook; the
file names inside a competition are relative to its `root`. Each layout has its own fields, with
Kaggle's conventions as defaults, so that a competition file is usually three lines:

    pixel_csv      train.csv / test.csv with label + pixel0..pixelN (Digit Recognizer, Fashion-MNIST)
    labels_csv     trainLabels.csv (id, label) + train/{id}.png|jpg, test/{id}.png|jpg (CIFAR-10)
    class_folders  train/<class>/*.jpg, test/*.jpg flat (Tiny ImageNet, most course datasets)
    npz            train.npz / test.npz holding images, labels and (optionally) ids, or one archive of both

Image patterns such as `train/{id}` name a folder and a file name with `{id}` in it; without an
extension any image file whose stem is the id matches (or a file named exactly the id, when the
ids carry their extension as in some Kaggle CSVs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_serializer

from ..schema import Strict


class CompetitionSpec(Strict):
    """The fields every layout shares; one subclass per layout adds its files."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    root: Path
    layout: str
    # the format a submission must follow; None: kit writes one (id, label in test order) into its cache
    sample_submission: str | None = "sample_submission.csv"
    # the test labels, for scoring a submission locally (`kit score`); Kaggle keeps these hidden
    solution: str | None = None
    id_column: str = "id"
    label_column: str = "label"
    # a stratified sample of this many training images (fixed seed) for quick runs; the test set stays whole.
    # A subset changes the training ids, so give it its own `name`: folds and models are kept per name.
    train_subset: int | None = Field(None, gt=0)

    def path(self, name: str) -> Path:
        return self.root / name


class PixelCsvSpec(CompetitionSpec):
    """One row per image: an optional id, a label (train only) and pixel0..pixelN, grayscale, square."""

    layout: Literal["pixel_csv"] = "pixel_csv"
    train: str = "train.csv"
    test: str = "test.csv"


def _check_pattern(value: str) -> str:
    folder, _, name = value.rpartition("/")
    if name.count("{id}") != 1 or "{id}" in folder:
        raise ValueError("an image pattern needs '{id}' once, in the file name (e.g. 'train/{id}' or 'train/{id}.png')")
    return value


# a folder and a file name with {id} in it: 'train/{id}', 'test/{id}.png'
ImagePatternText = Annotated[str, AfterValidator(_check_pattern)]


class ImageFilesSpec(CompetitionSpec):
    """Layouts whose images are files (PNG, JPEG, ...): decoded once into kit's image cache."""

    # the side every image is resized to when decoded; None: their own size when they share one, else (mixed sizes) the recipe's image_size
    image_size: int | None = Field(None, gt=0)
    # 1 (grayscale) or 3 (RGB), every image converted to it; None: the images' own, which must then be all
    # grayscale or all colour (a mix is an error naming one of each, whatever their order)
    channels: Literal[1, 3] | None = None
    # where the test images are; their ids come from the sample submission (or the file names without one)
    test_images: ImagePatternText = "test/{id}"



class LabelsCsvSpec(ImageFilesSpec):
    """A CSV of id, label for the training images, one image file per id (Kaggle's CIFAR-10)."""

    layout: Literal["labels_csv"] = "labels_csv"
    train_labels: str = "trainLabels.csv"
    train_images: ImagePatternText = "train/{id}"
    sample_submission: str | None = "sampleSubmission.csv"


class ClassFoldersSpec(ImageFilesSpec):
    """One folder per class under `train_images` (subfolders inside a class are searched too)."""

    layout: Literal["class_folders"] = "class_folders"
    train_images: str = "train"


class NpzSpec(CompetitionSpec):
    """NumPy archives: uint8 images N x H x W (x C), labels (numbers or text) and optional ids.

    Both splits may come from one archive under their own names, as Keras-era datasets ship them:

        train: mnist.npz
        test: mnist.npz
        train_images_key: x_train
        labels_key: y_train
        test_images_key: x_test
    """

    layout: Literal["npz"] = "npz"
    train: str = "train.npz"
    test: str = "test.npz"
    # the array names in both splits; train_images_key, test_images_key (and the ids') name one split's own
    images_key: str = "images"
    train_images_key: str | None = None
    test_images_key: str | None = None
    labels_key: str = "labels"
    # without ids the ids are the row numbers (0, 1, ...); a key set here that names no array is an error
    ids_key: str = "ids"
    train_ids_key: str | None = None
    test_ids_key: str | None = None

    def key(self, split: str, array: str) -> tuple[str, str]:
        """The name of `split`'s ('train', 'test') `array` ('images', 'ids'), and the field that set it."""
        field = f"{split}_{array}_key"
        if getattr(self, field) is not None:
            return getattr(self, field), field
        return getattr(self, f"{array}_key"), f"{array}_key"

    @model_serializer(mode="wrap")
    def _split_keys_only_when_set(self, handler):
        # the per-split keys came after npz models were first stored: unset, they stay out of the
        # recipe's hash (and recipe.yaml), so those models keep theirs
        return {k: v for k, v in handler(self).items() if not (k in SPLIT_KEYS and v is None)}


SPLIT_KEYS = ("train_images_key", "test_images_key", "train_ids_key", "test_ids_key")
