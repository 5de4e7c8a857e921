"""The prediction store: plain files, one folder per model, readable without kit.

    store/<competition>/
      sample_submission.csv               a copy of the competition's, for writing submissions
      locks/<model>.lock                  held by the kit process training <model>
      folds/k5-seed42.csv                 id, label, fold
      models/<model>/
        model.json                        manifest: recipe hash, folds hash, data fingerprint, classes, status
        recipe.yaml                       the resolved recipe
        metrics.json                      CV metrics, once every fold is done
        seed<s>/fold<k>/
          oof.npz                         ids, probs   (the held-out fold's rows)
          test.npz                        ids, probs   (every test image)
          history.csv                     per-epoch losses, accuracies, lr, seconds
          weights.pt                      the best epoch's state dict
          checkpoint.pt                   while the fold trains: the state after the last epoch
          fold.json                       written last: the fold is done

Every file is written atomically (fileio), so a killed run leaves whole files or none.
"""

from __future__ import annotations

import csv
import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from . import fileio
from .errors import StoreError, did_you_mean
from .folds import Folds, read_folds
from .lock import holder
from .schema import format_validation_error

MANIFEST = "model.json"
#: a finished fold's files, in the order they are written: fold.json last, as the 'done' mark
FOLD_FILES = ("oof.npz", "test.npz", "history.csv", "weights.pt", "fold.json")
OOF, TEST, HISTORY, WEIGHTS, DONE = FOLD_FILES
CHECKPOINT = "checkpoint.pt"  # only while the fold trains
PREDICTIONS = ("ids", "probs")  # the arrays in oof.npz and test.npz
# the states a manifest's status holds: "training" from before the first fold, "complete" after the last
STATUSES = ("training", "complete")


class Record(BaseModel):
    # keys a newer kit adds are ignored, so that an older kit still reads its store
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class PredictInfo(Record):
    """What kit predict needs to rebuild the network and feed it new images exactly as in training."""

    params: dict
    channels: int
    decoded_size: list[int]
    mean: list[float]
    std: list[float]
    precision: str = "auto"  # not recorded before kit predict learnt it: automatic


class Manifest(Record):
    """model.json: what a model was trained on and how, so that blending can check its members line up.

    Fields are in the order model.json has always listed them; those with a default are ones an
    older kit (or a synthetic store) did not write, and None ones are left out of the file."""

    name: str
    competition: str
    arch: str
    status: str  # "training" until every (seed, fold) is done, then "complete"
    recipe_hash: str | None = None  # synthetic stores have no recipe
    data_fingerprint: str
    folds_file: str  # relative to the competition's folder
    folds_hash: str
    n_folds: int
    seeds: list[int]
    classes: list[str]
    test_ids_hash: str
    image_size: int | None = None
    tta: str | dict = "none"  # models trained before TTA predicted plainly
    predict: PredictInfo | None = None  # models trained before kit predict cannot predict new images
    kit_version: str | None = None
    created: str | None = None
    finished: str | None = None
    cv: dict[str, float] | None = None  # the headline metrics, once every fold is done

    @property
    def complete(self) -> bool:
        return self.status == "complete"


def read_manifest(model_dir: Path) -> Manifest:
    path = Path(model_dir) / MANIFEST
    try:
        return Manifest.model_validate(read_json(path))
    except ValidationError as exc:
        raise StoreError(format_validation_error(str(path), Manifest, exc) + "; retrain the model with --force") from None


def write_manifest(model_dir: Path, manifest: Manifest) -> None:
    fileio.write_json(Path(model_dir) / MANIFEST, manifest.model_dump(exclude_none=True))


@dataclass
class Member:
    """One model's predictions, assembled across its folds (and averaged over its seeds)."""

    name: str
    manifest: Manifest
    oof: np.ndarray  # rows in the folds' id order x classes
    test: np.ndarray  # rows in test_ids order x classes
    test_ids: np.ndarray

    @property
    def classes(self) -> list[str]:
        return self.manifest.classes


