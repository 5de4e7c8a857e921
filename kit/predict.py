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
from .store import MANIFEST, Store, check_complete, read_manifest, weights_files
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


def predict_images(model_dir: Path, images: list[Path], top: int = 5, device: str = "auto",
                   batch_size: int = 256, reporter: Reporter = SILENT) -> PredictResult:
    """Every finished (seed, fold) of the model on `images`; softmax averaged over folds, seeds and TTA views."""
    import torch

    from .models import build_model
    from .recipe import ModelConfig
    from .train.batches import Normalizer
    from .train.device import pick_device
    from .train.loop import predict_proba
    from .train.resident import batches_for

    settings = pick_device(device)  # a device this machine lacks: refused before any reading
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    info = manifest.predict
    if info is None:
        raise StoreError(f"{model_dir / MANIFEST}: no 'predict' section (the model was trained by an older kit); "
                         f"retrain it with kit train --force to predict new images")
    if info.head is not None:
        raise StoreError(f"{model_dir / MANIFEST}: model '{manifest.name}' is a {info.head} head on cached features "
                         f"(finetune.mode: embeddings), whose folds hold no network to run on new images; its test "
                         f"predictions are in the store for kit blend (a linear_probe recipe stores the whole network)")
    check_complete(manifest, model_dir)
    weights = weights_files(model_dir, manifest)
    if top < 1:
        raise DataError(f"--top: expected a positive number of classes, got {top}")

    classes = manifest.classes
    pixels = np.stack([load_image(p, info.channels, tuple(info.decoded_size)) for p in images])
    normalizer = Normalizer(info.mean, info.std, manifest.image_size)
    tta = TTA.from_record(manifest.tta)
    settings = pick_device(device, info.precision)  # the precision training predicted the test set with
    # the images held on the device and normalised once, as the test set is in training, for every fold
    batches = batches_for(pixels, None, np.arange(len(pixels)), batch_size, normalizer, settings.device)
    config = ModelConfig(arch=manifest.arch, params=info.params)  # no pretrained weights: ours replace them
    # one network; each (seed, fold)'s weights replace the last one's (a state dict holds every weight and buffer)
    model = build_model(config, len(classes), info.channels, manifest.image_size).to(settings.device)
    total = np.zeros((len(pixels), len(classes)), dtype=np.float64)
    reporter.start("predict", f"{manifest.name}: {len(weights)} fold weights", total=len(weights))
    try:
        for path in weights:
            try:
                model.load_state_dict(torch.load(path, map_location=settings.device, weights_only=True))
            except Exception as exc:  # damaged, or not this network's weights
                raise StoreError(f"{path}: does not load into {manifest.arch} ({type(exc).__name__}); "
                                 f"retrain the model with --force") from None
            total += predict_proba(model, batches, settings, tta)
            reporter.advance("predict")
    finally:
        reporter.finish("predict")
    probs = (total / len(weights)).astype(np.float32)
    k = min(top, len(classes))
    predictions = [Prediction(path, [(classes[c], float(row[c])) for c in np.argsort(-row, kind="stable")[:k]])
                   for path, row in zip(images, probs)]
    return PredictResult(model=manifest.name, competition=manifest.competition, runs=len(weights),
                         tta=manifest.tta, probs=probs, predictions=predictions)
