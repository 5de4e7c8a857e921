"""An inference bundle for code competitions: `kit export` writes it, `kit predict-bundle` runs it.

A code competition runs the submission on a machine with the hidden test set, kit and nothing else:
no store, no training data, no internet. `kit export` copies out of the store what a blend needs to
predict new test images, and `kit predict-bundle DIR TEST_FOLDER` (or `python -m kit.bundle`) writes
the submission `kit blend` would have written for them:

    DIR/
      bundle.json                 what the bundle is: kit version, members, blend, submission format,
                                  and every other file's size and sha256 (checked before anything runs)
      README.txt                  the command to run
      sample_submission.csv       the competition's: its columns (labels or one per class), its ids
      reference_submission.csv    the blend's submission for the competition's own test set
      blender.json                the blender refit on every OOF row, as kit blend fitted it: its
                                  parameters and fitted weights (JSON numbers are exact float64)
      blender/                    a stacker's fitted model: logreg.npz (arrays), lgbm.txt (LightGBM's
                                  own text model); no pickle anywhere
      models/<model>/             as in the store: model.json, recipe.yaml, and per run the
        seed<s>/fold<k>/            weights.pt and a fold.json that vouches for it alone
        seed<s>/full/               (a --full refit, where the blend's test predictions came from it)

The layout of models/ is the store's, so the network is rebuilt and run by kit/predict.py's
open_network and predict_runs, as kit predict and kit repredict do: one prediction path. A
re-predicted member's weights are its source's: they are copied into models/<source>/ and checked
against the sha256 the member recorded, as in the store.

Export refits the blender on the store's OOF rows and refuses to write a bundle whose fitted state,
read back from the bundle's own files, does not turn the store's test predictions into the blend's
submission CSV byte for byte.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__, fileio
from .errors import KitError, StoreError
from .progress import SILENT, Reporter
from .store import DONE, MANIFEST, WEIGHTS, Store, full_subdir, fold_subdir, read_json, sha256_of, weights_files

BUNDLE = "bundle.json"
BUNDLE_FORMAT = 1
MODELS = "models"
BLENDER = "blender.json"
SAMPLE = "sample_submission.csv"
REFERENCE = "reference_submission.csv"
README = "README.txt"
RECIPE = "recipe.yaml"


class BundleError(KitError):
    """A bundle cannot be exported as asked, or a bundle's files are not the ones exported."""


@dataclass
class BundleMember:
    name: str  # the blend's member ('vgg', 'vgg@s1' for one seed of it)
    model: str  # its folder under models/
    runs: list[str]  # the weights whose test predictions it averaged: 'seed0/fold1', 'seed0/full'
    test_predictions: str  # as the blend's report says: 'fold average', 'full refit (...)'


@dataclass
class ExportSummary:
    out: Path
    members: list[BundleMember]
    method: str
    files: int
    megabytes: float
    checked_against: Path | None  # the blend's submission the refit blender reproduced
    seconds: float


@dataclass
class BundlePrediction:
    out: Path
    rows: int
    members: list[str]
    runs: int
    follows_sample: bool
    seconds: float


# ---- export

def read_blend_report(path: Path) -> tuple[dict, Path]:
    """A blend named by its submission CSV, its report folder or its report.json -> (report, submission CSV)."""
    from .report import report_dir

    path = Path(path)
    if path.suffix == ".csv":
        submission, report_path = path, report_dir(path) / "report.json"
    else:
        report_path = path if path.name == "report.json" else path / "report.json"
        folder = report_path.parent
        submission = folder.with_name(folder.name.removesuffix(".report") + ".csv")
    if not report_path.is_file():
        raise BundleError(f"{path}: no blend report at {report_path}; expected the submission CSV kit blend wrote, "
                          f"its report folder (SUBMISSION.report/) or report.json, or -m MODEL")
    report = read_json(report_path)
    missing = [k for k in ("competition", "method", "params", "members", "folds") if k not in report]
    if missing:
        raise BundleError(f"{report_path}: {missing[0]}: missing (not a report kit blend wrote)")
    if not submission.is_file():
        recorded = Path(str(report.get("submission", "")))
        if not recorded.is_file():
            raise BundleError(f"{submission}: missing, the submission of the blend {report_path} reports; export "
                              f"checks the bundle against it: run kit blend again")
        submission = recorded
    return report, submission


