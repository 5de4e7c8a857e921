"""`kit predict`: a trained model on new image files, its folds (and seeds) averaged, the top classes per image.

Everything comes from the model's folder in the store: model.json says how the network was built
and how its inputs were made (channels, the size images were decoded at, the normalisation, the
input size, the TTA views), and each finished fold left its best weights in weights.pt. An image
is decoded as the competition's images were (kit/competition/decode.py), normalised and resized
by the same Normalizer, and predicted through the same predict_proba and TTA as the test set, so
a test image saved as a file gets the probabilities the store holds for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .competition import decode_image
from .competition.files import IMAGE_EXTENSIONS
from .errors import DataError, StoreError
from .progress import SILENT, Reporter
from .store import MANIFEST, Manifest, PredictInfo, Store, check_complete, read_manifest, \
    sample_submission_beside, weights_files
from .tta import TTA

# a competition's image files, and the netpbm formats Pillow also reads (quick test images are often saved so)
IMAGE_SUFFIXES = {*IMAGE_EXTENSIONS, ".ppm", ".pgm"}


@dataclass
class Prediction:
    image: Path
    top: list[tuple[str, float]]  # (class, probability), most probable first


@dataclass
class PredictResult:
    model: str
    competition: str
    runs: int  # (seed, fold) weights averaged
    tta: str | dict  # as model.json records it
    probs: np.ndarray  # images x classes, in the order of `predictions`
    predictions: list[Prediction]
    classes: list[str]  # the columns of probs


def find_model(store: Store, model: str, competition: str | None = None) -> Path:
    """A model's folder: `model` is a folder holding model.json, or a model's name in the store."""
    if (Path(model) / MANIFEST).is_file():
        return Path(model)
    competition = store.pick_competition(competition)
    store.manifest(competition, model)  # an unknown name: the error lists the models (did you mean ...)
    return store.model_dir(competition, model)


def collect_images(paths: list[Path]) -> list[Path]:
    """The image files named, and those inside named folders (recursively, sorted)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"{path}: no image files in this folder ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    return files


def load_image(path: Path, channels: int, decoded_size: tuple[int, int]) -> np.ndarray:
    """uint8 H x W x C as the competition's images were cached: same channels, same size."""
    height, width = decoded_size
    if height == width:  # resized as the cache resizes (or left alone when already that size)
        return decode_image(path, height, channels)
    image = decode_image(path, None, channels)
    if image.shape[:2] != (height, width):
        raise DataError(f"{path}: {image.shape[1]}x{image.shape[0]} pixels; this model's images were "
                        f"{width}x{height}")
    return image


@dataclass
class StoredNetwork:
    """A stored model's network, built once, ready to take each (seed, fold)'s weights in turn; with
    the device settings, normaliser and views its predictions were made with. Made by open_network for
    kit predict and kit repredict alike, so both rebuild the network exactly as training left it."""

    model_dir: Path
    manifest: Manifest
    weights: list[Path]  # one per (seed, fold), seeds outer, as the manifest lists them
    model: object  # torch.nn.Module, on settings.device
    settings: object  # kit.train.device.DeviceSettings
    normalizer: object  # kit.train.batches.Normalizer
    tta: TTA  # the views the model's stored predictions were made with

    def load(self, path: Path) -> None:
        """One (seed, fold)'s weights into the network (a state dict holds every weight and buffer)."""
        import torch

        try:
            self.model.load_state_dict(torch.load(path, map_location=self.settings.device, weights_only=True))
        except Exception as exc:  # damaged, or not this network's weights
            raise StoreError(f"{path}: does not load into {self.manifest.arch} ({type(exc).__name__}); "
                             f"retrain the model with --force") from None


def check_predictable(model_dir: Path, manifest: Manifest, doing: str = "predict new images") -> PredictInfo:
    """The manifest's predict section, or StoreError when the model's folds hold no network to run."""
    info = manifest.predict
    if info is None:
        raise StoreError(f"{model_dir / MANIFEST}: no 'predict' section (the model was trained by an older kit); "
                         f"retrain it with kit train --force to {doing}")
    if info.head is not None:
        raise StoreError(f"{model_dir / MANIFEST}: model '{manifest.name}' is a {info.head} head on cached features "
                         f"(finetune.mode: embeddings), whose folds hold no network to run on new images; its test "
                         f"predictions are in the store for kit blend (a linear_probe recipe stores the whole network)")
    return info