class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ---- layout
    def competition_dir(self, competition: str) -> Path:
        return self.root / competition

    def model_dir(self, competition: str, model: str) -> Path:
        return self.root / competition / "models" / model

    def fold_dir(self, competition: str, model: str, seed: int, fold: int) -> Path:
        return self.model_dir(competition, model) / fold_subdir(seed, fold)

    def lock_path(self, competition: str, model: str) -> Path:
        """Held by the kit process training `model` (kit/lock.py)."""
        return model_lock(self.model_dir(competition, model))

    def sample_submission(self, competition: str) -> Path:
        return self.competition_dir(competition) / "sample_submission.csv"

    def keep_sample_submission(self, competition: str, source: Path) -> None:
        """A copy of the competition's sample submission, so that blending needs nothing but the store."""
        target = self.sample_submission(competition)
        data = Path(source).read_bytes()
        if not target.is_file() or target.read_bytes() != data:
            fileio.write_bytes(target, data)

    def classes(self, competition: str) -> list[str]:
        """The competition's classes as its models recorded them."""
        for name in self.model_names(competition):
            return self.manifest(competition, name).classes
        raise StoreError(f"{self.competition_dir(competition)}: no model yet, so its classes are unknown; "
                         f"train one first or name the competition file")

    # ---- listing
    def competitions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "models").is_dir())

    def model_names(self, competition: str) -> list[str]:
        models = self.competition_dir(competition) / "models"
        if not models.is_dir():
            return []
        return sorted(p.name for p in models.iterdir() if (p / MANIFEST).is_file())

    def has_manifest(self, competition: str, model: str) -> bool:
        return (self.model_dir(competition, model) / MANIFEST).is_file()

    def manifest(self, competition: str, model: str) -> Manifest:
        if not self.has_manifest(competition, model):
            known = self.model_names(competition)
            raise StoreError(f"{self.root}: no model '{model}' in competition '{competition}'"
                             f"{did_you_mean(model, known)}; models: {', '.join(known) or 'none yet (run kit train)'}")
        return read_manifest(self.model_dir(competition, model))

    def write_manifest(self, manifest: Manifest) -> None:
        write_manifest(self.model_dir(manifest.competition, manifest.name), manifest)

    # ---- a fold's files
    def is_fold_done(self, competition: str, model: str, seed: int, fold: int) -> bool:
        return is_fold_done(self.fold_dir(competition, model, seed, fold))

    def write_fold(self, competition: str, model: str, seed: int, fold: int, *, oof_ids: np.ndarray,
                   oof: np.ndarray, test_ids: np.ndarray, test: np.ndarray, record: dict,
                   history: list[dict] | None = None, weights: bytes | None = None) -> Path:
        """One (seed, fold)'s files in FOLD_FILES' order, so that fold.json, written last, says the rest are whole.

        `weights`: the serialised state dict (the store never imports torch); `history` (one dict
        per epoch) and `weights` are absent from synthetic stores, which only blend."""
        d = self.fold_dir(competition, model, seed, fold)
        fileio.write_npz(d / OOF, ids=oof_ids, probs=oof)
        fileio.write_npz(d / TEST, ids=test_ids, probs=test)
        if history is not None:
            fileio.write_csv(d / HISTORY, pd.DataFrame(history))
        if weights is not None:
            fileio.write_bytes(d / WEIGHTS, weights)
        fileio.write_json(d / DONE, record)
        return d

    def weights_files(self, manifest: Manifest) -> list[Path]:
        return weights_files(self.model_dir(manifest.competition, manifest.name), manifest)

    def pick_competition(self, competition: str | None, *, models: list[str] | None = None,
                         columns: list[str] | None = None) -> str:
        """The competition asked for (its name, or a competition .yaml file, whose `name` counts), else
        the only one that fits: the only one the store holds, or the only one with a model matching
        each of `models` (names or globs) and whose sample submission has the submission's `columns`."""
        known = self.competitions()
        if competition and competition.endswith((".yaml", ".yml")):
            from .competition import resolve_competition

            competition = resolve_competition(competition, "--competition").name
        if competition:
            if competition not in known:
                raise StoreError(f"{self.root}: no competition '{competition}'{did_you_mean(competition, known)}; "
                                 f"the store holds: {', '.join(known) or 'nothing yet (run kit train)'}")
            return competition
        if len(known) == 1:
            return known[0]
        if not known:
            raise StoreError(f"{self.root}: the store is empty; train a model first (kit train RECIPE)")
        fits = self.fitting_competitions(models, columns)
        if len(fits) == 1:
            return fits[0]
        clues = [clue for clue, given in ((f"--models {' '.join(models or [])}", models),
                                          (f"the submission's columns {','.join(columns or [])}", columns)) if given]
        fit = (f"; {' and '.join(clues)} fit {'none of them' if not fits else ', '.join(fits)}" if clues else "")
        raise StoreError(f"{self.root}: the store holds several competitions ({', '.join(known)}){fit}; "
                         f"choose one with --competition")

    def fitting_competitions(self, models: list[str] | None = None, columns: list[str] | None = None) -> list[str]:
        """The store's competitions with a model matching each of `models` (names or globs) and whose
        sample submission's header is `columns`; a clue that is None narrows nothing."""
        fits = self.competitions()
        if models:
            fits = [c for c in fits
                    if all(any(fnmatch.fnmatchcase(m, p) for m in self.model_names(c)) for p in models)]
        if columns is not None:
            fits = [c for c in fits if read_header(self.sample_submission(c)) == columns]
        return fits

    def competition_spec(self, competition: str):
        """The CompetitionSpec its models were trained on, as their stored recipe.yaml records it."""
        from .competition import resolve_competition

        for name in self.model_names(competition):
            path = self.model_dir(competition, name) / "recipe.yaml"
            if path.is_file():
                import yaml

                try:
                    entry = yaml.safe_load(path.read_text(encoding="utf-8"))["competition"]
                except (OSError, yaml.YAMLError, TypeError, KeyError):
                    continue  # another model's copy may be whole
                return resolve_competition(entry, str(path))
        raise StoreError(f"{self.competition_dir(competition)}: no model records competition '{competition}''s "
                         f"files (recipe.yaml); name its competition file with --competition")

    # ---- reading predictions
    def folds(self, manifest: Manifest) -> Folds:
        return read_folds(self.competition_dir(manifest.competition) / manifest.folds_file)

    def load_member(self, competition: str, model: str, seeds: list[int] | None = None) -> Member:
        """A finished model's OOF (aligned to its folds' ids) and test probabilities, averaged over
        its seeds (all of them, or just `seeds`)."""
        manifest = self.manifest(competition, model)
        check_complete(manifest, self.model_dir(competition, model))
        return self.assemble(manifest, seeds=seeds)

    def assemble(self, manifest: Manifest, seeds: list[int] | None = None) -> Member:
        """Stitch a model's per-fold files together (all its seeds averaged, or just `seeds`)."""
        competition, model = manifest.competition, manifest.name
        folds = self.folds(manifest)
        if folds.hash != manifest.folds_hash:
            raise StoreError(f"{folds.path}: the folds changed since '{model}' was trained "
                             f"(hash {folds.hash}, model recorded {manifest.folds_hash})")
        row_of = {id_: i for i, id_ in enumerate(folds.ids)}
        n_classes = len(manifest.classes)
        oof_runs, test_runs, test_ids = [], [], None
        for seed in seeds or manifest.seeds:
            oof = np.full((len(folds.ids), n_classes), np.nan, dtype=np.float32)
            for k in range(folds.n_folds):
                d = self.fold_dir(competition, model, seed, k)
                fold_oof = read_npz(d / OOF, PREDICTIONS)
                fold_test = read_npz(d / TEST, PREDICTIONS)
                rows = [row_of.get(i, -1) for i in fold_oof["ids"]]
                expected = set(np.flatnonzero(folds.fold == k))
                if -1 in rows or set(rows) != expected or fold_oof["probs"].shape != (len(rows), n_classes):
                    raise StoreError(f"{d / OOF}: its rows are not fold {k}'s held-out images; retrain with --force")
                oof[rows] = fold_oof["probs"]
                if test_ids is None:
                    test_ids = fold_test["ids"]
                elif not np.array_equal(test_ids, fold_test["ids"]):
                    raise StoreError(f"{d / TEST}: its test ids differ from fold 0's; retrain with --force")
                test_runs.append(fold_test["probs"])
            oof_runs.append(oof)
        return Member(name=model, manifest=manifest, oof=np.mean(oof_runs, axis=0),
                      test=np.mean(test_runs, axis=0), test_ids=test_ids)