def export_bundle(store: Store, out: Path, blend: Path | None = None, models: list[str] | None = None,
                  competition: str | None = None, force: bool = False, reporter: Reporter = SILENT) -> ExportSummary:
    """Write the bundle of a blend (named by its submission or report: `blend`) or of plain models
    (`models`, averaged by the soft vote) to `out`, built in a hidden folder beside it and renamed
    into place. Everything that can be refused is checked before the bundle is published."""
    started = time.perf_counter()
    out = Path(out)
    if (blend is None) == (not models):
        raise BundleError("kit export: give the blend's submission CSV (or its report), or -m MODEL, not both")
    check_out(out, store, force)
    if blend is not None:
        report, submission = read_blend_report(blend)
        competition = store.pick_competition(report["competition"])
        if report.get("outside"):
            raise BundleError(f"{submission}: the blend has outside submissions ({', '.join(report['outside'])}), "
                              f"CSVs made elsewhere that no bundle can recompute for a hidden test set; blend "
                              f"without --submission to export")
        names, method, params = list(report["members"]), report["method"], report["params"]
        folds = report["folds"] if report.get("partial") else None
        sources = report.get("test_predictions") or {n: "fold average" for n in names}  # before kit train --full
    else:
        from .blend.members import select_members

        competition = store.pick_competition(competition, models=models)
        names, _ = select_members(store, competition, models)
        method, params, folds, submission = "soft", {"weights": None}, None, None
        sources = {n: "fold average" for n in names}
    members, P_oof, y, P_test, test_ids = _members_of_blend(store, competition, names, folds, sources)

    from .blend.registry import create_blender
    from .submit import submission_format, submission_text

    blender = create_blender(method, **params).fit(P_oof, y)  # the fit kit blend wrote: every OOF row
    classes = store.classes(competition)
    fmt = submission_format(store.sample_submission(competition), classes)
    staging = _staging_dir(out)
    try:
        write_blender(staging, blender)
        # the state as the bundle will read it back, on the store's test predictions
        text = submission_text(fmt, test_ids, load_blender(staging).predict_proba(P_test), classes)
        if submission is not None:
            _check_reproduces(submission, text, method)
        bundle_members = _copy_members(store, competition, members, staging, reporter)
        shutil.copyfile(store.sample_submission(competition), staging / SAMPLE)
        fileio.write_text(staging / REFERENCE, text)
        fileio.write_text(staging / README, _readme(out, method, bundle_members))
        _write_bundle_json(staging, competition, classes, fmt, method, params, folds, bundle_members, submission)
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in files)
        _publish(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return ExportSummary(out=out, members=bundle_members, method=method, files=len(files), megabytes=size / 1e6,
                         checked_against=submission, seconds=time.perf_counter() - started)


def check_out(out: Path, store: Store, force: bool) -> None:
    """--out: a new or empty folder outside the store; with `force`, an earlier bundle (a folder with
    bundle.json) is replaced. A folder that is not a bundle is never deleted, --force or not."""
    from .paths import check_output

    check_output(out, "--out", store=store.root, folder=True)
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / BUNDLE).is_file():
        raise BundleError(f"{out}: --out: a folder that is not empty and holds no {BUNDLE} (not a bundle); give a "
                          f"new or empty folder (--force replaces an earlier bundle only)")
    if not force:
        raise BundleError(f"{out}: --out: already holds a bundle; --force replaces it, or give another folder")


