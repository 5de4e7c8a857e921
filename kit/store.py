"""The prediction store: plain files, one folder per model, readable without kit.

    store/<competition>/
      sample_submission.csv               a copy of the competition's, for writing submissions
      locks/<model>.lock                  held by the kit process training <model> (from its plan to its finish)
      locks/<model>/seed<s>/fold<k>.lock  held by the process running that job, on whichever node
      folds/k5-seed42.csv                 id, label, fold
      models/<model>/
        model.json                        manifest: recipe hash, folds hash, data fingerprint, classes, status
                                          (a re-predicted member: derived_from, its source and the views)
        recipe.yaml                       the resolved recipe
        metrics.json                      CV metrics, once every fold is done
        seed<s>/fold<k>/
          oof.npz                         ids, probs   (the held-out fold's rows)
          test.npz                        ids, probs   (every test image)
          history.csv                     per-epoch losses, accuracies, lr, seconds
          weights.pt                      the best epoch's state dict
          checkpoint.pt                   while the fold trains: the state after the last epoch
          fold.json                       written last: the fold is done, and each file's size and sha256
        seed<s>/full/                     kit train --full: the recipe refit on every training image
          test.npz, history.csv, weights.pt, fold.json   (no oof.npz: no row was held out)
      tune/<recipe>/                      kit tune's study of a recipe (kit/tune, docs/tuning.md); its trials
        study.journal                     are models of their own: models/<recipe>-t<n>/
        trials.csv  best.yaml  summary.md  history.png  importances.png
        locks/study.lock  locks/t<n>.lock held while a process asks for a trial / runs trial n
      blends/<submission>-<hash>.json     each blend kit blend wrote: its submission, its page, its scores
                                          (kit report links the pages; nothing else reads them)
      tensorboard/<model>/seed<s>/fold<k>/   train.log: tensorboard's event files, per epoch as a fold trains

Every file is written atomically (fileio), so a killed run leaves whole files or none. A member
re-predicted from another's weights (kit/repredict.py) has only oof.npz, test.npz and fold.json per
fold: its weights are its source's, checked by the sha256 its manifest recorded; it is built in a
hidden staging folder beside the models and renamed into place whole (publish_model).
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from . import fileio
from .errors import StoreError, did_you_mean, reason
from .folds import Folds, read_folds
from .lock import holder
from .schema import format_validation_error

MANIFEST = "model.json"
SAMPLE_SUBMISSION = "sample_submission.csv"  # the competition's, copied into its folder of the store
#: a finished fold's files, in the order they are written: fold.json last, as the 'done' mark
FOLD_FILES = ("oof.npz", "test.npz", "history.csv", "weights.pt", "fold.json")
OOF, TEST, HISTORY, WEIGHTS, DONE = FOLD_FILES
PREDICTION_FILES = (OOF, TEST)
CHECKPOINT = "checkpoint.pt"  # only while the fold trains
RECIPE = "recipe.yaml"  # the resolved recipe, beside model.json
BLENDS = "blends"  # <competition>/blends/: one small record per blend written (kit report's links)
TENSORBOARD = "tensorboard"  # <competition>/tensorboard/<model>/<run>/: event files (train.log: tensorboard)
PREDICTIONS = ("ids", "probs")  # the arrays in oof.npz and test.npz
# the states a manifest's status holds: "training" from before the first fold, "complete" after the last
STATUSES = ("training", "complete")
#: how far a row of probabilities may sum from 1 (float32 softmax, averaged over TTA views and seeds,
#: is off by about 1e-6) and a probability may lie outside [0, 1]
PROBABILITY_TOLERANCE = 1e-3
#: kit tune's files in tune/<recipe>/: Optuna's journal of the study (JSON lines), a table of the trials, the
#: best trial's recipe, the summary and its plots
STUDY, TRIALS, BEST_RECIPE, TUNE_SUMMARY, HISTORY_PLOT, IMPORTANCE_PLOT = (
    "study.journal", "trials.csv", "best.yaml", "summary.md", "history.png", "importances.png")


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
    # the embeddings mode's head (kit/models/heads.py): the folds' weights are that head's alone, on the
    # features of the recipe's backbone; None: the weights are the whole network
    head: str | None = None


class DerivedFrom(Record):
    """A member re-predicted from another model's stored weights (kit repredict): what it came from.

    Its folds hold no weights.pt: the weights are the source's, in the source's folder, each checked
    against the sha256 recorded here before it is used (kit predict, a later re-predict)."""

    source: str  # the trained model whose weights made the predictions (never itself a derived member)
    source_manifest_sha256: str  # the source's model.json, byte for byte, when the member was made
    source_recipe_hash: str | None = None
    tta: str | dict  # the views the member was predicted with, as Manifest.tta records them
    weights: dict[str, str]  # 'seed0/fold1' -> sha256 of the source's weights.pt that predicted that fold
    weights_in: str = "source"  # where the weights are: the source's fold folders (not copied)


class TeacherRecord(Record):
    """A student's teacher (kit/teacher.py): what it learnt from, so that a changed teacher is noticed."""

    members: dict[str, str]  # member -> sha256 over its model.json and fold.json files (member_fingerprint)
    method: str  # the blender that combined them


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
    n_folds: Annotated[StrictInt, Field(ge=2)]
    seeds: Annotated[list[StrictInt], Field(min_length=1)]
    classes: Annotated[list[str], Field(min_length=1)]
    test_ids_hash: str
    image_size: int | None = None
    tta: str | dict = "none"  # models trained before TTA predicted plainly
    predict: PredictInfo | None = None  # models trained before kit predict cannot predict new images
    kit_version: str | None = None
    created: str | None = None
    finished: str | None = None
    # the headline metrics, once every fold is done; a NaN is a failed run, never a score
    cv: dict[str, Annotated[float, Field(allow_inf_nan=False)]] | None = None
    derived_from: DerivedFrom | None = None  # None: the model was trained (kit train), not re-predicted
    teacher: TeacherRecord | None = None  # a student's teacher (a recipe's teacher:); None: none

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

    def tune_dir(self, competition: str, recipe: str) -> Path:
        """kit tune's study of `recipe` (its trials are the models trial_name names)."""
        return self.root / competition / "tune" / recipe

    def tune_lock(self, competition: str, recipe: str, trial: int | None = None) -> Path:
        """Held briefly by a process asking the study for a trial; with `trial`, held by the process running it."""
        return self.tune_dir(competition, recipe) / "locks" / ("study.lock" if trial is None else f"t{trial}.lock")

    def lock_path(self, competition: str, model: str) -> Path:
        """Held by the kit process training `model` (kit/lock.py)."""
        return model_lock(self.model_dir(competition, model))

    def job_lock_path(self, competition: str, model: str, seed: int, fold: int) -> Path:
        """Held by the process training one (seed, fold) of `model`, wherever it runs (kit/train/executors.py)."""
        return model_lock(self.model_dir(competition, model)).with_suffix("") / f"{fold_subdir(seed, fold)}.lock"

    def sample_submission(self, competition: str) -> Path:
        return self.competition_dir(competition) / SAMPLE_SUBMISSION

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
        # a hidden folder is a member being built (staging_dir), never a model: names start with a letter or digit
        return sorted(p.name for p in models.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file())

    def has_manifest(self, competition: str, model: str) -> bool:
        return (self.model_dir(competition, model) / MANIFEST).is_file()

    def manifest(self, competition: str, model: str) -> Manifest:
        if not self.has_manifest(competition, model):
            known = self.model_names(competition)
            raise StoreError(f"{self.root}: no model '{model}' in competition '{competition}'"
                             f"{did_you_mean(model, known)}; models: {', '.join(known) or 'none yet (run kit train)'}")
        manifest = read_manifest(self.model_dir(competition, model))
        path = self.model_dir(competition, model) / MANIFEST
        if manifest.competition != competition:
            raise StoreError(f"{path}: a model of competition '{manifest.competition}', not of '{competition}' whose "
                             f"folder holds it (copied from another competition?); its predictions are of "
                             f"'{manifest.competition}''s images: move it to {self.competition_dir(manifest.competition)}/models/")
        if manifest.name != model:
            raise StoreError(f"{path}: name '{manifest.name}', but its folder is '{model}' (copied or renamed?); "
                             f"rename the folder back to '{manifest.name}', or set name: '{model}' in the file")
        return manifest

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
        return write_fold_files(self.fold_dir(competition, model, seed, fold), oof_ids=oof_ids, oof=oof,
                                test_ids=test_ids, test=test, record=record, history=history, weights=weights)

    # ---- the refit on all the training images (kit train --full)
    def full_dir(self, competition: str, model: str, seed: int) -> Path:
        return self.model_dir(competition, model) / full_subdir(seed)

    def write_full(self, competition: str, model: str, seed: int, *, test_ids: np.ndarray, test: np.ndarray,
                   record: dict, history: list[dict], weights: bytes) -> Path:
        """A seed's full-data refit: a fold's files without oof.npz, fold.json last as for a fold."""
        return write_fold_files(self.full_dir(competition, model, seed), test_ids=test_ids, test=test,
                                record=record, history=history, weights=weights)

    def full_seeds(self, manifest: Manifest) -> list[int]:
        """The seeds of a model whose full-data refit is finished (each checked as a done fold is)."""
        return [s for s in manifest.seeds if is_fold_done(self.full_dir(manifest.competition, manifest.name, s))]

    def full_test(self, manifest: Manifest, seeds: list[int] | None = None) -> tuple[np.ndarray, list[dict]] | None:
        """The full-data refits' test probabilities averaged over `seeds` (default: the manifest's),
        and their fold.json records; None unless every one of those seeds has a finished refit."""
        seeds = seeds or manifest.seeds
        if any(s not in self.full_seeds(manifest) for s in seeds):
            return None
        runs, records = [], []
        for s in seeds:
            d = self.full_dir(manifest.competition, manifest.name, s)
            check_fold(d, hashed=(TEST,))
            predictions = read_predictions(d / TEST, len(manifest.classes))
            if fileio.array_hash(predictions["ids"]) != manifest.test_ids_hash:
                raise StoreError(f"{d / TEST}: its test ids are not the ones '{manifest.name}' recorded in its "
                                 f"{MANIFEST}; delete {full_subdir(s)} and run kit train --full again")
            runs.append(predictions["probs"])
            records.append(read_json(d / DONE))
        return np.mean(runs, axis=0), records

    def staging_dir(self, competition: str, model: str) -> Path:
        """A new hidden folder beside the models where `model` is built whole before publish_model renames
        it into place: no reader sees a member half made, and a killed run leaves only a hidden folder."""
        models = self.competition_dir(competition) / "models"
        try:
            models.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=f".{model}.", suffix=".tmp", dir=models))
        except OSError as exc:
            raise fileio.write_error(models, exc) from None

    def publish_model(self, staging: Path, competition: str, model: str) -> Path:
        """Rename a staged model folder into place, replacing the model of that name if there is one
        (moved aside first, and removed only once the new one is in place)."""
        target = self.model_dir(competition, model)
        old = None
        try:
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{model}.old.", suffix=".tmp", dir=target.parent))
                os.replace(target, old / model)
            os.replace(staging, target)
        except OSError as exc:
            if old is not None and (old / model).exists() and not target.exists():
                os.replace(old / model, target)  # the old model back where it was
            raise fileio.write_error(target, exc) from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return target

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
        from .errors import RecipeError
        from .schema import read_yaml

        for name in self.model_names(competition):
            path = self.model_dir(competition, name) / RECIPE
            if path.is_file():
                try:  # read as kit reads every recipe: duplicate keys, bad bytes and alias bombs refused
                    entry = read_yaml(path)["competition"]
                except (OSError, RecipeError, TypeError, KeyError):
                    continue  # another model's copy may be whole
                return resolve_competition(entry, str(path))
        raise StoreError(f"{self.competition_dir(competition)}: no model records competition '{competition}''s "
                         f"files (recipe.yaml); name its competition file with --competition")

    # ---- what the report reads besides predictions: histories, fold records, recipes, blends
    def done_runs(self, manifest: Manifest) -> list[tuple[int, int]]:
        """The (seed, fold) runs of a model that are finished (fold.json present, files checked by size)."""
        return [(s, k) for s in manifest.seeds for k in range(manifest.n_folds)
                if self.is_fold_done(manifest.competition, manifest.name, s, k)]

    def fold_record(self, manifest: Manifest, seed: int, fold: int) -> dict | None:
        """A finished fold's fold.json (best epoch, its val loss and accuracy, seconds, TTA...); None if unfinished."""
        path = self.fold_dir(manifest.competition, manifest.name, seed, fold) / DONE
        return read_json(path) if path.is_file() else None

    def history(self, manifest: Manifest, seed: int, fold: int) -> pd.DataFrame | None:
        """A fold's history.csv (one row per epoch: epoch, train_loss, train_acc, val_loss, val_acc, lr,
        seconds); None when the fold has none (a re-predicted or synthetic member, an unfinished fold)."""
        path = self.fold_dir(manifest.competition, manifest.name, seed, fold) / HISTORY
        if not path.is_file():
            return None
        try:
            return pd.read_csv(path)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise StoreError(f"{path}: damaged or unreadable ({type(exc).__name__}); {retrain_fold(path.parent)}") from None

    def recipe_text(self, competition: str, model: str) -> str | None:
        """The model's resolved recipe.yaml as written; None when it has none (a synthetic store)."""
        path = self.model_dir(competition, model) / RECIPE
        try:
            return path.read_text(encoding="utf-8") if path.is_file() else None
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"{path}: unreadable ({type(exc).__name__})") from None

    def tensorboard_dir(self, competition: str, model: str, run: str) -> Path:
        """Where train.log: tensorboard writes a run's event files; `run` is 'seed0/fold1' or 'seed0/full'.
        One folder for the competition, so that `tensorboard --logdir store/<competition>/tensorboard` shows
        every model and fold side by side."""
        return self.competition_dir(competition) / TENSORBOARD / model / run

    def record_blend(self, competition: str, submission: Path, record: dict) -> Path:
        """Note a written blend (its submission, its page and scores) so that kit report can link it; one
        file per submission path, replaced when that submission is written again."""
        resolved = Path(submission).resolve()
        key = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
        path = self.competition_dir(competition) / BLENDS / f"{resolved.stem}-{key}.json"
        fileio.write_json(path, {"submission": str(resolved), **record})
        return path

    def blend_records(self, competition: str) -> list[dict]:
        """Every blend noted by record_blend, oldest first; unreadable records are skipped (they only link)."""
        folder = self.competition_dir(competition) / BLENDS
        records = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and isinstance(record.get("submission"), str):
                records.append(record)
        return sorted(records, key=lambda r: str(r.get("written", "")))

    # ---- reading predictions
    def folds(self, manifest: Manifest) -> Folds:
        return read_folds(self.competition_dir(manifest.competition) / manifest.folds_file)

    def load_member(self, competition: str, model: str, seeds: list[int] | None = None,
                    folds: list[int] | None = None) -> Member:
        """A finished model's OOF (aligned to its folds' ids) and test probabilities, averaged over
        its seeds (all of them, or just `seeds`). With `folds`, only those folds must be finished and
        are read: the other folds' OOF rows are NaN, the test probabilities those folds' mean."""
        manifest = self.manifest(competition, model)
        check_complete(manifest, self.model_dir(competition, model), folds)
        return self.assemble(manifest, seeds=seeds, folds=folds)

    def assemble(self, manifest: Manifest, seeds: list[int] | None = None, folds: list[int] | None = None,
                 with_test: bool = True) -> Member:
        """Stitch a model's per-fold files together (all its seeds averaged, or just `seeds`; every fold,
        or just `folds`), each fold's files checked against its done mark and its probabilities checked
        (read_predictions). `with_test` False: the OOF alone (a report's scores), test.npz neither read
        nor hashed, and the Member's test and test_ids None."""
        competition, model, only_folds = manifest.competition, manifest.name, folds
        folds = self.folds(manifest)
        if folds.hash != manifest.folds_hash:
            raise StoreError(f"{folds.path}: the folds changed since '{model}' was trained "
                             f"(hash {folds.hash}, model recorded {manifest.folds_hash}); restore the file, "
                             f"or retrain the model with --force")
        check_folds_fit(manifest, folds, self.model_dir(competition, model) / MANIFEST)
        row_of = {id_: i for i, id_ in enumerate(folds.ids)}
        n_classes = len(manifest.classes)
        oof_runs, test_runs, test_ids = [], [], None
        for seed in seeds or manifest.seeds:
            oof = np.full((len(folds.ids), n_classes), np.nan, dtype=np.float32)
            for k in (range(folds.n_folds) if only_folds is None else only_folds):
                d = self.fold_dir(competition, model, seed, k)
                if (d / DONE).is_file():  # the files it finished with: the predictions by their sha256
                    check_fold(d, hashed=PREDICTION_FILES if with_test else (OOF,))
                fold_oof = read_predictions(d / OOF, n_classes)
                oof[held_out_rows(d / OOF, fold_oof["ids"], folds, k, row_of)] = fold_oof["probs"]
                if not with_test:
                    continue
                fold_test = read_predictions(d / TEST, n_classes)
                if test_ids is None:
                    test_ids = fold_test["ids"]
                    if fileio.array_hash(test_ids) != manifest.test_ids_hash:
                        raise StoreError(f"{d / TEST}: its test ids are not the ones '{model}' recorded in its "
                                         f"{MANIFEST} (other ids, or in another order); {retrain_fold(d)}")
                elif not np.array_equal(test_ids, fold_test["ids"]):
                    raise StoreError(f"{d / TEST}: its test ids differ from fold 0's (other ids, or in another "
                                     f"order); {retrain_fold(d)}")
                test_runs.append(fold_test["probs"])
            oof_runs.append(oof)
        return Member(name=model, manifest=manifest, oof=np.mean(oof_runs, axis=0),
                      test=np.mean(test_runs, axis=0) if with_test else None, test_ids=test_ids)


def write_fold_files(fold_dir: Path, *, test_ids: np.ndarray, test: np.ndarray, record: dict,
                     oof_ids: np.ndarray | None = None, oof: np.ndarray | None = None,
                     history: list[dict] | None = None, weights: bytes | None = None) -> Path:
    """Store.write_fold into any fold folder (a staged member's, a full refit's without `oof`): the files in
    FOLD_FILES' order, fold.json last with each file's size and sha256, so whoever finds it finds the rest whole."""
    d = Path(fold_dir)
    contents = {} if oof is None else {OOF: npz_bytes(ids=oof_ids, probs=oof)}
    contents[TEST] = npz_bytes(ids=test_ids, probs=test)
    if history is not None:
        contents[HISTORY] = pd.DataFrame(history).to_csv(index=False).encode("utf-8")
    if weights is not None:
        contents[WEIGHTS] = weights
    for name, data in contents.items():
        fileio.write_bytes(d / name, data)
    # what the done mark vouches for: checked (by size) before a finished fold is skipped or read
    files = {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()} for name, data in contents.items()}
    fileio.write_json(d / DONE, {**record, "files": files})
    return d


def check_folds_fit(manifest: Manifest, folds: Folds, manifest_path: Path) -> None:
    """The manifest's fold count and classes are those of the folds it was trained on."""
    if manifest.n_folds != folds.n_folds:
        raise StoreError(f"{manifest_path}: n_folds {manifest.n_folds}, but its folds file {folds.path} has "
                         f"{folds.n_folds} folds; retrain the model with --force")
    unknown = sorted(set(folds.labels) - set(manifest.classes))
    if unknown:
        raise StoreError(f"{manifest_path}: classes {manifest.classes} lack '{unknown[0]}', a label in its folds "
                         f"file {folds.path}; retrain the model with --force")


def held_out_rows(path: Path, ids: np.ndarray, folds: Folds, k: int, row_of: dict) -> list[int]:
    """The folds' row of each of a fold's OOF ids, which must be fold k's held-out images, each once
    (read_predictions has refused repeated ids)."""
    rows = [row_of.get(i, -1) for i in ids]
    if -1 in rows:
        raise StoreError(f"{path}: id '{ids[rows.index(-1)]}' is not a training image of its folds file "
                         f"({folds.path}); {retrain_fold(path.parent)}")
    elsewhere = next((r for r in rows if folds.fold[r] != k), None)
    if elsewhere is not None:
        raise StoreError(f"{path}: id '{folds.ids[elsewhere]}' is held out in fold {folds.fold[elsewhere]}, "
                         f"not fold {k}; {retrain_fold(path.parent)}")
    expected = np.flatnonzero(folds.fold == k)
    if len(rows) != len(expected):
        missing = sorted(set(expected) - set(rows))
        raise StoreError(f"{path}: {len(rows)} rows for fold {k}'s {len(expected)} held-out images"
                         + (f" ('{folds.ids[missing[0]]}' has none)" if missing else "")
                         + f"; {retrain_fold(path.parent)}")
    return rows


def trial_name(recipe: str, number: int) -> str:
    """The model of trial `number` of kit tune's study of `recipe`."""
    return f"{recipe}-t{number}"


