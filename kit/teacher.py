"""A teacher for a student recipe: pseudo-labels and distillation from stored models, by the fold rule.

The rule. The student's fold k is scored on fold k's held-out rows, so nothing it learns may come
from a model that saw those rows' labels. Every teacher member's fold-j model (j != k) was trained
on them; only its fold-k model was not: it was trained on exactly the student's fold-k training
rows. So for the student's fold k

  * pseudo-labels are the fold-k teacher's test predictions: each member's fold-k test.npz (its
    seeds averaged), combined by the teacher's blender;
  * distillation targets on the fold's training rows are the members' fold-k weights re-predicted
    on those rows (kit/predict.py, with each member's own TTA views), not their OOF, and combined
    the same way;
  * a blender that learns (weights, a stacker) is fitted on the members' OOF rows outside fold k,
    as kit blend's nested cross-validation fits it, so fold k's labels do not choose its weights.

The fold average of the members (and a blender fitted on every OOF row) teaches only a refit on
every training image (kit train --full), whose predictions no fold scores. The usual recipe,
pseudo-labels from the fold-averaged test predictions for every fold, breaks the rule: every fold
model but one saw fold k's labels, and whatever they memorised of them reaches the student through
the test images (bench/pseudo_label_leak.py measures how far that lifts a CV).

The student's model.json records its teacher (TeacherRecord: each member's fingerprint, the
method); kit train refuses to continue a student whose teacher changed, and kit blend warns when a
student is blended with its own teacher's members.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.base import clone

from .errors import BlendError, RecipeError, StoreError
from .folds import Folds
from .progress import SILENT, Reporter
from .recipe import TeacherConfig
from .store import DONE, MANIFEST, Member, Store, TeacherRecord, fold_subdir, why_unfinished


@dataclass
class Teaching:
    """What one run (a fold, or a refit on every row) trains on: `images` (the training images, then
    the pseudo-labelled test images), `labels` (packed per-row targets, kit/train/targets.py, for every
    row of `images`), `rows` (the run's training rows, then the pseudo-labelled ones) and what it was
    taught, for fold.json."""

    images: np.ndarray
    labels: np.ndarray
    rows: np.ndarray
    record: dict


def member_fingerprint(model_dir: Path, manifest) -> str:
    """sha256 over a member's model.json and every fold.json (each of which holds its files' sha256):
    it changes when any fold is retrained or re-predicted."""
    h = hashlib.sha256((Path(model_dir) / MANIFEST).read_bytes())
    for s in manifest.seeds:
        for k in range(manifest.n_folds):
            done = Path(model_dir) / fold_subdir(s, k) / DONE
            if done.is_file():
                h.update(done.read_bytes())
    return h.hexdigest()


def resolve_members(store: Store, competition: str, config: TeacherConfig, student: str, source: str) -> list[str]:
    """The finished models `config.members` names (globs as kit blend -m takes them), in order; a name
    or glob that finds nothing finished, or the student itself, is a RecipeError naming the field."""
    known = store.model_names(competition) if store.competition_dir(competition).is_dir() else []
    names = []
    for pattern in config.members:
        hits = [m for m in known if fnmatch.fnmatchcase(m, pattern)]
        if not hits:
            from .errors import did_you_mean

            raise RecipeError(f"{source}: teacher.members: no model '{pattern}' in {store.competition_dir(competition)}"
                              f"{did_you_mean(pattern, known)}; known: {', '.join(known) or 'none (train the teacher first)'}")
        for name in hits:
            if name == student:
                raise RecipeError(f"{source}: teacher.members: '{pattern}' matches the student '{student}' itself")
            unfinished = why_unfinished(store.model_dir(competition, name), store.manifest(competition, name))
            if unfinished and pattern == name:
                raise RecipeError(f"{source}: teacher.members: model '{name}' {unfinished}")
            if not unfinished and name not in names:
                names.append(name)
    if not names:
        raise RecipeError(f"{source}: teacher.members: {', '.join(config.members)} match no finished model")
    return names


class Teacher:
    """The teacher of one student: its members' stored predictions (and weights, for distillation),
    the blender, and the folds, checked to be the student's."""

    def __init__(self, config: TeacherConfig, store: Store, competition: str, names: list[str], folds: Folds,
                 source: str):
        from .blend.members import check_manifests
        from .blend.registry import create_blender

        self.config, self.store, self.competition, self.source = config, store, competition, source
        self.names, self.folds = names, folds
        self.manifests = {n: store.manifest(competition, n) for n in names}
        try:
            check_manifests(self.manifests)
            self.blender = create_blender(config.method)
        except BlendError as exc:
            raise RecipeError(f"{source}: teacher: {exc}") from None
        for name, manifest in self.manifests.items():
            if manifest.folds_hash != folds.hash:
                raise RecipeError(f"{source}: teacher.members: '{name}' was trained on other folds ({manifest.folds_hash}"
                                  f", the student's are {folds.hash}: {folds.path.name}); give the student the "
                                  f"teacher's cv (folds and seed)")
            if config.distill is not None:
                self._check_repredictable(name, manifest)
        self.members: list[Member] = [store.load_member(competition, n) for n in names]
        self.classes = self.members[0].classes
        index = {c: i for i, c in enumerate(self.classes)}
        self.y = np.array([index[label] for label in folds.labels])
        self.P_oof = np.stack([m.oof for m in self.members])

    @classmethod
    def open(cls, config: TeacherConfig, store: Store, competition: str, student: str, folds: Folds,
             source: str) -> "Teacher":
        return cls(config, store, competition, resolve_members(store, competition, config, student, source), folds,
                   source)

    def _check_repredictable(self, name: str, manifest) -> None:
        from .predict import check_predictable

        try:  # a head on cached features has no network to re-predict images with: pseudo_labels alone can use it
            check_predictable(self.store.model_dir(self.competition, name), manifest, doing="distil from it")
        except StoreError as exc:
            raise RecipeError(f"{self.source}: teacher.distill: {exc}") from None

    @property
    def record(self) -> TeacherRecord:
        """What the student's model.json keeps of its teacher: a retrained member changes it."""
        return TeacherRecord(
            members={n: member_fingerprint(self.store.model_dir(self.competition, n), m)
                     for n, m in self.manifests.items()},
            method=self.config.method)

    # -- the rule ---------------------------------------------------------------------------------

    def blender_for(self, fold: int | None):
        """The blender fitted without `fold`'s rows (a learning one; every row when `fold` is None)."""
        if not self.blender.learns or fold is None:
            return clone(self.blender).fit(self.P_oof, self.y)
        outside = self.folds.fold != fold
        return clone(self.blender).fit(self.P_oof[:, outside], self.y[outside])

    def test_probs(self, fold: int | None) -> np.ndarray:
        """The teacher's test probabilities for the student's `fold`: each member's fold-`fold` models
        (seeds averaged); None: every fold's (a refit's teacher)."""
        folds = None if fold is None else [fold]
        P = np.stack([self.store.assemble(m.manifest, folds=folds).test if folds else m.test for m in self.members])
        return self.blender_for(fold).predict_proba(P).astype(np.float32)

    def row_probs(self, fold: int | None, images: np.ndarray, device: str, reporter: Reporter = SILENT) -> np.ndarray:
        """The teacher's probabilities on training `images`, re-predicted from its members' fold-`fold`
        weights (seeds averaged; None: every fold's), each member through its own TTA views."""
        from .predict import open_network, predict_runs

        stacked = []
        for name, manifest in self.manifests.items():
            folds = range(manifest.n_folds) if fold is None else [fold]
            runs = [fold_subdir(s, k) for s in manifest.seeds for k in folds]
            network = open_network(self.store.model_dir(self.competition, name), device, hashed=True, runs=runs)
            if list(images.shape[1:3]) != list(manifest.predict.decoded_size):
                raise RecipeError(f"{self.source}: teacher.members: '{name}' predicts "
                                  f"{'x'.join(map(str, manifest.predict.decoded_size))} images, the student's are "
                                  f"{images.shape[1]}x{images.shape[2]}; give the student the teacher's image size")
            key = f"teacher-{name}"
            reporter.start(key, f"teacher {name}: re-predicting {len(images):,} training images", total=len(runs))
            try:
                probs = predict_runs(network, images, network.weights, advance=lambda: reporter.advance(key))
            finally:
                reporter.finish(key)
            stacked.append(np.mean(probs, axis=0))
        return self.blender_for(fold).predict_proba(np.stack(stacked)).astype(np.float32)

    def teach(self, fold: int | None, rows: np.ndarray, train_images: np.ndarray, test_images: np.ndarray,
              device: str, reporter: Reporter = SILENT) -> Teaching:
        """What the run of the student's `fold` (None: its refit on every row) trains on: its training
        `rows` with their labels (and the teacher's probabilities on them, when it distils), then the test
        images the fold's teacher is sure of."""
        from .train.targets import one_hot, pack_targets

        n_classes, config = len(self.classes), self.config
        labels = np.zeros((len(train_images), n_classes), dtype=np.float32)
        labels[rows] = one_hot(self.y[rows], n_classes)
        teacher = labels.copy()
        record: dict = {"members": self.names, "method": config.method,
                        "rule": "the fold's own teacher models" if fold is not None else "every fold's (a refit)"}
        if config.distill is not None:
            teacher[rows] = self.row_probs(fold, train_images[rows], device, reporter)
            record["distill"] = {**config.distill.model_dump(),
                                 "teacher_train_acc": float((teacher[rows].argmax(1) == self.y[rows]).mean())}
        images, weight, all_rows = train_images, np.ones(len(train_images), np.float32), rows
        if config.pseudo_labels is not None:
            pseudo = config.pseudo_labels
            probs = self.test_probs(fold)
            chosen = np.flatnonzero(probs.max(1) >= pseudo.threshold)
            top = probs[chosen].argmax(1)
            target = one_hot(top, n_classes) if pseudo.labels == "hard" else probs[chosen]
            images = np.concatenate([train_images, test_images[chosen]])
            labels = np.concatenate([labels, target])
            teacher = np.concatenate([teacher, probs[chosen]])
            weight = np.concatenate([weight, np.full(len(chosen), pseudo.weight, np.float32)])
            all_rows = np.concatenate([rows, len(train_images) + np.arange(len(chosen))])
            record["pseudo_labels"] = {
                **pseudo.model_dump(), "rows": int(len(chosen)), "of": int(len(test_images)),
                "mean_confidence": float(probs[chosen].max(1).mean()) if len(chosen) else None,
                "per_class": {c: int(n) for c, n in zip(self.classes, np.bincount(top, minlength=n_classes))}}
        return Teaching(images=images, labels=pack_targets(labels, teacher, weight), rows=all_rows, record=record)


