"""`kit train`: one recipe, every fold (and seed), out-of-fold and test predictions into the store.

A fold that is finished in the store is never trained again unless asked (--force): rerunning
a recipe after a crash only trains what is missing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import math
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml

from .. import __version__, fileio
from .. import features as features_cache
from ..augment import checked_pipeline
from ..competition import CompetitionData, load_competition
from ..errors import DataError, RecipeError, StoreError
from ..folds import Folds, load_or_make_folds
from ..lock import exclusive
from ..metrics import HEADLINE
from ..models import build_model, is_timm, resolve_input
from ..progress import SILENT, Reporter
from ..recipe import Recipe, trains_on_features
from ..report import classification_metrics
from ..paths import check_store, competition_inputs
from ..store import CHECKPOINT, MANIFEST, Manifest, PredictInfo, Store, read_json
from ..teacher import Teacher, Teaching, teacher_change
from ..tta import TTA, describe
from .augmented_batches import AugmentedBatches
from .batch_augment import BatchAugment
from .batch_augment import plan as plan_batch_augment
from .batches import Normalizer
from .checkpoint import EpochCheckpoint
from .device import DeviceSettings, pick_device
from .embeddings import train_head
from .loop import NotFinite, check_data_init, check_finite, fit, predict_proba
from .mixing import BatchMixer
from .resident import batches_for
from .targets import TeacherLoss
from .tensorboard import check_log, epoch_log


@dataclass
class TrainSummary:
    model: str
    competition: str
    model_dir: Path
    folds_trained: int
    folds_skipped: int
    cv: dict | None  # classification_metrics of the (seed-averaged) out-of-fold predictions; None while folds are missing
    seconds: float
    folds_missing: int = 0  # (seed, fold) runs not yet in the store (train_recipe's `folds` left them out)
    full: list[dict] | None = None  # with full=True: each seed's refit on every training image (its fold.json record)


@dataclass
class FoldDone:
    """What train_recipe's `on_fold` hook is told each time a (seed, fold) run is written to the store."""

    model: str
    competition: str
    seed: int
    fold: int
    record: dict  # the run's fold.json record (best epoch, val_loss, seconds, history)
    done: list[tuple[int, int]]  # every (seed, fold) run of the model in the store now, this one included
    total: int  # the model's (seed, fold) runs in all


@dataclass
class TrainJob:
    """One (recipe, seed, fold) run, as plain values: it pickles to a worker process or a Ray task.

    A job writes only its own fold folder, under its own lock; `recipe_hash`, `folds_hash` and
    `data_fingerprint` are the plan's, which a worker checks against the store it sees (check_same_store)."""

    recipe: Recipe
    store: str
    device: str
    seed: int
    fold: int
    recipe_hash: str
    folds_hash: str
    data_fingerprint: str
    threads: int | None = None  # torch threads in a worker (set by the executor); None: the process's own

    @property
    def label(self) -> str:
        return f"{self.recipe.name} seed {self.seed} fold {self.fold}"


@dataclass
class JobContext:
    """What every job of one recipe shares within a process: the decoded data, the folds, the device, the
    normaliser, the augmentation and the teacher. The plan builds it (and the serial path reuses it); a
    worker process builds its own once per recipe (job_context) from the files the plan left."""

    recipe: Recipe
    data: CompetitionData
    inputs: object
    normalizer: Normalizer
    pipeline: object
    folds: Folds
    teacher: Teacher | None
    settings: DeviceSettings
    on_batches: BatchAugment | None = None
    features: features_cache.CachedFeatures | None = None
    _test_batches: object = None

    def test_batches(self):
        """The test set's batches, shared by every (seed, fold): held (and, on the CPU, normalised) once."""
        if self.features is None and self._test_batches is None:
            self._test_batches = batches_for(self.data.test_images, None, np.arange(len(self.data.test_ids)),
                                             self.recipe.predict.batch_size, self.normalizer, self.settings.device)
        return self._test_batches


@dataclass
class TrainPlan:
    """A recipe planned for training: its manifest written to the store, the (seed, fold) runs it lacks as jobs."""

    context: JobContext
    store: Store
    manifest: Manifest
    runs: list[tuple[int, int]]  # every (seed, fold) of the model
    finished: list[tuple[int, int]]  # in the store before this run (skipped)
    todo: list[tuple[int, int]]  # to train now
    was_complete: bool
    device: str
    seconds: float = 0.0  # planning and training time so far (the summary's seconds)

    @property
    def recipe(self) -> Recipe:
        return self.context.recipe

    def jobs(self) -> list[TrainJob]:
        """The jobs, with absolute paths: a worker (a Ray task) may run in another folder than this process."""
        m, recipe = self.manifest, self.recipe
        spec = recipe.competition_spec
        if not spec.root.is_absolute():
            recipe = recipe.model_copy(update={"competition": spec.model_copy(update={"root": spec.root.resolve()})})
        return [TrainJob(recipe=recipe, store=str(self.store.root.resolve()), device=self.device, seed=s, fold=k,
                         recipe_hash=m.recipe_hash, folds_hash=m.folds_hash, data_fingerprint=m.data_fingerprint)
                for s, k in self.todo]


def train_recipe(recipe: Recipe, store: Store, reporter: Reporter = SILENT, force: bool = False,
                 device: str = "auto", wait: bool = False, folds: list[int] | None = None,
                 full: bool = False, on_fold: Callable[[FoldDone], None] | None = None,
                 executor=None) -> TrainSummary:
    """Train every (seed, fold) of `recipe` that the store lacks; one process per model at a time.

    `folds`: train only these folds (of every seed); the model stays unfinished (status 'training',
    no metrics) until a later call has every fold in the store.
    `full`: instead, refit the recipe once per seed on every training image (refit_full), for the
    number of epochs its finished folds chose; `force` then redoes the refit, never the folds.
    `on_fold`: called after each (seed, fold) run is in the store (kit tune reports the completed folds'
    score to its pruner there); an exception it raises stops the training after that run, leaving the
    model unfinished as --folds would, its finished runs kept.
    `executor`: where the jobs run (kit/train/executors.py: serial, process, ray); default serial."""
    if full:
        started = time.perf_counter()
        _check_refittable(recipe)
        context = prepare(recipe, store, device, reporter)
        with exclusive(store.lock_path(context.data.name, recipe.name), f"model '{recipe.name}'", wait=wait):
            return refit_full(context, store, reporter, force, started)
    return train_recipes([recipe], store, reporter, force=force, device=device, wait=wait, folds=folds,
                         on_fold=on_fold, executor=executor)[0]