def _members_of_blend(store: Store, competition: str, names: list[str], folds: list[int] | None,
                      sources: dict[str, str]):
    """The blend's members read from the store as kit blend read them (kit/blend/members.py's
    load_members, the same seeds split, folds and refits) -> (members with their model and runs,
    OOF stack, labels, test stack, test ids), refused where the store no longer holds what the
    blend used."""
    from .blend.members import load_members

    def model_of(name: str) -> str:
        base, at, seed = name.rpartition("@s")
        return base if at and seed.isdigit() and not store.has_manifest(competition, name) else name

    models = list(dict.fromkeys(model_of(n) for n in names))
    split = any(model_of(n) != n for n in names)
    full = any(str(sources.get(n, "")).startswith("full") for n in names)
    loaded, got = load_members(store, competition, models, split, folds, full)
    by_name = {m.name: m for m in loaded}
    members = []
    for name in names:
        if name not in by_name:
            raise BundleError(f"member '{name}' of the blend is not in the store now ({', '.join(by_name)}); run "
                              f"kit blend again and export its new submission")
        if name in sources and got[name] != sources[name]:
            raise BundleError(f"member '{name}': its test predictions would come from its {got[name]}, but the "
                              f"blend used its {sources[name]} (the store changed since); run kit blend again and "
                              f"export its new submission")
        member = by_name[name]
        seeds = [int(name.rpartition("@s")[2])] if model_of(name) != name else member.manifest.seeds
        if got[name].startswith("full"):
            runs = [full_subdir(s) for s in seeds]
        else:
            runs = [fold_subdir(s, k) for s in seeds for k in (folds or range(member.manifest.n_folds))]
        members.append((member, BundleMember(name, model_of(name), runs, got[name])))
    ref = members[0][0]
    fold_table = store.folds(ref.manifest)
    index = {c: i for i, c in enumerate(ref.classes)}
    y = np.array([index[label] for label in fold_table.labels])
    rows = np.isin(fold_table.fold, folds) if folds is not None else slice(None)
    P_oof = np.stack([m.oof[rows] for m, _ in members])
    P_test = np.stack([m.test for m, _ in members])
    return members, P_oof, y[rows], P_test, ref.test_ids


def _check_reproduces(submission: Path, text: str, method: str) -> None:
    written = submission.read_bytes()
    if written == text.encode("utf-8"):
        return
    ours, theirs = text.splitlines(), written.decode("utf-8", "replace").splitlines()
    line = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    raise BundleError(f"{submission}: line {line + 1}: the blender refit on the store's OOF rows (blend:{method}, "
                      f"the report's params) gives '{ours[line] if line < len(ours) else '(no line)'}', the file has "
                      f"'{theirs[line] if line < len(theirs) else '(no line)'}'; the store changed since kit blend "
                      f"wrote it? run kit blend again and export its new submission; nothing written")


def _copy_members(store: Store, competition: str, members, staging: Path, reporter: Reporter) -> list[BundleMember]:
    """Each member's manifest and recipe, and the weights of its runs (a re-predicted member's from its
    source), each checked against the sha256 recorded when it was written, into staging/models/."""
    from .predict import check_predictable

    out = []
    reporter.start("export", f"copying the weights of {len(members)} members", total=len(members))
    try:
        for member, bundled in members:
            model_dir = store.model_dir(competition, bundled.model)
            manifest = member.manifest
            if manifest.predict is not None and manifest.predict.head is not None:
                raise BundleError(f"{model_dir / MANIFEST}: member '{bundled.name}' is a {manifest.predict.head} head "
                                  f"on cached backbone features (finetune.mode: embeddings); a bundle runs whole "
                                  f"networks on images, so blend without it or train it as linear_probe")
            check_predictable(model_dir, manifest, doing="export it")
            weights = weights_files(model_dir, manifest, hashed=True, runs=bundled.runs)
            target = staging / MODELS / bundled.model
            for name in (MANIFEST, RECIPE):
                if (model_dir / name).is_file():
                    fileio.write_bytes(target / name, (model_dir / name).read_bytes())
            for path in weights:  # <model or its source>/seed<s>/fold<k>/weights.pt
                fold_dest = staging / MODELS / path.relative_to(model_dir.parent).parent
                fileio.write_bytes(fold_dest / WEIGHTS, path.read_bytes())
                _write_fold_record(path.parent, fold_dest)
            out.append(bundled)
            reporter.advance("export")
    finally:
        reporter.finish("export")
    return out


