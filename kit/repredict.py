"""`kit repredict`: a stored model's fold weights predict its held-out folds and the test set again,
with other TTA views (or none), as a new member of the store; nothing is retrained.

Each (seed, fold)'s weights.pt predicts exactly the rows `kit train` predicted with it: that fold's
held-out images and every test image, through the same functions (kit/predict.py's open_network
rebuilds the network, kit/train/loop.py's predict_proba runs it, batches_for holds the images, at
the recipe's predict.batch_size), from the decoded-image cache. Re-predicted with the source's own
views, the new member's files are the source's predictions bit for bit on the CPU
(tests/test_repredict.py): the re-predict path is the training path.

The member (`vgg_small+tta-flip`) has oof.npz, test.npz and fold.json in each fold folder, in the
format kit train writes, so kit blend takes it as any member; its model.json says what it was
derived from (`derived_from`: the source, its model.json's sha256, each weights file's sha256, the
views). Weights are not copied: they stay in the source's folders, and whatever uses them later
(kit predict, a re-predict of the member) checks them against the recorded sha256 first. The member
is built in a hidden staging folder and renamed into place whole.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from . import __version__, fileio
from .errors import KitError, RecipeError, StoreError
from .progress import SILENT, Reporter
from .store import MANIFEST, DerivedFrom, Manifest, Store, check_complete, check_folds_fit, fold_subdir, \
    sha256_of, weights_sha256, write_fold_files, write_manifest
from .tta import TTA, describe, resolve_views

# a member's name is a folder name; '+' joins a source and what it was derived with
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*$")
RECIPE = "recipe.yaml"


@dataclass
class RepredictSummary:
    name: str
    source: str
    competition: str
    model_dir: Path
    tta: str | dict
    source_tta: str | dict
    runs: int  # (seed, fold) weights that predicted
    cv: dict  # the new member's classification_metrics of its (seed-averaged) OOF
    source_cv: dict | None
    seconds: float
    images_from: str  # how the images were had: from the decoded cache, decoded now, or as stored arrays


def parse_views(text: str) -> list[str]:
    """--tta: a preset (flip) or views and presets separated by commas (identity,vflip), resolved as a
    recipe's tta is; an unknown name is one RecipeError line with did-you-mean."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    return resolve_views(parts[0] if len(parts) == 1 else parts, where="--tta")


def derived_name(source: str, tta_text: str) -> str:
    """The default name of a re-predicted member: the source, '+tta-', the views as asked (flip, identity-vflip)."""
    label = "-".join(part.strip() for part in tta_text.split(",") if part.strip())
    return f"{source}+tta-{label}"


def repredict(store: Store, source: str, tta_text: str, *, name: str | None = None, shift: float | None = None,
              competition: str | None = None, force: bool = False, device: str = "auto", wait: bool = False,
              reporter: Reporter = SILENT) -> RepredictSummary:
    """Re-predict `source`'s folds and test set with the views `tta_text` names, as the member `name`
    (default source+tta-VIEWS). Everything that can be refused is checked before anything is written."""
    started = time.perf_counter()
    competition = store.pick_competition(competition, models=[source])
    manifest = store.manifest(competition, source)  # an unknown name: did you mean, and the models known
    asked = source
    if manifest.derived_from is not None:  # a member re-predicted before: its weights are its source's
        source = manifest.derived_from.source
        manifest = store.manifest(competition, source)
    source_dir = store.model_dir(competition, source)
    _check_network(source_dir, manifest)
    check_complete(manifest, source_dir)
    tta = _views(tta_text, shift, manifest)
    name = name if name is not None else derived_name(source, tta_text)
    _check_name(store, competition, name, source, force)

    from .predict import open_network

    network = open_network(source_dir, device, hashed=True)  # each weights.pt present and as its fold finished
    data, folds, batch_size, how = _load_inputs(store, manifest, source_dir, reporter)
    weights = {fold_subdir(s, k): weights_sha256(source_dir / fold_subdir(s, k))
               for s in manifest.seeds for k in range(manifest.n_folds)}
    # news only once every check has passed: a refusal is one line
    if asked != source:
        reporter.message(f"{asked} was re-predicted from {source}: re-predicting {source}'s weights")
    reporter.message(f"{manifest.name}: images {how}")
    derived = DerivedFrom(source=source, source_manifest_sha256=sha256_of(source_dir / MANIFEST),
                          source_recipe_hash=manifest.recipe_hash, tta=tta.record, weights=weights)

    from .lock import exclusive

    # the member's lock (one writer), and the source's: a kit train --force of it cannot remove the
    # weights while they are read (so two re-predicts of one source run one after the other, with `wait`)
    with exclusive(store.lock_path(competition, name), f"model '{name}'", wait=wait), \
            exclusive(store.lock_path(competition, source), f"model '{source}'", wait=wait):
        staging = store.staging_dir(competition, name)
        try:
            cv, per_seed = _predict_folds(network, data, folds, tta, batch_size, staging, name, derived, reporter)
            member = manifest.model_copy(update={
                "name": name, "status": "complete", "recipe_hash": None, "tta": tta.record, "cv": cv["headline"],
                "kit_version": __version__, "created": _now(), "finished": _now(), "derived_from": derived})
            fileio.write_json(staging / "metrics.json", {"cv": cv["all"], "per_seed": per_seed})
            _write_recipe(source_dir / RECIPE, staging / RECIPE, tta)
            write_manifest(staging, Manifest.model_validate(member.model_dump()))  # last: the member is whole
            model_dir = store.publish_model(staging, competition, name)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return RepredictSummary(name=name, source=source, competition=competition, model_dir=model_dir,
                            tta=tta.record, source_tta=manifest.tta, runs=len(network.weights), cv=cv["all"],
                            source_cv=manifest.cv, seconds=time.perf_counter() - started, images_from=how)


def _check_network(source_dir: Path, manifest: Manifest) -> None:
    from .predict import check_predictable

    if manifest.predict is not None and manifest.predict.head is not None:
        raise StoreError(f"{source_dir / MANIFEST}: model '{manifest.name}' is a {manifest.predict.head} head on "
                         f"cached features (finetune.mode: embeddings): its folds hold the head alone, trained on "
                         f"the features of its own views, so other views need other features; set the recipe's "
                         f"tta and train it again (the features are cached per view, the head trains in seconds)")
    check_predictable(source_dir, manifest, doing="re-predict it")


def _views(tta_text: str, shift: float | None, manifest: Manifest) -> TTA:
    views = tuple(parse_views(tta_text))
    if shift is None:  # the source's shift, so that its own views re-predict as they were
        recorded = manifest.tta if isinstance(manifest.tta, dict) else {}
        shift = recorded.get("shift", TTA.shift)
    if not 0 < shift < 0.5:
        raise RecipeError(f"--shift: expected a fraction of the image side above 0 and below 0.5, got {shift}")
    return TTA(views, shift)


def _check_name(store: Store, competition: str, name: str, source: str, force: bool) -> None:
    if not NAME_PATTERN.match(name):
        raise KitError(f"--as: '{name}' is not a model name (letters, digits, and _ . + - after the first)")
    if not store.has_manifest(competition, name):
        return
    existing = store.manifest(competition, name)
    if existing.derived_from is None:  # a trained model's weights are never replaced by a re-predict
        raise StoreError(f"{store.model_dir(competition, name)}: '{name}' is a trained model"
                         f"{' (the source itself)' if name == source else ''}, not a re-predicted one; "
                         f"give the new member another name with --as")
    if not force:
        raise StoreError(f"{store.model_dir(competition, name)}: member '{name}' already exists (re-predicted from "
                         f"{existing.derived_from.source} with TTA {describe(existing.tta)}); --force replaces it, "
                         f"--as gives the new one another name")


def _load_inputs(store: Store, manifest: Manifest, source_dir: Path, reporter: Reporter):
    """The competition's images (from the decoded cache when it is there), its folds and the recipe's
    predict.batch_size, each checked to be what the source was trained on."""
    from .competition import load_competition, resolve_competition
    from .paths import check_store, competition_inputs
    from .schema import read_yaml

    recipe_path = source_dir / RECIPE
    if not recipe_path.is_file():
        raise StoreError(f"{recipe_path}: missing; it says where model '{manifest.name}''s competition files are; "
                         f"retrain the model with --force")
    recipe = read_yaml(recipe_path)
    if not isinstance(recipe, dict) or "competition" not in recipe:
        raise StoreError(f"{recipe_path}: competition: missing (not a recipe kit stored); retrain the model with --force")
    spec = resolve_competition(recipe["competition"], str(recipe_path))
    check_store(store.root, competition_inputs(spec))
    data = load_competition(spec, image_size=recipe.get("image_size"), reporter=reporter)
    if data.cache_folder is not None:
        how = f"{'decoded now into' if data.decoded else 'from the decoded cache'} {data.cache_folder}"
    else:
        how = f"as stored ({spec.layout})"
    where = source_dir / MANIFEST
    if data.fingerprint != manifest.data_fingerprint:
        raise StoreError(f"{where}: the competition's data ({spec.root}) changed since '{manifest.name}' was trained "
                         f"(fingerprint {manifest.data_fingerprint} -> {data.fingerprint}); its weights would "
                         f"predict other images than its folds held out: retrain it with kit train --force")
    if list(data.image_size) != list(manifest.predict.decoded_size) or data.channels != manifest.predict.channels:
        raise StoreError(f"{where}: images of {data.image_size[0]}x{data.image_size[1]}x{data.channels}, but the model "
                         f"was trained on {'x'.join(map(str, manifest.predict.decoded_size))}x{manifest.predict.channels}")
    folds = store.folds(manifest)
    if folds.hash != manifest.folds_hash:
        raise StoreError(f"{folds.path}: the folds changed since '{manifest.name}' was trained (hash {folds.hash}, "
                         f"model recorded {manifest.folds_hash}); restore the file, or retrain the model with --force")
    check_folds_fit(manifest, folds, where)
    if not np.array_equal(fileio.text_array(folds.ids), fileio.text_array(data.train_ids)):
        raise StoreError(f"{folds.path}: its ids are not the competition's training ids in order; retrain the model "
                         f"with --force")
    if fileio.array_hash(data.test_ids) != manifest.test_ids_hash:
        raise StoreError(f"{where}: the competition's test ids are not the ones '{manifest.name}' recorded; retrain it")
    batch_size = (recipe.get("predict") or {}).get("batch_size", 512)  # PredictConfig's default
    return data, folds, int(batch_size), how


def _predict_folds(network, data, folds, tta: TTA, batch_size: int, staging: Path, name: str, derived: DerivedFrom,
                   reporter: Reporter) -> tuple[dict, dict]:
    """Each (seed, fold)'s weights on its held-out rows and the test set, written as kit train writes a fold.
    -> (the member's CV metrics: {'all', 'headline'}, per-seed headline metrics)."""
    from .metrics import HEADLINE
    from .report import classification_metrics
    from .train.loop import predict_proba
    from .train.resident import batches_for

    settings, manifest = network.settings, network.manifest
    # the test set is the same for every (seed, fold): held (and on the CPU normalised) once, as kit train does
    test_batches = batches_for(data.test_images, None, np.arange(len(data.test_ids)), batch_size,
                               network.normalizer, settings.device)
    runs = [(s, k) for s in manifest.seeds for k in range(folds.n_folds)]
    seed_oofs = {s: np.full((len(folds.ids), len(manifest.classes)), np.nan, dtype=np.float32) for s in manifest.seeds}
    reporter.start("repredict", f"{name}: {len(runs)} fold weights, TTA {describe(tta.record)}", total=len(runs))
    try:
        for (seed, k), path in zip(runs, network.weights):
            reporter.advance("repredict", 0, description=f"{name}: seed {seed} fold {k} of {folds.n_folds}")
            started = time.perf_counter()
            _, val_idx = folds.split(k)
            network.load(path)
            val_batches = batches_for(data.train_images, None, val_idx, batch_size, network.normalizer,
                                      settings.device)
            oof = predict_proba(network.model, val_batches, settings, tta)
            test = predict_proba(network.model, test_batches, settings, tta)
            for split, probs in (("held-out", oof), ("test", test)):
                if not np.isfinite(probs).all():
                    raise StoreError(f"{path}: its {split} predictions with TTA {describe(tta.record)} are NaN or "
                                     f"infinite; nothing written")
            record = {"seed": seed, "fold": k, "tta": tta.record, "derived_from": derived.source,
                      "weights_sha256": derived.weights[fold_subdir(seed, k)], "val_rows": len(val_idx),
                      "seconds": time.perf_counter() - started, "device": str(settings.device)}
            write_fold_files(staging / fold_subdir(seed, k), oof_ids=data.train_ids[val_idx], oof=oof,
                             test_ids=data.test_ids, test=test, record=record)
            seed_oofs[seed][val_idx] = oof
            reporter.advance("repredict")
    finally:
        reporter.finish("repredict")
    labels = data.train_labels  # the folds' ids are the training ids, in order (checked in _load_inputs)
    cv = classification_metrics(labels, np.mean(list(seed_oofs.values()), axis=0), data.classes)
    per_seed = {str(s): {m: v for m, v in classification_metrics(labels, oof, data.classes).items() if m in HEADLINE}
                for s, oof in seed_oofs.items()}
    return {"all": cv, "headline": {m: cv[m] for m in HEADLINE}}, per_seed


def _write_recipe(source: Path, target: Path, tta: TTA) -> None:
    """The source's stored recipe with the member's views: what its predictions were made with."""
    from .schema import read_yaml

    recipe = read_yaml(source)
    recipe["tta"] = {"views": list(tta.views), "shift": tta.shift}
    fileio.write_text(target, yaml.safe_dump(recipe, sort_keys=False))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