def train_recipes(recipes: list[Recipe], store: Store, reporter: Reporter = SILENT, force: bool = False,
                  device: str = "auto", wait: bool = False, folds: list[int] | None = None,
                  on_fold: Callable[[FoldDone], None] | None = None, executor=None) -> list[TrainSummary]:
    """kit train's three steps for several recipes: plan each (every check, its manifest in the store), run
    all their jobs on `executor` together, finish each model as its last job lands (OOF, metrics, complete).

    Each model's lock is held from its plan to its finish, so a second `kit train` of it refuses (or waits)."""
    from .executors import SerialExecutor

    executor = executor or SerialExecutor()
    started = time.perf_counter()
    contexts = []
    for recipe in recipes:  # everything that can fail on bad input, before the store is written to
        contexts.append(prepare(recipe, store, device, reporter, only_folds=folds))
    prepared = time.perf_counter()
    with contextlib.ExitStack() as locks:
        plans = []
        for context in contexts:
            name = context.recipe.name
            locks.enter_context(exclusive(store.lock_path(context.data.name, name), f"model '{name}'", wait=wait))
            plan_started = time.perf_counter()
            plans.append(plan_training(context, store, reporter, force, device, folds))
            plans[-1].seconds = (prepared - started) / len(contexts) + time.perf_counter() - plan_started
        return run_plans(plans, executor, reporter, on_fold)


def prepare(recipe: Recipe, store: Store, device: str, reporter: Reporter = SILENT,
            only_folds: list[int] | None = None) -> JobContext:
    """Every check of the recipe against its data, the images decoded (once, here: never by a job) and the
    folds made or read; nothing of the model is written yet."""
    settings = pick_device(device, recipe.train.precision, recipe.train.memory_format)
    check_store(store.root, competition_inputs(recipe.competition_spec))
    data = load_competition(recipe.competition_spec, image_size=recipe.image_size, reporter=reporter)
    try:
        # the input size and normalisation the model needs, and the network built once (pretrained
        # weights downloaded or read): a bad parameter, size or weights file fails here
        inputs = resolve_input(recipe.model, recipe.image_size, data.image_size[0], data.channels,
                               batch_sizes=(recipe.train.batch_size, recipe.predict.batch_size))
        check_data_init(build_model(recipe.model, data.num_classes, data.channels, inputs.size), recipe.train)
        check_log(recipe.train)
        # the augmentation pipeline at the cached images' size, tried on a few of them
        pipeline = checked_pipeline(recipe.augment.transforms, data.image_size, data.train_images)
        if recipe.augment.alternating_flip:  # planned once here, so that a transform it cannot take fails now
            plan_batch_augment(recipe.augment.transforms, Normalizer([0.0] * data.channels, [1.0] * data.channels, None),
                               alternating_flip=True)
    except RecipeError as exc:
        raise exc.at(recipe.source) from None
    if inputs.mean is not None:  # pretrained weights expect the statistics they were trained with
        normalizer = Normalizer(inputs.mean, inputs.std, inputs.size)
    else:
        normalizer = Normalizer.from_images(data.train_images, inputs.size)
    try:
        cv_folds = load_or_make_folds(store.competition_dir(data.name), data.train_ids, data.train_labels, data.classes,
                                      recipe.cv.folds, recipe.cv.seed)
    except DataError as exc:  # too few images of a class for the recipe's cv.folds
        raise exc.at(recipe.source) from None
    if only_folds is not None:
        outside = [k for k in only_folds if not 0 <= k < cv_folds.n_folds]
        if outside or not only_folds:
            raise RecipeError(f"--folds: {outside[0] if outside else 'nothing'} is not a fold of {recipe.source} "
                              f"(its cv.folds: 0 to {cv_folds.n_folds - 1})")
    teacher = open_teacher(recipe, data, cv_folds, store)
    return JobContext(recipe=recipe, data=data, inputs=inputs, normalizer=normalizer, pipeline=pipeline,
                      folds=cv_folds, teacher=teacher, settings=settings,
                      on_batches=batch_ops(recipe, normalizer, settings, pipeline))


def open_teacher(recipe: Recipe, data: CompetitionData, folds: Folds, store: Store) -> Teacher | None:
    """The recipe's teacher (kit/teacher.py), its members found finished in the store and checked to have
    predicted the student's folds, classes and test images; None without one."""
    if recipe.teacher is None:
        return None
    teacher = Teacher.open(recipe.teacher, store, data.name, recipe.name, folds, recipe.source)
    first = next(iter(teacher.manifests.values()))
    if first.data_fingerprint != data.fingerprint:
        raise RecipeError(f"{recipe.source}: teacher.members: '{first.name}' was trained on other data than the "
                          f"student's competition holds now (fingerprint {first.data_fingerprint} -> "
                          f"{data.fingerprint}); retrain the teacher")
    if teacher.classes != list(data.classes):
        raise RecipeError(f"{recipe.source}: teacher.members: '{first.name}' has classes {teacher.classes}, the "
                          f"student's competition {list(data.classes)}")
    if first.test_ids_hash != fileio.array_hash(data.test_ids):
        raise RecipeError(f"{recipe.source}: teacher.members: '{first.name}' predicted other test images than the "
                          f"student's competition holds")
    return teacher