def _write_fold_record(fold_dir: Path, dest: Path) -> None:
    """The fold's fold.json, vouching for weights.pt alone (the predictions stay in the store)."""
    record = read_json(fold_dir / DONE)
    files = record.get("files") if isinstance(record, dict) else None
    entry = files.get(WEIGHTS) if isinstance(files, dict) else None
    if not isinstance(entry, dict) or "sha256" not in entry:  # an older fold.json: made here
        entry = {"bytes": (fold_dir / WEIGHTS).stat().st_size, "sha256": sha256_of(fold_dir / WEIGHTS)}
    fileio.write_json(dest / DONE, {**(record if isinstance(record, dict) else {}), "files": {WEIGHTS: entry}})


def _write_bundle_json(staging: Path, competition: str, classes: list[str], fmt, method: str, params: dict,
                       folds: list[int] | None, members: list[BundleMember], submission: Path | None) -> None:
    import sklearn
    import torch

    files = {p.relative_to(staging).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_of(p)}
             for p in sorted(staging.rglob("*")) if p.is_file()}
    fileio.write_json(staging / BUNDLE, {
        "kit_bundle": BUNDLE_FORMAT, "kit_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "competition": competition, "classes": classes,
        "submission_format": {"sample_submission": SAMPLE, "id_column": fmt.id_column, "columns": fmt.columns,
                              "answer": "probabilities" if fmt.probabilities else "labels"},
        "blend": {"method": method, "params": params, "state": BLENDER, "folds": folds,
                  "from_submission": None if submission is None else str(submission),
                  "reference_submission": REFERENCE},
        "members": [vars(m) for m in members],
        "versions": {"numpy": np.__version__, "torch": torch.__version__, "scikit-learn": sklearn.__version__},
        "files": files})


def _readme(out: Path, method: str, members: list[BundleMember]) -> str:
    return (f"A kit inference bundle: blend:{method} of {', '.join(m.name for m in members)}.\n\n"
            f"On a machine with kit installed (no store, no training data, no internet needed):\n\n"
            f"    kit predict-bundle {out.name} TEST_FOLDER --out submission.csv\n"
            f"    python -m kit.bundle {out.name} TEST_FOLDER --out submission.csv   (the same)\n\n"
            f"TEST_FOLDER holds the test images as files, named as the competition names them (the id is\n"
            f"the file name's part its test_images pattern marks, else the file's stem). Every file of the\n"
            f"bundle is checked against the sha256 in {BUNDLE} first; {REFERENCE} is the blend's\n"
            f"submission for the competition's own test set.\n")


def _staging_dir(out: Path) -> Path:
    """A hidden folder beside --out, renamed into place once the bundle is whole."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise fileio.write_error(out, exc) from None


def _publish(staging: Path, out: Path) -> None:
    """Rename the staged bundle to `out`; an earlier bundle there is moved aside first and removed
    only once the new one is in place."""
    old = None
    try:
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", suffix=".tmp", dir=out.parent))
            os.replace(out, old / out.name)
        os.replace(staging, out)
    except OSError as exc:
        if old is not None and (old / out.name).exists() and not out.exists():
            os.replace(old / out.name, out)
        raise fileio.write_error(out, exc) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---- the blender's fitted state, without pickle

# the scikit-learn classes a logreg stacker's pipeline is rebuilt from (by name: nothing else is ever built)
SKLEARN_STEPS = {"StandardScaler": "sklearn.preprocessing", "LogisticRegression": "sklearn.linear_model"}


def _fitted_attributes(obj) -> tuple[dict, dict]:
    """An estimator's fitted attributes (names ending in '_') -> (JSON-able values, numpy arrays)."""
    plain, arrays = {}, {}
    for key, value in vars(obj).items():
        if not key.endswith("_") or key.startswith("_") or key == "model_":
            continue
        if isinstance(value, (np.ndarray, np.generic)):
            arrays[key] = np.asarray(value)
        else:
            plain[key] = value
    return plain, arrays