def fold_subdir(seed: int, fold: int) -> str:
    return f"seed{seed}/fold{fold}"


def full_subdir(seed: int) -> str:
    return f"seed{seed}/full"


def sample_submission_beside(model_dir: Path) -> Path:
    """The copy of the competition's sample submission in the store a model's folder lies in."""
    return Path(model_dir).parent.parent / SAMPLE_SUBMISSION


def model_lock(model_dir: Path) -> Path:
    model_dir = Path(model_dir)
    return model_dir.parent.parent / "locks" / f"{model_dir.name}.lock"


def retrain_fold(fold_dir: Path) -> str:
    """What to do about a fold whose files are not what kit wrote: retrain that fold alone, or the model."""
    fold_dir = Path(fold_dir)
    if fold_dir.name == "full":
        return f"delete {fold_dir.parent.name}/full and run kit train --full on the model's recipe again to refit it"
    return (f"delete {fold_dir.parent.name}/{fold_dir.name} and run kit train on the model's recipe again to "
            f"retrain that fold (or retrain the model with --force)")


def is_fold_done(fold_dir: Path) -> bool:
    """Whether the fold has its done mark (fold.json); a done fold whose files are not the ones it
    finished with is refused (check_fold) rather than skipped or read."""
    if not (Path(fold_dir) / DONE).is_file():
        return False
    check_fold(fold_dir)
    return True