def plan_training(context: JobContext, store: Store, reporter: Reporter, force: bool, device: str,
                  only_folds: list[int] | None = None) -> TrainPlan:
    """Step 1 (under the model's lock): the model's manifest and recipe in the store (--force: its old folder
    gone first), the (seed, fold) runs it lacks as jobs, and what every job reads but none may race to make
    (a backbone's cached features) made now."""
    recipe, data, folds = context.recipe, context.data, context.folds
    model_dir = store.model_dir(data.name, recipe.name)
    manifest = _manifest(recipe, data, folds, store, context.normalizer, context.teacher)
    was_complete = _check_existing(store, manifest, force, legacy_recipe_hash=recipe.legacy_hash)
    runs = [(s, k) for s in recipe.train.seeds for k in range(folds.n_folds)]
    # is_fold_done checks each done fold's files against its fold.json: a damaged one refuses the run
    # here, before anything is written
    finished = [] if force else [(s, k) for s, k in runs if store.is_fold_done(data.name, recipe.name, s, k)]
    todo = [(s, k) for s, k in runs if (s, k) not in finished and (only_folds is None or k in only_folds)]
    store.keep_sample_submission(data.name, data.sample_submission)
    if todo or not was_complete:  # a finished model's files are rewritten only when something is trained
        if force and model_dir.exists():
            shutil.rmtree(model_dir)
        fileio.write_text(model_dir / "recipe.yaml", yaml.safe_dump(recipe.resolved(), sort_keys=False))
        store.write_manifest(manifest)
    for s, k in finished:  # killed between finishing the fold and removing its checkpoint
        (store.fold_dir(data.name, recipe.name, s, k) / CHECKPOINT).unlink(missing_ok=True)

    inputs, pipeline, settings = context.inputs, context.pipeline, context.settings
    if recipe.image_size is None and inputs.size != data.image_size[0]:
        reporter.message(f"{recipe.name}: inputs resized to {inputs.size} px, {inputs.reason}")
    reporter.message(f"training {recipe.name} ({recipe.model.arch}, {folds.n_folds} folds, "
                     f"{recipe.train.epochs} epochs, seeds {recipe.train.seeds}) on {settings.device}")
    # flips, shifts and cut-outs run on whole batches on the device (kit/train/batch_augment.py); any
    # other transform runs image by image through albumentations; no transforms: no per-image work at all
    if recipe.augment.active or manifest.tta != "none":
        augment = recipe.augment
        mixing = [f"{name} p {mix.p:g}" for name, mix in (("mixup", augment.mixup), ("cutmix", augment.cutmix)) if mix]
        where = ""
        if pipeline is not None:
            where = " (whole batches, on the device)" if context.on_batches else " (albumentations, image by image)"
        reporter.message(f"{recipe.name}: augmentation {', '.join(next(iter(t)) for t in augment.transforms) or 'none'}"
                         f"{where}{'; ' + ', '.join(mixing) if mixing else ''}; TTA {describe(manifest.tta)}")
    if finished:
        reporter.message(f"{recipe.name}: {len(finished)} of {len(finished) + len(todo)} (seed, fold) runs already in "
                         f"the store, skipped (--force retrains them)")
    # a backbone that never trains: its features computed once (or found cached), every head trained on them
    if todo and trains_on_features(recipe):
        context.features = cached_features(recipe, data, context.normalizer, settings, store, reporter)
    return TrainPlan(context=context, store=store, manifest=manifest, runs=runs, finished=finished, todo=todo,
                     was_complete=was_complete, device=device)


def run_plans(plans: list[TrainPlan], executor, reporter: Reporter = SILENT,
              on_fold: Callable[[FoldDone], None] | None = None) -> list[TrainSummary]:
    """Step 2: every plan's jobs on `executor`; each model finished (step 3) as soon as its last job is in."""
    by_model = {(p.context.data.name, p.recipe.name): p for p in plans}
    in_store = {key: list(p.finished) for key, p in by_model.items()}
    left = {key: len(p.todo) for key, p in by_model.items()}
    summaries: dict[tuple[str, str], TrainSummary] = {}
    last = {"at": time.perf_counter()}

    def done(job: TrainJob, record: dict) -> None:
        key = (job.recipe.competition_spec.name, job.recipe.name)
        plan, now = by_model[key], time.perf_counter()
        plan.seconds += now - last["at"]  # the wall time since the last job landed (exact when serial)
        last["at"] = now
        _report_fold(reporter, job.recipe.name, job.seed, job.fold, plan.context.folds.n_folds, record)
        in_store[key].append((job.seed, job.fold))
        left[key] -= 1
        if left[key] == 0:
            summaries[key] = finish_training(plan)
        if on_fold is not None:
            on_fold(FoldDone(model=job.recipe.name, competition=plan.context.data.name, seed=job.seed, fold=job.fold,
                             record=record, done=sorted(in_store[key]), total=len(plan.runs)))

    for key, plan in by_model.items():
        if not plan.todo:
            summaries[key] = finish_training(plan)
    jobs = [job for plan in plans for job in plan.jobs()]
    if jobs:
        with local_contexts(plans):
            executor.run(jobs, done, reporter)
    return [summaries[key] for key in by_model]


