"""What does per-image augmentation cost a training epoch, and do worker processes pay off? One command:

    python bench/augmentation.py            # after `make cifar10`; --competition digits needs nothing

For CIFAR-10's 32 px images (N training images of the cache), in the same process:
1. the batch loader alone: one pass of each way of feeding batches, images per second;
2. training epochs of a small CNN fed each way, and each one's time against plain batches:
     plain          ArrayBatches, no augmentation (what a recipe without `augment` runs);
     PRESET w=K     AugmentedBatches with the preset's albumentations pipeline, K worker processes;
     PRESET batch   the preset as whole-batch tensor ops (kit/train/batch_augment.py), when it is only
                    flips, shifts and cut-outs (as `light` is): what kit train runs for such a preset.
Rounds take turns over the ways (one pass of each per round), so load from other processes on a
shared machine hits all alike; a first round warms up uncounted, then the median of the rounds is printed.

Options: --images N (default 5000), --rounds N (default 3), --presets light,heavy, --workers 0,2,
--batch-size 64, --competition (a competition file or built-in name).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from kit.augment import build_pipeline, resolve_transforms  # noqa: E402
from kit.competition import load_competition, resolve_competition  # noqa: E402
from kit.models import build_model  # noqa: E402
from kit.recipe import ModelConfig  # noqa: E402
from kit.train.augmented_batches import AugmentedBatches  # noqa: E402
from kit.train.batch_augment import plan  # noqa: E402
from kit.train.batches import ArrayBatches, Normalizer  # noqa: E402
from machine import describe, load_average  # noqa: E402

MODEL = ModelConfig(arch="vgg_small", params={"widths": [16, 32, 64], "convs_per_stage": 1, "dropout": 0.2})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--competition", default="recipes/cifar10/competition_5k.yaml")
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--presets", default="light,heavy")
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    spec = resolve_competition(args.competition)
    data = load_competition(spec)
    rows = np.arange(min(args.images, len(data.train_ids)))
    normalizer = Normalizer.from_images(data.train_images, data.image_size[0])
    print(f"machine: {describe()}")
    print(f"{spec.name}: {len(rows)} training images of {data.image_size[0]}x{data.image_size[1]}x{data.channels}, "
          f"batch size {args.batch_size}")

    ways = {"plain": ArrayBatches(data.train_images, data.train_labels, rows, args.batch_size, normalizer,
                                  shuffle=True, drop_last=True)}
    for preset in args.presets.split(","):
        on_batches = plan(resolve_transforms(preset), normalizer)
        if on_batches is not None:  # what kit train uses for flips, shifts and cut-outs (kit/train/batch_augment.py)
            ways[f"{preset} batch"] = ArrayBatches(data.train_images, data.train_labels, rows, args.batch_size,
                                                   normalizer, shuffle=True, drop_last=True, augment=on_batches)
        pipeline = build_pipeline(resolve_transforms(preset), data.image_size)
        for workers in map(int, args.workers.split(",")):
            ways[f"{preset} w={workers}"] = AugmentedBatches(data.train_images, data.train_labels, rows,
                                                             args.batch_size, normalizer, pipeline,
                                                             drop_last=True, workers=workers)

    loader = {name: [] for name in ways}
    for round_ in range(args.rounds + 1):  # round 0 warms up (imports, caches, first forks) and is not counted
        for name, batches in ways.items():
            started = time.perf_counter()
            for _x, _y in batches:
                pass
            if round_:
                loader[name].append(len(rows) / (time.perf_counter() - started))
    print("\nbatch loader alone, images/s (median of rounds):")
    for name, rates in loader.items():
        print(f"  {name:<12} {statistics.median(rates):9.0f}   ({', '.join(f'{r:.0f}' for r in rates)})")

    torch.manual_seed(0)
    model = build_model(MODEL, data.num_classes, data.channels, data.image_size[0])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    epochs = {name: [] for name in ways}
    for round_ in range(args.rounds + 1):
        for name, batches in ways.items():
            started = time.perf_counter()
            model.train()
            for x, y in batches:
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if round_:
                epochs[name].append(time.perf_counter() - started)
    plain = statistics.median(epochs["plain"])
    print(f"\ntraining epoch of {MODEL.arch} {MODEL.params['widths']}, seconds (median of rounds) and against plain:")
    for name, seconds in epochs.items():
        median = statistics.median(seconds)
        print(f"  {name:<12} {median:7.2f} s  x{median / plain:.3f}   ({', '.join(f'{s:.2f}' for s in seconds)})")
    print(f"{load_average()} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