def check_fold(fold_dir: Path, hashed: tuple[str, ...] = ()) -> None:
    """A done fold's files as its fold.json recorded them: each present and of its size, and those
    `hashed` of its sha256 too (what is read whole anyway: a cheap check for what is only skipped). A fold.json of an older kit, which recorded neither, vouches for oof.npz and test.npz
    being present; every archive (.npz, .pt) must end in a whole zip directory."""
    fold_dir = Path(fold_dir)
    record = read_json(fold_dir / DONE)
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict):
        files = {name: {} for name in (OOF, TEST, WEIGHTS) if name != WEIGHTS or (fold_dir / name).is_file()}
    for name, expected in files.items():
        path = fold_dir / name
        expected = expected if isinstance(expected, dict) else {}
        if not path.is_file():
            raise StoreError(f"{path}: missing, though {DONE} marks the fold done; {retrain_fold(fold_dir)}")
        size = path.stat().st_size
        if expected.get("bytes") not in (None, size):
            raise StoreError(f"{path}: {size} bytes, but {DONE} recorded {expected['bytes']} when the fold finished "
                             f"(truncated or replaced); {retrain_fold(fold_dir)}")
        if name in hashed and expected.get("sha256") not in (None, sha256_of(path)):
            raise StoreError(f"{path}: its content changed since the fold finished (its sha256 is not the one "
                             f"{DONE} recorded); {retrain_fold(fold_dir)}")
        if path.suffix in (".npz", ".pt"):
            try:
                with zipfile.ZipFile(path):  # reads the directory at the archive's end: a cut file has none
                    pass
            except (zipfile.BadZipFile, OSError) as exc:
                raise StoreError(f"{path}: damaged ({reason(exc)}); {retrain_fold(fold_dir)}") from None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def weights_files(model_dir: Path, manifest: Manifest, hashed: bool = False,
                  runs: list[str] | None = None) -> list[Path]:
    """Every (seed, fold)'s best weights in a model's folder (in the store or copied out of it), each
    checked present, and with `hashed` its sha256 checked against its fold.json. A derived member's
    are its source's (in the sibling folder), each checked against the sha256 the member recorded.
    `runs`: only these ('seed0/fold1', 'seed0/full'), in this order (an inference bundle's members)."""
    derived = manifest.derived_from
    weights_dir = Path(model_dir) if derived is None else Path(model_dir).parent / derived.source
    if runs is None:
        runs = [fold_subdir(s, k) for s in manifest.seeds for k in range(manifest.n_folds)]
    paths = [weights_dir / run / WEIGHTS for run in runs]
    for path in paths:
        if not path.is_file():
            if derived is not None:
                raise StoreError(f"{path}: missing: the weights of '{derived.source}', from which '{manifest.name}' "
                                 f"was re-predicted (its folds hold none of their own); restore the source, or "
                                 f"retrain it and run kit repredict again")
            raise StoreError(f"{path}: missing; retrain the model with --force")
        is_fold_done(path.parent)  # a truncated weights file is refused here, not by torch
        if hashed and derived is None:
            check_fold(path.parent, hashed=(WEIGHTS,))
        if derived is not None:
            recorded = derived.weights.get(f"{path.parent.parent.name}/{path.parent.name}")
            if recorded != sha256_of(path):
                raise StoreError(f"{path}: not the weights '{manifest.name}' was re-predicted with (its sha256 "
                                 f"differs from the one {MANIFEST} recorded: '{derived.source}' was retrained?); "
                                 f"run kit repredict {derived.source} again with --force")
    return paths