def finish_training(plan: TrainPlan) -> TrainSummary:
    """Step 3: the model's OOF assembled from its folds, its metrics written and it marked complete; without
    every (seed, fold) in the store (--folds) it stays 'training'. Idempotent: a finished model is left as it is."""
    recipe, data, store, manifest = plan.recipe, plan.context.data, plan.store, plan.manifest
    model_dir = store.model_dir(data.name, recipe.name)
    done, trained = len(plan.finished), len(plan.todo)
    missing = len(plan.runs) - done - trained
    if missing:  # --folds left some out: no metrics, and model.json still says 'training'
        return TrainSummary(model=recipe.name, competition=data.name, model_dir=model_dir, folds_trained=trained,
                            folds_skipped=done, cv=None, seconds=plan.seconds, folds_missing=missing)
    labels = data.train_labels  # the folds' ids are the training ids, in order
    # each seed's folds read once; the model's OOF is their mean, as Store.assemble averages seeds
    seed_oofs = {seed: store.assemble(manifest, seeds=[seed]).oof for seed in recipe.train.seeds}
    cv = classification_metrics(labels, np.mean(list(seed_oofs.values()), axis=0), data.classes)
    per_seed = {}
    for seed, oof in seed_oofs.items():
        per_seed[str(seed)] = {k: v for k, v in classification_metrics(labels, oof, data.classes).items()
                               if k in HEADLINE}
    if trained or not plan.was_complete:  # a rerun of a finished model leaves its files as they are
        fileio.write_json(model_dir / "metrics.json", {"cv": cv, "per_seed": per_seed})
        manifest.status, manifest.finished = "complete", _now()
        manifest.cv = {k: cv[k] for k in HEADLINE}
        store.write_manifest(manifest)
        plan.was_complete = True
    return TrainSummary(model=recipe.name, competition=data.name, model_dir=model_dir,
                        folds_trained=trained, folds_skipped=done, cv=cv, seconds=plan.seconds)


# ---- a job, in whichever process runs it

# the contexts this process holds, by context_key: the plans' own while the driver runs its jobs itself
# (serial), or those a worker process built for the recipes it was sent (kept for its next jobs)
_CONTEXTS: dict[tuple[str, str, str, str], JobContext] = {}
_WORKER_CONTEXTS_KEPT = 2


def context_key(name: str, recipe_hash: str, store: str | Path, device: str) -> tuple[str, str, str, str]:
    """The one key a plan lends its context under and a job looks it up by. The store's path resolved (a
    job carries it absolute); the model's name too, as two models may share a recipe hash (the name is
    not in it) and a context is one model's (its teacher knows its student)."""
    return name, recipe_hash, str(Path(store).resolve()), device


@contextlib.contextmanager
def local_contexts(plans: list[TrainPlan]):
    """The plans' contexts lent to jobs run in this process, for as long as the executor runs."""
    keys = [context_key(p.recipe.name, p.manifest.recipe_hash, p.store.root, p.device) for p in plans]
    for key, plan in zip(keys, plans):
        _CONTEXTS[key] = plan.context
    try:
        yield
    finally:
        for key in keys:
            _CONTEXTS.pop(key, None)


def run_job(job: TrainJob, reporter: Reporter = SILENT) -> dict:
    """Train one (seed, fold) into its fold folder under its own lock; the fold.json record.

    Run in the planning process (serial), a worker process or a Ray task alike. A job whose fold is already
    done (a retried task whose first try finished) returns the stored record and trains nothing."""
    if job.threads is not None:
        torch.set_num_threads(job.threads)
    context = job_context(job)
    store, name, competition = Store(job.store), job.recipe.name, context.data.name
    lock = store.job_lock_path(competition, name, job.seed, job.fold)
    with exclusive(lock, f"{job.label}", where=f" on {socket.gethostname()}"):
        if store.is_fold_done(competition, name, job.seed, job.fold):
            return read_json(store.fold_dir(competition, name, job.seed, job.fold) / "fold.json")
        return train_fold(job.recipe, context.data, context.folds, job.fold, job.seed, context.normalizer,
                          context.settings, store, context.test_batches(), reporter, context.pipeline,
                          context.on_batches, context.features, context.teacher)


def job_context(job: TrainJob) -> JobContext:
    """This process's context for the job's recipe: the plan's (serial), else built here once per recipe from
    the store and data the plan left, after checking that this process sees the same store (check_same_store)."""
    key = context_key(job.recipe.name, job.recipe_hash, job.store, job.device)
    if key in _CONTEXTS:
        return _CONTEXTS[key]
    store = Store(job.store)
    check_same_store(job, store)
    context = prepare(job.recipe, store, job.device)
    if context.data.fingerprint != job.data_fingerprint or context.folds.hash != job.folds_hash:
        raise StoreError(f"{store.root}: on {socket.gethostname()} the competition's data or folds differ from the "
                         f"planning machine's ({job.data_fingerprint}, folds {job.folds_hash} there; "
                         f"{context.data.fingerprint}, folds {context.folds.hash} here): every node must read the "
                         f"same data and store (docs/distributed.md)")
    if trains_on_features(job.recipe):  # the plan computed them: found in the cache here
        context.features = cached_features(job.recipe, context.data, context.normalizer, context.settings, store,
                                           SILENT)
    while len(_CONTEXTS) >= _WORKER_CONTEXTS_KEPT:
        _CONTEXTS.pop(next(iter(_CONTEXTS)))
    _CONTEXTS[key] = context
    return context


def check_same_store(job: TrainJob, store: Store) -> None:
    """Refuse, in one line, a worker that does not see the store the plan wrote: the model's manifest must be
    there with the plan's recipe hash, folds hash and data fingerprint (a store on a path every node mounts)."""
    competition, name, host = job.recipe.competition_spec.name, job.recipe.name, socket.gethostname()
    where = f"{store.model_dir(competition, name) / MANIFEST}"
    hint = ("the store must live on a filesystem every node mounts at the same path (docs/distributed.md)")
    if not store.has_manifest(competition, name):
        raise StoreError(f"{where}: not found on {host}, where the job {job.label} runs: this worker does not see "
                         f"the store the plan wrote; {hint}")
    seen = store.manifest(competition, name)
    for field, what in (("recipe_hash", "recipe hash"), ("folds_hash", "folds hash"),
                        ("data_fingerprint", "data fingerprint")):
        if getattr(seen, field) != getattr(job, field):
            raise StoreError(f"{where}: on {host} the model's {what} is {getattr(seen, field)}, the plan's "
                             f"{getattr(job, field)}: this worker sees another store than the planning machine; {hint}")


def _check_refittable(recipe: Recipe) -> None:
    """What a refit on all the data cannot do, refused before anything loads: with no held-out rows there
    is no validation loss for a plateau schedule to follow."""
    if recipe.train.scheduler.name == "plateau":
        raise RecipeError(f"{recipe.source}: train.scheduler.name: --full cannot refit with 'plateau', which follows "
                          f"the validation loss, and a refit on every image has none; use a fixed schedule (cosine, "
                          f"step, onecycle, triangle)")