def fold_subdir(seed: int, fold: int) -> str:
    return f"seed{seed}/fold{fold}"


def model_lock(model_dir: Path) -> Path:
    model_dir = Path(model_dir)
    return model_dir.parent.parent / "locks" / f"{model_dir.name}.lock"


def is_fold_done(fold_dir: Path) -> bool:
    return all((Path(fold_dir) / f).is_file() for f in (DONE, OOF, TEST))


def weights_files(model_dir: Path, manifest: Manifest) -> list[Path]:
    """Every (seed, fold)'s best weights in a model's folder (in the store or copied out of it), each
    checked present."""
    paths = [Path(model_dir) / fold_subdir(s, k) / WEIGHTS for s in manifest.seeds for k in range(manifest.n_folds)]
    for path in paths:
        if not path.is_file():
            raise StoreError(f"{path}: missing; retrain the model with --force")
    return paths


def why_unfinished(model_dir: Path, manifest: Manifest) -> str | None:
    """None for a finished model; else what state it is in and what to do, per state: being trained
    (a kit process holds its lock: kit train would be refused, so wait), stopped part-way (kit train
    again finishes it), or a status kit never writes (retrain it)."""
    if manifest.complete:
        return None
    if manifest.status not in STATUSES:
        return (f"has status {manifest.status!r} in its {MANIFEST}, which is not one of {', '.join(STATUSES)}; "
                f"retrain it with kit train --force")
    trainer = holder(model_lock(model_dir))
    if trainer:
        return f"is being trained now (by {trainer}); wait for that run to finish, then run this again"
    runs = [(s, k) for s in manifest.seeds for k in range(manifest.n_folds)]
    done = sum(is_fold_done(Path(model_dir) / fold_subdir(s, k)) for s, k in runs)
    return (f"is not finished: its training stopped after {done} of {len(runs)} (seed, fold) runs; "
            f"run kit train on its recipe again to finish it")


