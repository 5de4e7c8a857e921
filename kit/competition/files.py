"""Finding a competition's image files: by id through a pattern such as `train/{id}`, or every image
in a folder. Each folder is listed once (one directory scan, not one lookup per id)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .tables import first_duplicate

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_RANK = {ext: i for i, ext in enumerate(IMAGE_EXTENSIONS)}


def is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in _RANK


def natural_key(text: str) -> tuple:
    """'img2' before 'img10': digit runs compare as numbers."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


@dataclass(frozen=True)
class ImagePattern:
    """`train/{id}.png` as a folder and the text around `{id}` in the file name."""

    folder: Path
    prefix: str
    suffix: str  # '' means: any image extension (or the id is the whole file name)
    text: str  # as written, for messages

    @classmethod
    def parse(cls, root: Path, text: str) -> "ImagePattern":
        folder, _, name = text.rpartition("/")
        prefix, suffix = name.split("{id}")
        return cls(root / folder, prefix, suffix, text)

    def describe(self, id_: str) -> str:
        name = f"{self.prefix}{id_}{self.suffix}"
        return str(self.folder / (name if self.suffix else f"{name}.<{'|'.join(e[1:] for e in IMAGE_EXTENSIONS[:3])}|...>"))


def list_folder(folder: Path, field: str) -> dict[str, str]:
    """Every file in `folder` (not its subfolders): name -> path; a missing folder is an error naming the field.

    Paths are plain strings: a competition has tens of thousands, and pathlib would cost seconds."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (the competition's '{field}')")
    with os.scandir(folder) as entries:
        return {e.name: e.path for e in entries if e.is_file()}


def files_for_ids(pattern: ImagePattern, listing: dict[str, str], ids: np.ndarray, source: Path,
                  field: str) -> list[str]:
    """The image file of each id, in the ids' order, from `listing` (list_folder of the pattern's folder);
    a missing one names its line in `source`."""
    if not any(is_image(n) for n in listing):
        raise DataError(f"{pattern.folder}: empty folder, no image files (the competition's '{field}')")
    by_stem: dict[str, tuple[int, str]] = {}
    if not pattern.suffix:
        # when one stem has several files (1.png and 1.jpg) the order of IMAGE_EXTENSIONS decides
        for name, path in listing.items():
            stem, ext = os.path.splitext(name)
            rank = _RANK.get(ext.lower())
            if rank is not None and (stem not in by_stem or rank < by_stem[stem][0]):
                by_stem[stem] = (rank, path)
    paths = []
    for row, id_ in enumerate(ids):
        name = f"{pattern.prefix}{id_}{pattern.suffix}"
        path = listing.get(name) or by_stem.get(name, (0, None))[1]
        if path is None:
            raise DataError(f"{source}: line {row + 2}: id '{id_}' has no image file "
                            f"(expected {pattern.describe(id_)}, set by {field})")
        paths.append(path)
    return paths


def unlisted_images(pattern: ImagePattern, listing: dict[str, str], paths: list[str]) -> list[str]:
    """Image files in `listing` (list_folder of the pattern's folder) that match it but are not among `paths`."""
    used = set(paths)
    return sorted((p for n, p in listing.items() if is_image(n) and p not in used and _id_of(pattern, n) is not None),
                  key=natural_key)


def folder_images(pattern: ImagePattern, field: str) -> tuple[np.ndarray, list[str]]:
    """Ids (the file names without the pattern's surroundings) and paths of every image in the folder,
    in natural order: how a test folder without a sample submission is read."""
    listing = list_folder(pattern.folder, field)
    found = sorted(((_id_of(pattern, n), p) for n, p in listing.items() if is_image(n)), key=lambda t: natural_key(t[1]))
    found = [(i, p) for i, p in found if i]
    if not found:
        raise DataError(f"{pattern.folder}: empty folder, no image files matching '{pattern.text}' "
                        f"(the competition's '{field}')")
    ids = np.array([i for i, _ in found], dtype=str)
    duplicate = first_duplicate(ids)
    if duplicate is not None:
        dup, rows = duplicate
        names = [os.path.basename(found[row][1]) for row in rows]
        raise DataError(f"{pattern.folder}: two images share the id '{dup}' ({names[0]} and {names[1]})")
    return ids, [p for _, p in found]


def _id_of(pattern: ImagePattern, name: str) -> str | None:
    stem = name if pattern.suffix else os.path.splitext(name)[0]
    suffix = pattern.suffix
    if not (stem.startswith(pattern.prefix) and stem.endswith(suffix)) or len(stem) <= len(pattern.prefix) + len(suffix):
        return None
    return stem[len(pattern.prefix):len(stem) - len(suffix)]


def class_folder_images(folder: Path, field: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """ids ('<class>/<path without extension>'), labels (the folder names) and paths of a class-folder tree."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (the competition's '{field}')")
    with os.scandir(folder) as scan:
        entries = list(scan)
    classes = sorted((e.name for e in entries if e.is_dir() and not e.name.startswith(".")), key=natural_key)
    stray = sorted(e.name for e in entries if e.is_file() and is_image(e.name))
    if stray:
        raise DataError(f"{folder / stray[0]}: an image outside any class folder (the layout class_folders "
                        f"expects {folder}/<class>/<image>)")
    if not classes:
        raise DataError(f"{folder}: empty folder, no class folders (the layout class_folders expects "
                        f"{folder}/<class>/<image>)")
    ids, labels, paths = [], [], []
    for label in classes:
        top, found = str(folder / label), []
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            found += [os.path.join(dirpath, n) for n in filenames if is_image(n)]
        if not found:
            raise DataError(f"{folder / label}: empty class folder, no image files")
        found.sort(key=natural_key)
        # every path walked starts with top + os.sep: cutting it off is the relative path, without pathlib
        start = len(top) + 1
        ids += [f"{label}/{os.path.splitext(path[start:])[0].replace(os.sep, '/')}" for path in found]
        labels += [label] * len(found)
        paths += found
    ids = np.array(ids, dtype=str)
    duplicate = first_duplicate(ids)
    if duplicate is not None:
        raise DataError(f"{folder}: two images share the id '{duplicate[0]}' (same name, different extensions)")
    return ids, np.array(labels, dtype=str), paths