def full_epochs(best_epochs: list[int]) -> int:
    """The refit's epochs: the median of the finished folds' best epochs, halves rounded up.

    Not scaled by the data: an epoch of all N images is already k / (k - 1) times a fold's epoch, so
    the same number of epochs takes as many passes over the data and k / (k - 1) times the steps, as
    the larger set warrants. The schedule (warm-up, cosine, triangle) spans these epochs."""
    return max(1, math.floor(float(np.median(best_epochs)) + 0.5))


def refit_full(context: JobContext, store: Store, reporter: Reporter, force: bool, started: float) -> TrainSummary:
    """Train the recipe once per seed on every training image and store its test predictions in
    seed<s>/full/ beside the folds (no OOF: nothing was held out, so the model's score stays the folds' CV).

    The epochs come from the folds already in the store (full_epochs); each seed's refit is checkpointed
    after every epoch and resumes, and is skipped once done unless `force`."""
    recipe, data, normalizer, pipeline, folds = (context.recipe, context.data, context.normalizer, context.pipeline,
                                                 context.folds)
    settings, teacher = context.settings, context.teacher
    model_dir = store.model_dir(data.name, recipe.name)
    manifest = _manifest(recipe, data, folds, store, normalizer, teacher)
    if not store.has_manifest(data.name, recipe.name):
        raise StoreError(f"{model_dir}: model '{recipe.name}' has no finished folds to take the refit's epochs from; "
                         f"train them first: kit train {recipe.source}")
    _check_existing(store, manifest, force=False, legacy_recipe_hash=recipe.legacy_hash)  # same recipe, data, folds
    manifest = store.manifest(data.name, recipe.name)
    finished = [(s, k) for s in manifest.seeds for k in range(folds.n_folds)
                if store.is_fold_done(data.name, recipe.name, s, k)]
    if not finished:
        raise StoreError(f"{model_dir}: model '{recipe.name}' has no finished folds to take the refit's epochs from; "
                         f"train them first: kit train {recipe.source}")
    best_epochs = [read_json(store.fold_dir(data.name, recipe.name, s, k) / "fold.json")["best_epoch"]
                   for s, k in finished]
    epochs = full_epochs(best_epochs)
    cfg = recipe.train.model_copy(update={"epochs": epochs, "early_stopping": None})
    done = store.full_seeds(manifest)
    todo = [s for s in recipe.train.seeds if force or s not in done]
    rule = (f"median best epoch of {len(finished)} finished fold(s) {sorted(best_epochs)}"
            + (f", the recipe's {recipe.train.epochs}" if epochs == recipe.train.epochs else ""))
    reporter.message(f"refitting {recipe.name} on all {len(data.train_ids):,} training images for {epochs} epochs "
                     f"({rule}), seeds {todo or 'none (done; --force refits)'}")
    records = [read_json(store.full_dir(data.name, recipe.name, s) / "fold.json")
               for s in recipe.train.seeds if s not in todo]
    if todo:
        on_batches = batch_ops(recipe, normalizer, settings, pipeline)
        # a head on cached features refits on the same features (found in the cache, or computed once now)
        features = cached_features(recipe, data, normalizer, settings, store, reporter) if trains_on_features(recipe) \
            else None
        test_batches = batches_for(data.test_images, None, np.arange(len(data.test_ids)), recipe.predict.batch_size,
                                   normalizer, settings.device) if features is None else None
        reporter.start("train", f"{recipe.name} full", total=len(todo) * epochs)
        try:
            for seed in todo:
                reporter.advance("train", 0, description=f"{recipe.name} seed {seed} on all images")
                records.append(_refit_seed(recipe, cfg, data, folds, seed, normalizer, settings, store, test_batches,
                                           reporter, pipeline, on_batches, rule, force, features, teacher))
        finally:
            reporter.finish("train")
    return TrainSummary(model=recipe.name, competition=data.name, model_dir=model_dir, folds_trained=0,
                        folds_skipped=len(finished), cv=manifest.cv, seconds=time.perf_counter() - started,
                        full=records)


def _refit_seed(recipe: Recipe, cfg, data: CompetitionData, folds: Folds, seed: int, normalizer: Normalizer,
                settings: DeviceSettings, store: Store, test_batches, reporter: Reporter, pipeline,
                on_batches: BatchAugment | None, rule: str, force: bool,
                features: features_cache.CachedFeatures | None = None, teacher: Teacher | None = None) -> dict:
    """One seed's refit on every training image, as train_fold trains a fold but with nothing held out."""
    run_seed = seed * 1000 + folds.n_folds  # folds are seed * 1000 + k, k < n_folds: this state is none of theirs
    torch.manual_seed(run_seed)
    rows = np.arange(len(data.train_ids))
    full_dir = store.full_dir(data.name, recipe.name, seed)
    if force and full_dir.exists():
        shutil.rmtree(full_dir)
    checkpoint = EpochCheckpoint(full_dir / CHECKPOINT, key=f"{recipe.hash}-full-{cfg.epochs}")
    if features is not None:
        return _refit_seed_on_features(recipe, cfg, data, features, folds, seed, run_seed, rows, normalizer,
                                       settings, store, reporter, checkpoint, rule)
    model = build_model(recipe.model, data.num_classes, data.channels, normalizer.size)
    # a refit's teacher is every fold's models (no fold of the refit is scored: kit/teacher.py)
    teaching = teacher.teach(None, rows, data.train_images, data.test_images, settings.device.type, reporter) \
        if teacher is not None else None
    train_batches, mixer = training_batches(recipe, data, rows, normalizer, settings, run_seed, pipeline, on_batches,
                                            teaching)
    try:
        result = fit(model, train_batches, None, cfg, settings, reporter, progress_key="train",
                     checkpoint=checkpoint, mixer=mixer, teacher_loss=teacher_loss(recipe, data.num_classes),
                     log=epoch_log(recipe, store, data.name, seed, None))
        tta = TTA.from_config(recipe.tta)
        test = predict_proba(model, test_batches, settings, tta)
        check_finite(test, f"epoch {cfg.epochs}: its test predictions are", cfg)
    except NotFinite as exc:
        raise exc.at(f"{recipe.source}: seed {seed}, the refit on all images") from None
    return _store_refit(recipe, cfg, data, folds, seed, rows, test, result.history, state_bytes(model), settings,
                        store, checkpoint, rule, tta.record, None if teaching is None else {"teacher": teaching.record})