def weights_sha256(fold_dir: Path) -> str:
    """The sha256 of a done fold's weights.pt as its fold.json recorded it (computed, for an older fold.json)."""
    record = read_json(Path(fold_dir) / DONE)
    files = record.get("files") if isinstance(record, dict) else None
    entry = files.get(WEIGHTS) if isinstance(files, dict) else None
    if isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    return sha256_of(Path(fold_dir) / WEIGHTS)


def why_unfinished(model_dir: Path, manifest: Manifest, folds: list[int] | None = None) -> str | None:
    """None for a finished model; else what state it is in and what to do, per state: being trained
    (a kit process holds its lock: kit train would be refused, so wait), stopped part-way (kit train
    again finishes it), or a status kit never writes (retrain it).

    `folds`: finished enough when every seed has these folds done (a model still training its others too)."""
    if manifest.complete:
        return None
    if folds is not None:
        missing = [(s, k) for s in manifest.seeds for k in folds if not (Path(model_dir) / fold_subdir(s, k) / DONE).is_file()]
        if not missing:
            return None
        s, k = missing[0]
        return (f"has not finished fold {k} (seed {s}) of the folds asked for; kit train --folds "
                f"{','.join(map(str, folds))} on its recipe trains them")
    if manifest.status not in STATUSES:
        return (f"has status {manifest.status!r} in its {MANIFEST}, which is not one of {', '.join(STATUSES)}; "
                f"retrain it with kit train --force")
    trainer = holder(model_lock(model_dir))
    if trainer:
        return f"is being trained now (by {trainer}); wait for that run to finish, then run this again"
    runs = [(s, k) for s in manifest.seeds for k in range(manifest.n_folds)]
    done = sum((Path(model_dir) / fold_subdir(s, k) / DONE).is_file() for s, k in runs)  # damage is told where read
    return (f"is not finished: its training stopped after {done} of {len(runs)} (seed, fold) runs; "
            f"run kit train on its recipe again to finish it")