def open_network(model_dir: Path, device: str = "auto", hashed: bool = False,
                 runs: list[str] | None = None) -> StoredNetwork:
    """A finished model's network, built as it trained, and its weights files, each checked present
    (`hashed`: and its sha256 the one its fold.json recorded), before anything is predicted.
    `runs`: only these weights ('seed0/fold1', 'seed0/full'), of a model that need not have finished
    its other folds (an inference bundle holds the runs its blend used, kit/bundle.py)."""
    from .models import build_model
    from .recipe import ModelConfig
    from .train.batches import Normalizer
    from .train.device import pick_device

    pick_device(device)  # a device this machine lacks: refused before any reading
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    info = check_predictable(model_dir, manifest)
    if runs is None:
        check_complete(manifest, model_dir)
    weights = weights_files(model_dir, manifest, hashed=hashed, runs=runs)
    settings = pick_device(device, info.precision)  # the precision training predicted the test set with
    config = ModelConfig(arch=manifest.arch, params=info.params)  # no pretrained weights: ours replace them
    model = build_model(config, len(manifest.classes), info.channels, manifest.image_size).to(settings.device)
    return StoredNetwork(model_dir, manifest, weights, model, settings,
                         Normalizer(info.mean, info.std, manifest.image_size), TTA.from_record(manifest.tta))


def load_images(images: list[Path], info: PredictInfo, advance=lambda: None) -> np.ndarray:
    """The image files as one uint8 array (N x H x W x C), decoded as the model's competition images
    were; `advance()` after each."""
    pixels = []
    for path in images:
        pixels.append(load_image(path, info.channels, tuple(info.decoded_size)))
        advance()
    return np.stack(pixels)


def predict_runs(network: StoredNetwork, pixels: np.ndarray, weights: list[Path], batch_size: int = 256,
                 advance=lambda: None) -> list[np.ndarray]:
    """Each of `weights` loaded into the network in turn, on `pixels`, through its TTA views: one
    (images x classes) float32 softmax per weights file; `advance()` after each."""
    from .train.loop import predict_proba
    from .train.resident import batches_for

    # the images held on the device and normalised once, as the test set is in training, for every fold
    batches = batches_for(pixels, None, np.arange(len(pixels)), batch_size, network.normalizer,
                          network.settings.device)
    runs = []
    for path in weights:
        network.load(path)
        runs.append(predict_proba(network.model, batches, network.settings, network.tta))
        advance()
    return runs


def predict_images(model_dir: Path, images: list[Path], top: int = 5, device: str = "auto",
                   batch_size: int = 256, reporter: Reporter = SILENT) -> PredictResult:
    """Every finished (seed, fold) of the model on `images`; softmax averaged over folds, seeds and TTA views."""
    if top < 1:
        raise DataError(f"--top: expected a positive number of classes, got {top}")
    network = open_network(model_dir, device)
    manifest = network.manifest
    classes = manifest.classes
    pixels = load_images(images, manifest.predict)
    reporter.start("predict", f"{manifest.name}: {len(network.weights)} fold weights", total=len(network.weights))
    try:
        runs = predict_runs(network, pixels, network.weights, batch_size, lambda: reporter.advance("predict"))
    finally:
        reporter.finish("predict")
    probs = (np.sum(runs, axis=0, dtype=np.float64) / len(runs)).astype(np.float32)
    k = min(top, len(classes))
    predictions = [Prediction(path, [(classes[c], float(row[c])) for c in np.argsort(-row, kind="stable")[:k]])
                   for path, row in zip(images, probs)]
    return PredictResult(model=manifest.name, competition=manifest.competition, runs=len(network.weights),
                         tta=manifest.tta, probs=probs, predictions=predictions, classes=classes)