def _refit_seed_on_features(recipe: Recipe, cfg, data: CompetitionData, features, folds: Folds, seed: int,
                            run_seed: int, rows: np.ndarray, normalizer: Normalizer, settings: DeviceSettings,
                            store: Store, reporter: Reporter, checkpoint: EpochCheckpoint, rule: str) -> dict:
    """_refit_seed for a head on cached features (as _train_fold_on_features, with no row held out)."""
    model = None
    if recipe.train.finetune.mode == "linear_probe":
        torch.manual_seed(0)  # the backbone that computed the features (cached_features)
        model = build_model(recipe.model, data.num_classes, data.channels, normalizer.size)
    try:
        out = train_head(recipe.model_copy(update={"train": cfg}), features, data.train_labels, rows,
                         np.array([], dtype=int), data.num_classes, run_seed, settings, reporter, checkpoint,
                         classifier=None if model is None else model.get_classifier(),
                         log=epoch_log(recipe, store, data.name, seed, None))
        if len(out["history"]) < cfg.epochs:  # an estimator: fitted at once
            reporter.advance("train", cfg.epochs)
        check_finite(out["test"], f"epoch {cfg.epochs}: its test predictions are", cfg)
    except NotFinite as exc:
        raise exc.at(f"{recipe.source}: seed {seed}, the refit on all images") from None
    weights = out["weights"] if model is None else state_bytes(model)
    return _store_refit(recipe, cfg, data, folds, seed, rows, out["test"], out["history"], weights, settings, store,
                        checkpoint, rule, TTA.from_config(recipe.tta).record)


def _store_refit(recipe: Recipe, cfg, data: CompetitionData, folds: Folds, seed: int, rows: np.ndarray,
                 test: np.ndarray, history: list[dict], weights: bytes, settings: DeviceSettings, store: Store,
                 checkpoint: EpochCheckpoint, rule: str, tta_record, extra: dict | None = None) -> dict:
    """A refit's files in seed<s>/full/, with how its test predictions compare with the folds' average;
    `extra`: more of the record (what a student's teacher taught it)."""
    manifest = store.manifest(data.name, recipe.name)
    folds_done = [k for k in range(folds.n_folds) if store.is_fold_done(data.name, recipe.name, seed, k)]
    agreement = None
    if folds_done:  # how far the refit's test predictions are from the folds' average, the blend's default
        fold_test = store.assemble(manifest, seeds=[seed], folds=folds_done).test
        agreement = {"folds": folds_done, "argmax": float((test.argmax(1) == fold_test.argmax(1)).mean()),
                     "mean_abs_prob": float(np.abs(test - fold_test).mean())}
    record = {"seed": seed, "full": True, "epochs": cfg.epochs, "rule": rule, "train_rows": len(rows),
              "seconds": sum(h["seconds"] for h in history), "device": str(settings.device),
              "tta": tta_record, "agreement_with_folds": agreement, **(extra or {}), "history": history}
    store.write_full(data.name, recipe.name, seed, test_ids=data.test_ids, test=test, record=record,
                     history=history, weights=weights)
    checkpoint.remove()
    return record


def cached_features(recipe: Recipe, data: CompetitionData, normalizer: Normalizer, settings: DeviceSettings,
                    store: Store, reporter: Reporter) -> features_cache.CachedFeatures:
    """The backbone's features of every training and test image under the recipe's TTA views, from the
    feature cache beside the decoded images, computed now if they are not there."""
    tta = TTA.from_config(recipe.tta)
    key = features_cache.feature_key(recipe.model.arch, recipe.model.params, recipe.model.pretrained, normalizer.size,
                                     normalizer.mean.view(-1).tolist(), normalizer.std.view(-1).tolist(), tta,
                                     data.fingerprint)
    root = data.cache_folder.parent if data.cache_folder is not None else store.competition_dir(data.name)
    folder = root / "features" / key
    cached = features_cache.open_cached(folder, key)
    if cached is not None:
        reporter.message(f"{recipe.name}: features from the cache ({folder}, {cached.dim} per view)")
        return cached
    # a backbone without pretrained weights is a random draw: made the same draw in every run, as the key
    # (which names the weights, not a seed) promises the same features
    torch.manual_seed(0)
    backbone = build_model(recipe.model, data.num_classes, data.channels, normalizer.size)
    backbone.to(settings.device)
    if settings.channels_last:
        backbone.to(memory_format=torch.channels_last)
    splits = {split: batches_for(images, None, np.arange(len(images)), recipe.predict.batch_size, normalizer,
                                 settings.device)
              for split, images in (("train", data.train_images), ("test", data.test_images))}
    started = time.perf_counter()
    features = features_cache.load_or_compute(folder, key, backbone, splits, settings, tta, reporter)
    reporter.message(f"{recipe.name}: features of {len(data.train_images) + len(data.test_images):,} images x "
                     f"{len(tta.views)} views computed in {time.perf_counter() - started:.0f} s, cached in {folder}")
    return features