def teacher_warnings(store: Store, competition: str, members: list[Member]) -> list[str]:
    """kit blend's warnings about students among `members`: blended with their own teacher's members (or
    members re-predicted from them), whose errors theirs follow by construction; or taught by a teacher
    that has changed since."""
    def base(member: Member) -> str:  # a seed split off (name@s1) or a re-predicted member: its trained model
        derived = member.manifest.derived_from
        return derived.source if derived is not None else member.name.rsplit("@s", 1)[0]

    warnings = []
    for student in members:
        record = student.manifest.teacher
        if record is None:
            continue
        shared = sorted({m.name for m in members if m is not student and base(m) in record.members})
        if shared:
            warnings.append(f"'{student.name}' learnt from {', '.join(sorted(record.members))} (its teacher), and "
                            f"{', '.join(shared)} {'is' if len(shared) == 1 else 'are'} in this blend: their errors "
                            f"are correlated by construction, so the blend gains less than their scores suggest")
        now = {}
        for name in record.members:
            if store.has_manifest(competition, name):
                now[name] = member_fingerprint(store.model_dir(competition, name), store.manifest(competition, name))
        if now != record.members:
            changed = teacher_change(record, TeacherRecord(members=now, method=record.method))
            warnings.append(f"'{student.name}': its teacher changed since it was trained ({changed})")
    return warnings


def teacher_change(old: TeacherRecord | None, new: TeacherRecord | None) -> str:
    """What differs between a student's recorded teacher and the one it has now, in a few words."""
    if old is None or new is None:
        return "it had none" if old is None else "the recipe now has none"
    changed = [n for n in old.members if n in new.members and old.members[n] != new.members[n]]
    gone, added = [n for n in old.members if n not in new.members], [n for n in new.members if n not in old.members]
    parts = ([f"{', '.join(changed)} retrained or re-predicted"] if changed else []) + \
        ([f"{', '.join(gone)} gone"] if gone else []) + ([f"{', '.join(added)} added"] if added else [])
    if old.method != new.method:
        parts.append(f"method {old.method} -> {new.method}")
    return "; ".join(parts) or "its record differs"