# the layouts whose test images are files named by a pattern ('test/{id}', 'test/img_{id}.png'); the others'
# (pixel_csv, npz) have no test files, so an image file's id is its stem
IMAGE_FILE_LAYOUTS = ("labels_csv", "class_folders")


@dataclass
class SubmissionPlan:
    out: Path
    fmt: object  # kit.submit.SubmissionFormat: columns, and the ids in the order the rows take
    ids: np.ndarray  # each image's id, in the images' order
    follows_sample: bool  # the images are the competition's test set: the sample submission's ids and order


def image_ids(images: list[Path], model_dir: Path) -> np.ndarray:
    """Each image's id as the competition names its test images: the part of the file name its
    test_images pattern puts {id} in ('test/img_{id}.png': img_7.png is '7'), else the file's stem."""
    from .competition.files import ImagePattern, _id_of
    from .schema import read_yaml

    pattern = None
    recipe_path = Path(model_dir) / "recipe.yaml"
    if recipe_path.is_file():
        entry = read_yaml(recipe_path).get("competition")
        if isinstance(entry, dict) and entry.get("layout") in IMAGE_FILE_LAYOUTS:
            pattern = ImagePattern.parse(Path("."), entry.get("test_images") or "test/{id}")
    ids = []
    for path in images:
        id_ = _id_of(pattern, path.name) if pattern is not None else path.stem
        if not id_:
            raise DataError(f"{path}: its name does not match the competition's test_images pattern "
                            f"'{pattern.text}', so it has no id for the submission")
        ids.append(id_)
    ids = np.array(ids, dtype=str)
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = unique[counts > 1][0]
        a, b = [images[i] for i in np.flatnonzero(ids == dup)[:2]]
        raise DataError(f"{a} and {b}: both have the id '{dup}'; a submission has one row per id")
    return ids


def plan_images_submission(out: Path, images: list[Path], model_dir: Path,
                            store_root: Path | None = None, option: str = "--submission") -> SubmissionPlan:
    """`kit predict --submission`, checked before anything is predicted: the format the CSV of `images`
    takes (kit.submit.SubmissionFormat) and their ids, from the file names.

    The competition's format is its sample submission's (the copy in the store): its id column, and its
    label column or one column per class. The rule for ids: when they are exactly the sample
    submission's, the CSV follows it (its order, checked as kit validate checks); when none of them is,
    the images are a new test set, and the rows follow the images' order with the same columns; some
    but not all is refused (a test folder with images missing, or mixed with others), since neither
    kind of submission would then be right."""
    from .paths import check_output
    from .submit import SubmissionFormat, submission_format

    check_output(out, option, store=store_root)
    model_dir = Path(model_dir)
    sample = sample_submission_beside(model_dir)
    if not sample.is_file():
        raise DataError(f"{sample}: no sample submission beside the model, so the competition's format is unknown; "
                        f"run kit train on its recipe (which copies it into the store), or predict without --submission")
    ids = image_ids(images, model_dir)
    fmt = submission_format(sample, read_manifest(model_dir).classes)
    expected, given = set(fmt.ids), set(ids)
    if given != expected and given & expected:
        missing, extra = sorted(expected - given), sorted(given - expected)
        raise DataError(f"{option}: {len(given & expected)} of the {len(ids)} images have ids of the sample "
                        f"submission ({sample}), but " + (f"{len(missing)} of its {len(expected)} ids have no image "
                                                           f"(e.g. '{missing[0]}')" if missing else "")
                        + (" and " if missing and extra else "")
                        + (f"{len(extra)} images are not in it (e.g. '{extra[0]}')" if extra else "")
                        + "; give every test image of the competition, or only images of a new test set")
    if given != expected:  # a new test set: the sample's columns, the images' ids in their order
        fmt = SubmissionFormat(fmt.id_column, fmt.columns, ids, fmt.probabilities)
    return SubmissionPlan(Path(out), fmt, ids, given == expected)


def write_images_submission(plan: SubmissionPlan, result: PredictResult) -> Path:
    """The CSV plan_images_submission planned, from the fold-averaged probabilities (validated, written atomically)."""
    from .submit import write_submission

    return write_submission(plan.out, plan.fmt, plan.ids, result.probs, result.classes)