def check_complete(manifest: Manifest, model_dir: Path, folds: list[int] | None = None) -> None:
    unfinished = why_unfinished(model_dir, manifest, folds)
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


def read_predictions(path: Path, n_classes: int) -> dict:
    """oof.npz or test.npz: `ids`, one per row, each once; `probs`, one row per id of `n_classes`
    probabilities, each finite and in [0, 1], each row summing to 1 (within PROBABILITY_TOLERANCE).
    Anything else is refused, naming the file and the first bad row: it is not what kit wrote, and
    blended it would turn into wrong labels without a word."""
    arrays = read_npz(path, PREDICTIONS)
    ids, probs = arrays["ids"], arrays["probs"]
    if ids.ndim != 1 or ids.dtype.kind not in "Uiu":
        raise StoreError(f"{path}: ids: expected one text id per row, got an array of {ids.dtype} "
                         f"shaped {ids.shape}; {retrain_fold(path.parent)}")
    if probs.ndim != 2 or probs.dtype.kind != "f":
        raise StoreError(f"{path}: probs: expected a table of floating-point probabilities (rows x classes), got "
                         f"an array of {probs.dtype} shaped {probs.shape}; {retrain_fold(path.parent)}")
    if probs.shape[1] != n_classes:
        raise StoreError(f"{path}: probs: {probs.shape[1]} columns, but its model has {n_classes} classes "
                         f"({MANIFEST}); {retrain_fold(path.parent)}")
    if len(probs) != len(ids):
        raise StoreError(f"{path}: {len(probs)} rows of probs for {len(ids)} ids; {retrain_fold(path.parent)}")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise StoreError(f"{path}: id '{unique[counts > 1][0]}' has {counts[counts > 1][0]} rows; "
                         f"{retrain_fold(path.parent)}")
    with np.errstate(invalid="ignore"):
        problems = (("NaN or infinite probabilities", ~np.isfinite(probs).all(1)),
                    ("a probability outside 0 to 1", ((probs < -PROBABILITY_TOLERANCE)
                                                      | (probs > 1 + PROBABILITY_TOLERANCE)).any(1)),
                    ("probabilities summing to {sum:.4g}, not 1", np.abs(probs.sum(1) - 1) > PROBABILITY_TOLERANCE))
    for what, bad in problems:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            values = ", ".join(f"{v:.4g}" for v in probs[row][:6]) + (", ..." if n_classes > 6 else "")
            raise StoreError(f"{path}: row {row} (id '{ids[row]}'): {what.format(sum=float(probs[row].sum()))} "
                             f"({values}); these are not probabilities kit wrote: {retrain_fold(path.parent)}")
    return arrays


def verify_model(model_dir: Path) -> list[str]:
    """Problems with the files a model folder holds right now ([] when every file is whole).

    A run may stop at any moment, so a fold folder may lack files; but every file that exists
    must read back whole (predictions as blending reads them), and a fold marked done (fold.json)
    must have every file it recorded, of the size and sha256 it recorded."""
    import torch

    problems = []

    def readable(path: Path, load) -> None:
        try:
            load(path)
        except StoreError as exc:  # read as blending reads it: its message names the file and the cause
            problems.append(str(exc))
        except Exception as exc:  # what matters is only that it does not read back
            problems.append(f"{path}: unreadable ({type(exc).__name__})")

    try:
        n_classes = len(read_manifest(model_dir).classes)
    except StoreError:
        n_classes = None  # model.json's own problem is reported below
    for path in sorted(Path(model_dir).rglob("*")):
        if not path.is_file():
            continue
        if path.name.endswith(".tmp"):
            continue  # a temporary file a killed writer left; never read, replaced on the next write
        if path.suffix == ".json":
            readable(path, read_json)
        elif path.suffix == ".npz":  # the store's .npz files: oof, test
            readable(path, lambda p: read_predictions(p, n_classes) if n_classes else read_npz(p, PREDICTIONS))
        elif path.suffix == ".pt":
            readable(path, lambda p: torch.load(p, map_location="cpu", weights_only=False))
        elif path.suffix in (".csv", ".yaml"):
            readable(path, lambda p: p.read_text(encoding="utf-8"))
    for done in sorted(Path(model_dir).rglob(DONE)):
        readable(done.parent, lambda d: check_fold(d, hashed=FOLD_FILES))
    return problems