def train_fold(recipe: Recipe, data: CompetitionData, folds: Folds, k: int, seed: int, normalizer: Normalizer,
               settings: DeviceSettings, store: Store, test_batches, reporter: Reporter = SILENT, pipeline=None,
               on_batches: BatchAugment | None = None,
               features: features_cache.CachedFeatures | None = None, teacher: Teacher | None = None) -> dict:
    """Train one fold, write its predictions, history and weights; fold.json last, as the 'done' mark.

    `pipeline`: the recipe's albumentations pipeline (kit/augment.py), or None for plain batches;
    `on_batches`: the same transforms as whole-batch ops, when they can be (it is used instead);
    `test_batches`: the test set's batches, shared by every (seed, fold);
    `features`: the backbone's cached features, when only a head trains (trains_on_features);
    `teacher`: the recipe's teacher, whose fold-k models alone teach fold k (kit/teacher.py)."""
    run_seed = seed * 1000 + k  # every (seed, fold) starts from its own, reproducible state
    torch.manual_seed(run_seed)
    train_idx, val_idx = folds.split(k)
    if features is not None:
        return _train_fold_on_features(recipe, data, features, k, seed, run_seed, train_idx, val_idx, normalizer,
                                       settings, store, reporter)
    model = build_model(recipe.model, data.num_classes, data.channels, normalizer.size)
    cfg, device = recipe.train, settings.device
    teaching = teacher.teach(k, train_idx, data.train_images, data.test_images, device.type, reporter) \
        if teacher is not None else None
    if teaching is not None and "pseudo_labels" in teaching.record:
        taught = teaching.record["pseudo_labels"]
        reporter.message(f"{recipe.name} seed {seed} fold {k}: {taught['rows']:,} of {taught['of']:,} test images "
                         f"pseudo-labelled by the fold's teacher (threshold {taught['threshold']:g})")
    train_batches, mixer = training_batches(recipe, data, train_idx, normalizer, settings, run_seed, pipeline,
                                            on_batches, teaching)
    val_batches = batches_for(data.train_images, data.train_labels, val_idx, recipe.predict.batch_size, normalizer,
                              device)
    fold_dir = store.fold_dir(data.name, recipe.name, seed, k)
    checkpoint = EpochCheckpoint(fold_dir / CHECKPOINT, key=recipe.hash)
    where = f"{recipe.source}: seed {seed}, fold {k}"
    try:
        result = fit(model, train_batches, val_batches, cfg, settings, reporter, progress_key="train",
                     checkpoint=checkpoint, mixer=mixer, teacher_loss=teacher_loss(recipe, data.num_classes),
                     log=epoch_log(recipe, store, data.name, seed, k))
        # the held-out fold and the test set through the same views, averaged the same way
        tta = TTA.from_config(recipe.tta)
        oof = predict_proba(model, val_batches, settings, tta)
        test = predict_proba(model, test_batches, settings, tta)
        for split, probs in (("held-out", oof), ("test", test)):
            check_finite(probs, f"best epoch {result.best_epoch + 1}: its {split} predictions are", cfg)
    except NotFinite as exc:  # nothing of this fold is written: a diverged run leaves no NaN in the store
        raise exc.at(where) from None

    record = {"seed": seed, "fold": k, "best_epoch": result.best_epoch + 1, "val_loss": result.best["val_loss"],
              "val_acc": result.best["val_acc"], "stopped_early": result.stopped_early,
              "train_rows": len(train_idx), "val_rows": len(val_idx),
              # summed over epochs, so a resumed fold still reports its whole training time
              "seconds": sum(h["seconds"] for h in result.history), "device": str(settings.device),
              "tta": tta.record, "history": result.history}
    if teaching is not None:
        record["teacher"] = teaching.record
    store.write_fold(data.name, recipe.name, seed, k, oof_ids=data.train_ids[val_idx], oof=oof,
                     test_ids=data.test_ids, test=test, history=result.history, weights=state_bytes(model),
                     record=record)
    checkpoint.remove()
    return record


def batch_ops(recipe: Recipe, normalizer: Normalizer, settings: DeviceSettings, pipeline) -> BatchAugment | None:
    """The recipe's augmentation as whole-batch ops on the device, when it can be (kit/train/batch_augment.py)."""
    if pipeline is None and not recipe.augment.alternating_flip:
        return None
    return plan_batch_augment(recipe.augment.transforms, normalizer.to(settings.device),
                              alternating_flip=recipe.augment.alternating_flip)


def training_batches(recipe: Recipe, data: CompetitionData, rows: np.ndarray, normalizer: Normalizer,
                     settings: DeviceSettings, run_seed: int, pipeline=None, on_batches: BatchAugment | None = None,
                     teaching: Teaching | None = None):
    """A run's shuffled, augmented training batches of `rows` and its mixup / CutMix mixer (or None): a fold's
    training rows, or every row for a refit; with `teaching`, its images, rows and packed targets instead
    (the training rows and the pseudo-labelled test images, kit/teacher.py)."""
    cfg, augment = recipe.train, recipe.augment
    images, labels = data.train_images, data.train_labels
    if teaching is not None:
        images, labels, rows = teaching.images, teaching.labels, teaching.rows
    if pipeline is None or on_batches is not None:
        # resident on the device when the rows fit (kit/train/resident.py), else gathered batch by batch
        batches = batches_for(images, labels, rows, cfg.batch_size, normalizer,
                              settings.device, shuffle=True, seed=run_seed, drop_last=True,
                              augment=None if on_batches is None else BatchAugment(on_batches.ops, run_seed))
    else:
        batches = AugmentedBatches(images, labels, rows, cfg.batch_size, normalizer,
                                   pipeline, seed=run_seed, drop_last=True, workers=augment.workers)
    mixer = (BatchMixer(data.num_classes, augment.mixup, augment.cutmix, seed=run_seed)
             if augment.mixup or augment.cutmix else None)
    return batches, mixer


def teacher_loss(recipe: Recipe, num_classes: int) -> TeacherLoss | None:
    """The loss of a student's packed targets (kit/train/targets.py); None without a teacher."""
    if recipe.teacher is None:
        return None
    distill = recipe.teacher.distill
    return TeacherLoss(num_classes, distill.weight if distill else 0.0, distill.temperature if distill else 1.0,
                       recipe.train.label_smoothing)


def state_bytes(model) -> bytes:
    """The serialised state dict, on the CPU, as the store keeps weights (the store never imports torch)."""
    buffer = io.BytesIO()
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def _train_fold_on_features(recipe: Recipe, data: CompetitionData, features, k: int, seed: int, run_seed: int,
                            train_idx: np.ndarray, val_idx: np.ndarray, normalizer: Normalizer,
                            settings: DeviceSettings, store: Store, reporter: Reporter) -> dict:
    """train_fold for a head on cached features; a linear probe trains the timm model's own classifier and
    stores the whole network, so that kit predict runs it on new images as any member."""
    model = None
    if recipe.train.finetune.mode == "linear_probe":
        torch.manual_seed(0)  # the backbone that computed the features (cached_features), random weights included
        model = build_model(recipe.model, data.num_classes, data.channels, normalizer.size)
    fold_dir = store.fold_dir(data.name, recipe.name, seed, k)
    checkpoint = EpochCheckpoint(fold_dir / CHECKPOINT, key=recipe.hash)
    try:
        out = train_head(recipe, features, data.train_labels, train_idx, val_idx, data.num_classes, run_seed,
                         settings, reporter, checkpoint, classifier=None if model is None else model.get_classifier(),
                         log=epoch_log(recipe, store, data.name, seed, k))
        if len(out["history"]) < recipe.train.epochs and not out["stopped_early"]:  # an estimator: fitted at once
            reporter.advance("train", recipe.train.epochs)
        for split in ("oof", "test"):
            check_finite(out[split], f"best epoch {out['best_epoch'] + 1}: its {split} predictions are", recipe.train)
    except NotFinite as exc:
        raise exc.at(f"{recipe.source}: seed {seed}, fold {k}") from None
    weights = out["weights"] if model is None else state_bytes(model)
    history = out["history"]
    best = history[out["best_epoch"]]
    record = {"seed": seed, "fold": k, "best_epoch": out["best_epoch"] + 1, "val_loss": best["val_loss"],
              "val_acc": best["val_acc"], "stopped_early": out["stopped_early"], "train_rows": len(train_idx),
              "val_rows": len(val_idx), "seconds": sum(h["seconds"] for h in history), "device": str(settings.device),
              "tta": TTA.from_config(recipe.tta).record, "history": history,
              "head": recipe.train.finetune.head.name if model is None else "classifier",
              "features": str(features.folder)}
    store.write_fold(data.name, recipe.name, seed, k, oof_ids=data.train_ids[val_idx], oof=out["oof"],
                     test_ids=data.test_ids, test=out["test"], history=history, weights=weights, record=record)
    checkpoint.remove()
    return record


def _manifest(recipe: Recipe, data: CompetitionData, folds: Folds, store: Store, normalizer: Normalizer,
              teacher: Teacher | None = None) -> Manifest:
    return Manifest(
        name=recipe.name, competition=data.name, arch=recipe.model.arch, status="training", recipe_hash=recipe.hash,
        data_fingerprint=data.fingerprint, folds_file=str(folds.path.relative_to(store.competition_dir(data.name))),
        folds_hash=folds.hash, n_folds=folds.n_folds, seeds=recipe.train.seeds, classes=data.classes,
        test_ids_hash=fileio.array_hash(data.test_ids), image_size=normalizer.size,
        tta=TTA.from_config(recipe.tta).record,
        predict=PredictInfo(params=recipe.model.params, channels=data.channels, decoded_size=list(data.image_size),
                            mean=normalizer.mean.flatten().tolist(), std=normalizer.std.flatten().tolist(),
                            precision=recipe.train.precision,
                            head=recipe.train.finetune.head.name if recipe.train.finetune.mode == "embeddings"
                            else None),
        teacher=teacher.record if teacher is not None else None, kit_version=__version__, created=_now())


def _check_existing(store: Store, manifest: Manifest, force: bool, legacy_recipe_hash: str | None = None) -> bool:
    """Refuse to mix folds of a changed recipe, changed data or changed folds under one name.
    `legacy_recipe_hash`: the recipe's hash in the form of older stores (Recipe.legacy_hash), the same recipe.
    -> whether the stored model is complete (and is kept as it is)."""
    if force or not store.has_manifest(manifest.competition, manifest.name):
        return False
    old = store.manifest(manifest.competition, manifest.name)
    if old.recipe_hash == legacy_recipe_hash:
        old.recipe_hash = manifest.recipe_hash
    for key, what in (("recipe_hash", "the recipe"), ("data_fingerprint", "the competition's data"),
                      ("folds_hash", "the folds")):
        if getattr(old, key) != getattr(manifest, key):
            raise StoreError(f"{store.model_dir(manifest.competition, manifest.name) / MANIFEST}: {what} changed "
                             f"since model '{manifest.name}' was trained ({getattr(old, key)} -> "
                             f"{getattr(manifest, key)}); rename the model or retrain it with --force")
    if old.teacher != manifest.teacher:
        raise StoreError(f"{store.model_dir(manifest.competition, manifest.name) / MANIFEST}: the teacher changed "
                         f"since student '{manifest.name}' was trained ({teacher_change(old.teacher, manifest.teacher)});"
                         f" its finished folds learnt from the old one: retrain it with --force")
    manifest.created = old.created or manifest.created
    return old.complete


def _report_fold(reporter: Reporter, name: str, seed: int, k: int, n_folds: int, record: dict) -> None:
    columns = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
    history, best = record["history"], record["best_epoch"] - 1
    # long runs: the first epochs, every few, the best and the last (the full history is in history.csv)
    step = max(1, len(history) // 6)
    shown = [i for i in range(len(history)) if i < 2 or i % step == step - 1 or i in (best, len(history) - 1)]
    rows = [[round(history[i][c], 4) if c != "lr" else history[i][c] for c in columns] for i in shown]
    reporter.table(f"{name} · seed {seed} · fold {k} of {n_folds} · best epoch {best + 1}",
                   columns, rows, highlight=shown.index(best))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
