"""Where kit keeps things, relative to the folder it runs in (a competition project's root).

    data/          competitions' files (the built-in ones are written here on first use)
    store/         the prediction store: folds, and one folder per trained model
    submissions/   submission CSVs and their reports

Each can be moved with an environment variable (KIT_DATA, KIT_STORE, KIT_SUBMISSIONS) or, for
the store and submissions, a command-line option.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    return Path(os.environ.get("KIT_DATA", "data"))


def store_dir() -> Path:
    return Path(os.environ.get("KIT_STORE", "store"))


def submissions_dir() -> Path:
    return Path(os.environ.get("KIT_SUBMISSIONS", "submissions"))


# a competition's fields that name its files or (image patterns, class folders) the folders of its images
INPUT_FIELDS = ("train", "test", "train_labels", "train_images", "test_images", "sample_submission", "solution")


def competition_inputs(spec) -> dict[str, Path]:
    """What a competition reads, by field: files, and the folders its images lie in ('train/{id}' -> train/)."""
    inputs = {}
    for name in INPUT_FIELDS:
        value = getattr(spec, name, None)
        if isinstance(value, str):
            inputs[name] = spec.path(Path(value.split("{")[0] + "x").parent if "{" in value else value)
    return inputs


def check_output(path, what: str, *, store: Path | None = None, inputs: dict[str, Path] | None = None,
                 folder: bool = False) -> Path:
    """`path` if kit may write the output there, else WriteError saying why: it is a folder (or, with
    `folder`, a file), a folder on its way is a file, it lies inside the prediction store (which only kit
    itself writes: an output there overwrites a model's files), or it is (or lies inside) one of the
    competition's `inputs`. Symlinks are followed, so a link into the store is inside it."""
    from .errors import WriteError

    path = Path(path)
    target = path.resolve()
    if path.exists() and path.is_dir() != folder:
        raise WriteError(f"{path}: {what}: is a {'file' if folder else 'folder'}; "
                         f"{'remove it or give another name' if folder else 'give a file name (a.csv), not a folder'}")
    for parent in target.parents:
        if parent.exists() and not parent.is_dir():
            raise WriteError(f"{path}: {what}: {parent} is a file, not a folder")
    if store is not None and _within(target, Path(store).resolve()):
        raise WriteError(f"{path}: {what}: inside the prediction store ({store}), whose files only kit's own "
                         f"commands write; write it outside the store (e.g. into {submissions_dir()}/)")
    for field, input_path in (inputs or {}).items():
        if _within(target, input_path.resolve()):
            raise WriteError(f"{path}: {what}: would overwrite the competition's {field} ({input_path}); "
                             f"give a path outside its files")
    return path


def check_store(root: Path, inputs: dict[str, Path] | None = None) -> Path:
    """The store's folder, refused when a file is in its place (or on its way), or when it lies among a
    competition's `inputs` (a store inside train/ of class folders would be read as a class)."""
    from .errors import StoreError

    root = Path(root)
    for folder in (root.resolve(), *root.resolve().parents):
        if folder.exists() and not folder.is_dir():
            raise StoreError(f"{root}: the store (--store or KIT_STORE): {folder} is a file, not a folder")
    for field, input_path in (inputs or {}).items():
        if _within(root.resolve(), input_path.resolve()):
            raise StoreError(f"{root}: the store (--store or KIT_STORE) lies inside the competition's {field} "
                             f"({input_path}); keep it outside the competition's files")
    return root


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents
