"""Layout `npz`: NumPy archives train.npz (images, labels, optional ids) and test.npz (images,
optional ids), as competitors save what they have already decoded; or one archive holding both
splits under their own names (x_train, y_train, x_test), as Keras-era datasets ship.

Images may be N x H x W (grayscale), N x H x W x C or N x C x H x W with C of 1 or 3; uint8 as is,
other integers from 0 to 255, floats from 0 to 1 (scaled by 255) or from 0 to 255. Labels may be
numbers or text; without ids, the ids are the row numbers (0, 1, ...)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError, reason
from .data import Listing, array_listing
from .spec import NpzSpec
from .tables import first_duplicate


def read_npz(spec: NpzSpec) -> Listing:
    (train_key, train_field), (test_key, test_field) = spec.key("train", "images"), spec.key("test", "images")
    if spec.path(spec.train).resolve() == spec.path(spec.test).resolve() and train_key == test_key:
        field = "test_images_key" if test_field == "images_key" else test_field
        raise DataError(f"{spec.path(spec.test)}: the test images are the training images (both splits read "
                        f"'{test_key}', set by {test_field}); name the test split's array with {field}")
    return array_listing(spec, read_npz_split(spec, "train", with_labels=True),
                         read_npz_split(spec, "test", with_labels=False))


def read_npz_split(spec: NpzSpec, split: str, with_labels: bool):
    """ids (str), images (uint8 N x H x W x C), labels (str, or None) of one split's archive."""
    path = spec.path(getattr(spec, split))
    if not path.is_file():
        raise DataError(f"{path}: no such file (the competition's '{split}' file)")
    images_key, images_field = spec.key(split, "images")
    ids_key, ids_field = spec.key(split, "ids")
    try:
        # only the arrays this split names: one archive may hold both splits
        with np.load(path, allow_pickle=False) as archive:
            names = archive.files
            images = _images(path, archive[_name(names, path, images_key, images_field)])
            n = len(images)
            ids = None
            if ids_key in names or ids_field in spec.model_fields_set:  # a key the user set must be there
                ids = _vector(path, archive[_name(names, path, ids_key, ids_field)], ids_key, n)
            labels = None
            if with_labels:
                labels = _vector(path, archive[_name(names, path, spec.labels_key, "labels_key")], spec.labels_key, n)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({reason(exc)})") from None
    if ids is None:
        ids = np.arange(n).astype(str)
    else:
        ids = ids.astype(str)
        duplicate = first_duplicate(ids)
        if duplicate is not None:
            dup, rows = duplicate
            raise DataError(f"{path}: duplicate id '{dup}' in '{ids_key}' (rows {', '.join(map(str, rows))})")
    return ids, images, None if labels is None else _labels(path, labels, spec.labels_key)


def _name(names: list[str], path: Path, key: str, field: str) -> str:
    if key not in names:
        raise DataError(f"{path}: no array '{key}' (set by {field}); arrays are: {', '.join(names) or 'none'}")
    return key


def _vector(path: Path, values: np.ndarray, key: str, n: int) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1 or len(values) != n:
        raise DataError(f"{path}: '{key}' has shape {values.shape}, expected ({n},): one value per image")
    return values


def _labels(path: Path, labels: np.ndarray, key: str) -> np.ndarray:
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels) & (labels == np.round(labels))):
            row = int(np.flatnonzero(~(np.isfinite(labels) & (labels == np.round(labels))))[0])
            raise DataError(f"{path}: '{key}' row {row}: {labels[row]!r} is not a class (a whole number or text)")
        labels = labels.astype(np.int64)
    if labels.dtype.kind == "b":
        labels = labels.astype(np.int64)
    if labels.dtype.kind == "S":
        labels = np.char.decode(labels, "utf-8")
    labels = labels.astype(str)
    empty = np.char.strip(labels) == ""
    if empty.any():
        raise DataError(f"{path}: '{key}' row {int(np.flatnonzero(empty)[0])}: empty label")
    return labels


def _images(path: Path, images: np.ndarray) -> np.ndarray:
    if images.ndim == 3:
        images = images[..., None]
    elif images.ndim == 4 and images.shape[-1] not in (1, 3) and images.shape[1] in (1, 3):
        images = images.transpose(0, 2, 3, 1)  # N x C x H x W, as PyTorch keeps them
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
        raise DataError(f"{path}: images of shape {images.shape}; expected N x H x W, N x H x W x C or "
                        f"N x C x H x W with C 1 or 3, and N > 0")
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images)
    if images.dtype.kind not in "iufb":
        raise DataError(f"{path}: images of dtype {images.dtype}; expected numbers")
    values = images.astype(np.float64)
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values).reshape(len(values), -1).all(axis=1))[0])
        raise DataError(f"{path}: image {row} holds NaN or infinite values; expected 0..255 (or 0..1 as floats)")
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 255:
        raise DataError(f"{path}: image values from {low} to {high}; expected 0..255 (or 0..1 as floats)")
    if images.dtype.kind == "f" and high <= 1.0:
        values = values * 255.0
    return np.ascontiguousarray(np.round(values).astype(np.uint8))