def write_blender(folder: Path, blender) -> None:
    """blender.json (method, params, fitted attributes: arrays as {dtype, values}, exact in JSON) and,
    for a stacker, its fitted model in blender/: logreg.npz or LightGBM's text model lgbm.txt."""
    plain, arrays = _fitted_attributes(blender)
    state = {"method": blender.method_name, "params": blender.get_params(), "fitted": plain,
             "arrays": {k: {"dtype": str(a.dtype), "shape": list(a.shape), "values": a.ravel().tolist()}
                        for k, a in arrays.items()}}
    model = getattr(blender, "model_", None)
    if model is not None and blender.method_name == "logreg":
        steps, npz = [], {}
        for name, step in model.steps:
            step_plain, step_arrays = _fitted_attributes(step)
            steps.append({"name": name, "class": type(step).__name__, "params": step.get_params(),
                          "fitted": step_plain})
            npz.update({f"{name}.{k}": a for k, a in step_arrays.items()})
        fileio.write_npz(folder / "blender" / "logreg.npz", **npz)
        state["model"] = {"kind": "sklearn_pipeline", "steps": steps, "arrays": "blender/logreg.npz"}
    elif model is not None and blender.method_name == "lgbm":
        import lightgbm

        fileio.write_text(folder / "blender" / "lgbm.txt", model.booster_.model_to_string())
        state["model"] = {"kind": "lightgbm_booster", "file": "blender/lgbm.txt",
                          "classes": np.asarray(model.classes_).tolist(), "lightgbm": lightgbm.__version__}
    elif model is not None:
        raise BundleError(f"blend:{blender.method_name}: kit cannot save this blender's fitted model without pickle")
    if model is not None:
        import sklearn

        state["model"]["scikit-learn"] = sklearn.__version__
    fileio.write_json(folder / BLENDER, state)


class BoosterClassifier:
    """A LightGBM stacker's model read back from its text file: predict_proba as LGBMClassifier's
    (which returns the booster's probabilities, and for two classes [1 - p, p])."""

    def __init__(self, booster, classes: np.ndarray):
        self.booster, self.classes_ = booster, classes

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = self.booster.predict(X)
        return p if p.ndim == 2 else np.vstack((1.0 - p, p)).transpose()


