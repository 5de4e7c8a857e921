"""Competitions: what Kaggle hands out, read into a CompetitionData.

`resolve_competition` turns a recipe's `competition` entry into a spec of its layout (spec.py);
`load_competition` reads the files the spec names with that layout's reader, decodes image
files once into the cache (cache.py) and checks the sample submission against both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
from pydantic import ValidationError

from ..errors import DataError, RecipeError, did_you_mean, reason
from ..fileio import array_hash, stable_hash
from ..progress import SILENT, Reporter
from ..schema import format_validation_error, read_yaml
from .cache import cache_folder, load_or_decode
from .class_folders import read_class_folders
from .data import CompetitionData, Listing, check_label_spelling, sort_classes
from .decode import decode_image
from .digits import digits_spec, ensure_digits
from .labels_csv import read_labels_csv
from .npz_arrays import read_npz
from .pixel_csv import read_pixel_listing
from .sample import check_sample_answers, write_sample
from .spec import ClassFoldersSpec, CompetitionSpec, LabelsCsvSpec, NpzSpec, PixelCsvSpec
from .tables import check_unique_ids, read_csv, require_column

BUILTIN = {"digits": digits_spec}


class Layout(NamedTuple):
    spec: type[CompetitionSpec]  # the fields a competition file of this layout may set
    read: Callable[[CompetitionSpec], Listing]  # lists its ids, labels and images (or image files)


LAYOUTS: dict[str, Layout] = {
    "pixel_csv": Layout(PixelCsvSpec, read_pixel_listing),
    "labels_csv": Layout(LabelsCsvSpec, read_labels_csv),
    "class_folders": Layout(ClassFoldersSpec, read_class_folders),
    "npz": Layout(NpzSpec, read_npz),
}

SUBSET_SEED = 0
# how image files are decoded, fields of the image-file layouts only; array layouts keep their arrays' own
DECODE_KEYS = {"image_size": "at the size they are stored at", "channels": "with the channels they are stored with"}


def resolve_competition(entry, source: str = "recipe") -> CompetitionSpec:
    """A CompetitionSpec from a built-in name, a competition YAML file or an inline mapping."""
    if isinstance(entry, CompetitionSpec):
        return entry
    if isinstance(entry, str) and entry in BUILTIN:
        return BUILTIN[entry]()
    if isinstance(entry, str):
        path = Path(entry)
        if path.suffix not in (".yaml", ".yml"):
            raise RecipeError(f"{source}: competition: '{entry}' is neither a built-in competition "
                              f"({', '.join(BUILTIN)}){did_you_mean(entry, BUILTIN)} nor a .yaml competition file")
        if not path.is_file():
            raise RecipeError(f"{source}: competition: no such file '{entry}'")
        return _validate(read_yaml(path), str(path))
    return _validate(entry, source, prefix="competition.")


def _validate(data, source: str, prefix: str = "") -> CompetitionSpec:
    """`prefix`: where the mapping sits in the file ('competition.' for one inline in a recipe)."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: {prefix or ''}expected a mapping of competition fields, got {type(data).__name__}")
    layout = data.get("layout")
    if layout is None:
        raise RecipeError(f"{source}: {prefix}layout: required, but missing (one of {', '.join(LAYOUTS)})")
    if layout not in LAYOUTS:
        raise RecipeError(f"{source}: {prefix}layout: {layout!r} is not one of {', '.join(LAYOUTS)}"
                          f"{did_you_mean(layout, LAYOUTS)}")
    spec_class = LAYOUTS[layout].spec
    for key, kept in DECODE_KEYS.items():
        if key in data and key not in spec_class.model_fields:
            takers = [name for name, known in LAYOUTS.items() if key in known.spec.model_fields]
            raise RecipeError(f"{source}: {prefix}{key}: a {layout} competition's images are used {kept}; only "
                              f"{' and '.join(takers)} decode image files and take {key}"
                              + (" (a recipe's image_size resizes any competition's images for the network)"
                                 if key == "image_size" else ""))
    try:
        return spec_class.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(format_validation_error(source, spec_class, exc, prefix=prefix)) from None


def load_competition(spec: CompetitionSpec, image_size: int | None = None, reporter: Reporter = SILENT,
                     workers: int | None = None, decode: bool = True) -> CompetitionData:
    """Read (and for built-ins, first write) a competition's images, ids and labels.

    Image files are decoded once, at the competition's image_size, else at their own size when
    they share one, else (mixed sizes) at `image_size` (a recipe's), into a cache that later loads memory-map; `workers` processes decode
    (default: one per CPU core), reporting progress to `reporter`. With `decode` False, image files not
    decoded yet are a DataError rather than a decode."""
    if spec.name in BUILTIN and spec == BUILTIN[spec.name](spec.root):
        ensure_digits(spec)
    listing = LAYOUTS[spec.layout].read(spec)
    classes = sort_classes(listing.train_labels)
    check_label_spelling(classes, listing.labels_source or spec.root)
    label_index = {c: i for i, c in enumerate(classes)}
    labels = np.array([label_index[label] for label in listing.train_labels], dtype=np.int64)

    if listing.sample is not None:
        check_sample_answers(listing.sample, classes)
        sample = listing.sample.path
    else:
        sample = write_sample(cache_folder(spec), spec, listing.test_ids, classes)

    train_ids, train_images, test_images = listing.train_ids, listing.train_images, listing.test_images
    cached = None
    if listing.train_files is not None:
        # only image-file layouts (ImageFilesSpec) list files
        cached = load_or_decode(spec, listing.train_files, listing.test_files, spec.image_size, reporter, workers,
                                fallback_size=image_size, decode=decode)
        train_images, test_images = cached.train, cached.test
    if spec.train_subset is not None:
        rows = subset_rows(labels, spec.train_subset, spec.name)
        # a copy in memory: a subset is small, and its rows are scattered over the cache file
        train_ids, labels, train_images = train_ids[rows], labels[rows], np.asarray(train_images[rows])
    fingerprint = ""
    if cached is not None:
        # the images' part was hashed from the files' bytes when they were decoded (kept in the cache)
        fingerprint = stable_hash({"images": cached.meta["source_hash"], "classes": classes,
                                   "rows": array_hash(train_ids, labels, listing.test_ids)})
    return CompetitionData(name=spec.name, classes=classes, train_ids=train_ids, train_images=train_images,
                           train_labels=labels, test_ids=listing.test_ids, test_images=test_images,
                           sample_submission=sample, solution=spec.path(spec.solution) if spec.solution else None,
                           fingerprint=fingerprint, cache_folder=cached.folder if cached else None,
                           decoded=bool(cached and cached.decoded), cache_meta=cached.meta if cached else None)


def subset_rows(labels: np.ndarray, size: int, name: str) -> np.ndarray:
    """A stratified sample of `size` training rows (a fixed seed), in the competition's order."""
    from sklearn.model_selection import train_test_split

    if size >= len(labels):
        raise DataError(f"competition '{name}': train_subset: {size} is not smaller than the "
                        f"{len(labels)} training images; leave it out to use them all")
    try:
        rows, _ = train_test_split(np.arange(len(labels)), train_size=size, stratify=labels,
                                   random_state=SUBSET_SEED)
    except ValueError as exc:
        raise DataError(f"competition '{name}': train_subset: {size} images cannot hold every class "
                        f"({reason(exc, limit=None)})") from None
    return np.sort(rows)


__all__ = ["CompetitionData", "CompetitionSpec", "LAYOUTS", "Layout", "check_unique_ids", "decode_image",
           "load_competition", "read_csv", "require_column", "resolve_competition", "subset_rows"]
