"""Layout `pixel_csv`: one row per image, pixel columns pixel0..pixelN (Kaggle's Digit Recognizer,
Fashion-MNIST). Grayscale, square, the side inferred from the number of pixel columns."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import DataError
from .data import Listing, array_listing
from .spec import PixelCsvSpec
from .tables import check_unique_ids, read_csv, require_column


def read_pixel_listing(spec: PixelCsvSpec) -> Listing:
    return array_listing(spec, read_pixel_csv)


def read_pixel_csv(spec: PixelCsvSpec, field: str, with_labels: bool):
    """ids (str), images (uint8 N x S x S x 1), labels (str, or None) of one pixel CSV."""
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
    pixel_columns = [c for c in frame.columns if c not in (spec.id_column, spec.label_column)]
    side = math.isqrt(len(pixel_columns))
    if not pixel_columns or side * side != len(pixel_columns):
        raise DataError(f"{path}: {len(pixel_columns)} pixel columns is not a square image "
                        f"(expected side*side columns besides '{spec.id_column}' and '{spec.label_column}')")
    pixels = frame[pixel_columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(pixels) | (pixels < 0) | (pixels > 255)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(f"{path}: line {row + 2}, column '{pixel_columns[col]}': pixel value "
                        f"'{frame[pixel_columns[col]].iloc[row]}' is not a number from 0 to 255")
    images = pixels.astype(np.uint8).reshape(len(frame), side, side, 1)
    labels = None
    if with_labels:
        labels = frame[spec.label_column].to_numpy(dtype=object)
        missing = pd.isna(labels)
        if missing.any():
            raise DataError(f"{path}: line {int(np.flatnonzero(missing)[0]) + 2}: empty '{spec.label_column}'")
        labels = labels.astype(str)
    return ids, images, labels
