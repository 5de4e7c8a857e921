"""Layout `pixel_csv`: one row per image, pixel columns pixel0..pixelN (Kaggle's Digit Recognizer,
Fashion-MNIST). Grayscale, square, the side inferred from the number of pixel columns."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from ..errors import DataError, did_you_mean
from .data import Listing, array_listing
from .spec import PixelCsvSpec
from .tables import check_unique_ids, read_csv, require_column


# Kaggle's pixel columns: pixel0..pixel783 (Digit Recognizer), pixel1..pixel784 (Fashion-MNIST)
PIXEL_NAME = re.compile(r"\D*\d+")


def read_pixel_listing(spec: PixelCsvSpec) -> Listing:
    *train, columns = read_pixel_csv(spec, "train", with_labels=True)
    *test, _ = read_pixel_csv(spec, "test", with_labels=False, train_columns=columns)
    return array_listing(spec, train, test)


def read_pixel_csv(spec: PixelCsvSpec, field: str, with_labels: bool, train_columns: list[str] | None = None):
    """ids (str), images (uint8 N x S x S x 1), labels (str, or None) and the pixel columns of one pixel CSV.

    `train_columns`: the training file's pixel columns, which the test file must have too (in any order)."""
    path = spec.path(getattr(spec, field))
    dtypes = {spec.id_column: str, spec.label_column: str}
    frame = read_csv(path, field, dtype=dtypes)
    if frame.empty:
        raise DataError(f"{path}: no images (the file has a header but no rows)")
    if with_labels:
        require_column(frame, path, spec.label_column, "label_column")
    if spec.id_column in frame.columns:
        ids = frame[spec.id_column].to_numpy(dtype=str)
    else:
        # Digit Recognizer's files have no id column: its submissions number the rows from 1
        ids = np.arange(1, len(frame) + 1).astype(str)
    check_unique_ids(ids, path)
    pixel_columns, side = _pixel_columns(frame, path, spec, train_columns)
    pixels = frame[pixel_columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    # a fraction would be cut to a whole number silently (pixels scaled to 0..1 would all become 0)
    bad = ~np.isfinite(pixels) | (pixels < 0) | (pixels > 255) | (pixels != np.round(pixels))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(f"{path}: line {row + 2}, column '{pixel_columns[col]}': pixel value "
                        f"'{frame[pixel_columns[col]].iloc[row]}' is not a whole number from 0 to 255")
    images = pixels.astype(np.uint8).reshape(len(frame), side, side, 1)
    labels = None
    if with_labels:
        labels = frame[spec.label_column].to_numpy(dtype=object)
        missing = pd.isna(labels)
        if missing.any():
            raise DataError(f"{path}: line {int(np.flatnonzero(missing)[0]) + 2}: empty '{spec.label_column}'")
        labels = labels.astype(str)
    return ids, images, labels, pixel_columns


def _pixel_columns(frame: pd.DataFrame, path, spec: PixelCsvSpec,
                   train_columns: list[str] | None = None) -> tuple[list[str], int]:
    """Every column besides the id and label columns (in `train_columns`' order when given), and the
    side of the square they make."""
    columns = [c for c in frame.columns if c not in (spec.id_column, spec.label_column)]
    # a column that is not a pixel (pixel0, pixel1, ...) is named rather than the count it puts off
    others = [c for c in columns if not PIXEL_NAME.fullmatch(c)]
    shown = ", ".join(f"'{c}'" for c in others[:5]) + (", ..." if len(others) > 5 else "")
    if others and spec.id_column not in frame.columns:
        raise DataError(f"{path}: no column '{spec.id_column}' (set by id_column){did_you_mean(spec.id_column, others)}; "
                        f"the columns that are not pixels are: {shown}")
    if train_columns is not None:
        train_path = spec.path(spec.train)
        if len(columns) != len(train_columns):
            raise DataError(f"{path}: {len(columns)} pixel columns where {train_path} has {len(train_columns)}; "
                            f"the test images must have the training images' pixels")
        missing = [c for c in train_columns if c not in columns]
        if missing:
            raise DataError(f"{path}: no column '{missing[0]}', which {train_path} has; the test file must have "
                            f"the training file's pixel columns{did_you_mean(missing[0], columns)}")
        return list(train_columns), math.isqrt(len(columns))
    side = math.isqrt(len(columns))
    if columns and side * side == len(columns):
        return columns, side
    if others:
        raise DataError(f"{path}: {shown} {'is no pixel column' if len(others) == 1 else 'are no pixel columns'} "
                        f"(pixel0, pixel1, ...) nor the id_column '{spec.id_column}' or the label_column "
                        f"'{spec.label_column}'; set id_column to the id column, or remove the others")
    raise DataError(f"{path}: {len(columns)} pixel columns is not a square image "
                    f"(expected side*side columns besides '{spec.id_column}' and '{spec.label_column}')")
