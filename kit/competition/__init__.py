"""Competitions: what Kaggle hands out, read into a CompetitionData.

`resolve_competition` turns a recipe's `competition` entry into a CompetitionSpec;
`load_competition` reads the files the spec names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from pydantic import ValidationError

from ..errors import DataError, RecipeError, did_you_mean
from ..schema import format_validation_error
from .data import CompetitionData, sort_classes
from .digits import digits_spec, ensure_digits
from .pixel_csv import check_unique_ids, read_csv, read_pixel_csv, require_column
from .spec import CompetitionSpec

BUILTIN = {"digits": digits_spec}


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
        try:
            entry_data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise RecipeError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        return _validate(entry_data, str(path))
    return _validate(entry, f"{source}: competition")


def _validate(data, source: str) -> CompetitionSpec:
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: expected a mapping of competition fields, got {type(data).__name__}")
    try:
        return CompetitionSpec.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(format_validation_error(source, CompetitionSpec, exc)) from None


def load_competition(spec: CompetitionSpec) -> CompetitionData:
    """Read (and for built-ins, first write) a competition's images, ids and labels."""
    if spec.name in BUILTIN and spec == BUILTIN[spec.name](spec.root):
        ensure_digits(spec)
    train_ids, train_images, train_labels = read_pixel_csv(spec, "train", with_labels=True)
    test_ids, test_images, _ = read_pixel_csv(spec, "test", with_labels=False)
    classes = sort_classes(train_labels)
    label_index = {c: i for i, c in enumerate(classes)}
    labels = np.array([label_index[label] for label in train_labels], dtype=np.int64)
    sample = spec.path(spec.sample_submission)
    check_sample_submission(sample, spec, test_ids)
    solution = spec.path(spec.solution) if spec.solution else None
    return CompetitionData(name=spec.name, classes=classes, train_ids=train_ids, train_images=train_images,
                           train_labels=labels, test_ids=test_ids, test_images=test_images,
                           sample_submission=sample, solution=solution)


def check_sample_submission(path: Path, spec: CompetitionSpec, test_ids: np.ndarray) -> None:
    """The sample submission must list exactly the test images, once each."""
    frame = read_csv(path, "sample_submission", dtype=str)
    id_column = spec.id_column if spec.id_column in frame.columns else frame.columns[0]
    ids = frame[id_column].to_numpy(dtype=str)
    check_unique_ids(ids, path)
    missing = np.setdiff1d(test_ids, ids)
    extra = np.setdiff1d(ids, test_ids)
    if len(missing) or len(extra):
        detail = (f"{len(missing)} test ids missing from it (e.g. '{missing[0]}')" if len(missing)
                  else f"{len(extra)} ids that are not test images (e.g. '{extra[0]}')")
        raise DataError(f"{path}: {detail}; the sample submission must list every test image once")


__all__ = ["CompetitionData", "CompetitionSpec", "load_competition", "resolve_competition", "require_column"]