def load_blender(folder: Path):
    """The blender write_blender saved, fitted, ready for predict_proba."""
    import importlib

    from .blend.registry import create_blender

    state = read_json(Path(folder) / BLENDER)
    blender = create_blender(state["method"], **state["params"])
    for key, value in state["fitted"].items():
        setattr(blender, key, value)
    for key, a in state["arrays"].items():
        setattr(blender, key, np.asarray(a["values"], dtype=a["dtype"]).reshape(a["shape"]))
    model = state.get("model")
    if model and model["kind"] == "sklearn_pipeline":
        from sklearn.pipeline import Pipeline

        with np.load(Path(folder) / model["arrays"], allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        steps = []
        for step in model["steps"]:
            if step["class"] not in SKLEARN_STEPS:
                raise BundleError(f"{Path(folder) / BLENDER}: model.steps: '{step['class']}' is not one of "
                                  f"{', '.join(SKLEARN_STEPS)}")
            estimator = getattr(importlib.import_module(SKLEARN_STEPS[step["class"]]), step["class"])(**step["params"])
            for key, value in step["fitted"].items():
                setattr(estimator, key, value)
            for key, a in arrays.items():
                if key.startswith(step["name"] + "."):
                    setattr(estimator, key.split(".", 1)[1], a)
            steps.append((step["name"], estimator))
        blender.model_ = Pipeline(steps)
    elif model and model["kind"] == "lightgbm_booster":
        import lightgbm

        booster = lightgbm.Booster(model_str=(Path(folder) / model["file"]).read_text(encoding="utf-8"))
        blender.model_ = BoosterClassifier(booster, np.asarray(model["classes"]))
    return blender


# ---- predict

def read_bundle(bundle_dir: Path) -> dict:
    """bundle.json, after every file it lists is checked present, of its size and of its sha256."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / BUNDLE
    if not path.is_file():
        raise BundleError(f"{bundle_dir}: no {BUNDLE}: not a kit bundle (kit export writes one)")
    try:
        bundle = read_json(path)
    except StoreError:
        raise BundleError(f"{path}: damaged or unreadable; export the bundle again (kit export)") from None
    if not isinstance(bundle, dict) or bundle.get("kit_bundle") != BUNDLE_FORMAT or "files" not in bundle:
        raise BundleError(f"{path}: kit_bundle: expected format {BUNDLE_FORMAT} with its files listed; export the "
                          f"bundle again with this kit ({__version__})")
    for name, expected in bundle["files"].items():
        file = bundle_dir / name
        if not file.is_file():
            raise BundleError(f"{file}: missing from the bundle ({BUNDLE} lists it); copy the whole bundle again")
        if file.stat().st_size != expected["bytes"] or sha256_of(file) != expected["sha256"]:
            raise BundleError(f"{file}: changed since the bundle was exported (its sha256 is not the one {BUNDLE} "
                              f"lists); copy the bundle again or export it anew; nothing was predicted")
    try:
        [BundleMember(**m) for m in bundle["members"]]
        bundle["classes"], bundle["blend"]["method"]
    except (KeyError, TypeError):
        raise BundleError(f"{path}: members, classes or blend: not as kit export writes them; export the bundle "
                          f"again") from None
    return bundle


def predict_bundle(bundle_dir: Path, images: list[Path], out: Path, device: str = "auto",
                   reporter: Reporter = SILENT) -> BundlePrediction:
    """The bundle's blend on the test images: each member's weights through its TTA views on the images
    decoded as its competition's were, averaged as the store averaged them, blended by the fitted
    blender, written in the competition's submission format. Reads nothing but the bundle and `images`."""
    from .predict import collect_images, load_images, open_network, plan_images_submission, predict_runs
    from .schema import read_yaml
    from .submit import write_submission

    started = time.perf_counter()
    bundle_dir = Path(bundle_dir)
    bundle = read_bundle(bundle_dir)
    if Path(out).resolve().is_relative_to(bundle_dir.resolve()):
        raise BundleError(f"{out}: --out: inside the bundle {bundle_dir}; write the submission elsewhere")
    files = collect_images(images)
    members = [BundleMember(**m) for m in bundle["members"]]
    # every check of the submission (path, format, ids) before anything is predicted
    plan = plan_images_submission(out, files, bundle_dir / MODELS / members[0].model, option="--out")
    networks = [open_network(bundle_dir / MODELS / m.model, device, runs=m.runs) for m in members]
    blender = load_blender(bundle_dir)
    if bundle["kit_version"] != __version__:
        reporter.message(f"the bundle was exported by kit {bundle['kit_version']}; this is kit {__version__}")
    total = sum(len(n.weights) for n in networks)
    pixels: dict[tuple, np.ndarray] = {}  # decoded once per (channels, size) the members need
    probs = []
    reporter.start("bundle", f"{len(members)} members, {total} weights on {len(files)} images", total=total)
    try:
        for member, network in zip(members, networks):
            info = network.manifest.predict
            key = (info.channels, tuple(info.decoded_size))
            if key not in pixels:
                reporter.start("decode", f"decoding {len(files)} images", total=len(files))
                try:
                    pixels[key] = load_images(files, info, lambda: reporter.advance("decode"))
                finally:
                    reporter.finish("decode")
            recipe_path = bundle_dir / MODELS / member.model / RECIPE
            recipe = read_yaml(recipe_path) if recipe_path.is_file() else {}
            batch_size = int(((recipe or {}).get("predict") or {}).get("batch_size", 512))  # as training predicted
            reporter.advance("bundle", 0, description=f"{member.name}: {len(network.weights)} weights")
            runs = predict_runs(network, pixels[key], network.weights, batch_size, lambda: reporter.advance("bundle"))
            probs.append(np.mean(runs, axis=0))  # as the store averages a member's runs (Store.assemble)
    finally:
        reporter.finish("bundle")
    blended = blender.predict_proba(np.stack(probs))
    write_submission(plan.out, plan.fmt, plan.ids, blended, bundle["classes"])
    return BundlePrediction(out=plan.out, rows=len(plan.ids), members=[m.name for m in members], runs=total,
                            follows_sample=plan.follows_sample, seconds=time.perf_counter() - started)


if __name__ == "__main__":  # python -m kit.bundle DIR TEST_FOLDER --out submission.csv
    import sys

    from .cli import app

    app(["predict-bundle", *sys.argv[1:]], prog_name="python -m kit.bundle")