def check_complete(manifest: Manifest, model_dir: Path) -> None:
    unfinished = why_unfinished(model_dir, manifest)
    if unfinished:
        raise StoreError(f"{model_dir}: model '{manifest.name}' {unfinished}")


def read_header(path: Path) -> list[str] | None:
    """A CSV's column names, or None when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: damaged or unreadable ({type(exc).__name__}); retrain the model with --force") from None


def read_npz(path: Path, keys: tuple[str, ...]) -> dict:
    if not path.is_file():
        raise StoreError(f"{path}: missing; retrain the model with --force (or run kit train again to fill the gap)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in keys}
    except Exception as exc:  # zip, pickle, key and shape errors all mean the same thing here
        raise StoreError(f"{path}: damaged ({type(exc).__name__}: {exc}); retrain the model with --force") from None


def verify_model(model_dir: Path) -> list[str]:
    """Problems with the files a model folder holds right now ([] when every file is whole).

    A run may stop at any moment, so a fold folder may lack files; but every file that exists
    must read back whole, and a fold marked done (fold.json) must have all its files."""
    import torch

    problems = []

    def readable(path: Path, load) -> None:
        try:
            load(path)
        except StoreError as exc:  # read as blending reads it: its message names the file and the cause
            problems.append(str(exc))
        except Exception as exc:  # what matters is only that it does not read back
            problems.append(f"{path}: unreadable ({type(exc).__name__})")

    for path in sorted(Path(model_dir).rglob("*")):
        if not path.is_file():
            continue
        if path.name.endswith(".tmp"):
            continue  # a temporary file a killed writer left; never read, replaced on the next write
        if path.suffix == ".json":
            readable(path, read_json)
        elif path.suffix == ".npz":
            readable(path, lambda p: read_npz(p, PREDICTIONS))  # the store's .npz files: oof, test
        elif path.suffix == ".pt":
            readable(path, lambda p: torch.load(p, map_location="cpu", weights_only=False))
        elif path.suffix in (".csv", ".yaml"):
            readable(path, lambda p: p.read_text(encoding="utf-8"))
    for done in Path(model_dir).rglob(DONE):
        for name in FOLD_FILES[:-1]:
            if not (done.parent / name).is_file():
                problems.append(f"{done.parent}: marked done but {name} is missing")
    return problems
