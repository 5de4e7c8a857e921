"""Does reading CIFAR-10 through kit's image cache cost training time? One command:

    python bench/data_loading.py            # after `make cifar10`

1. The one-time decode: every image of the competition (60,000 JPEGs) decoded into a fresh cache
   in a temporary folder, in parallel; prints images/s. Then a second load, which finds the cache
   and memory-maps it; prints its seconds.
2. Epochs of a small CNN on 10,000 training images, fed two ways in the same process, taking
   turns batch by batch (so that load from other processes on a shared machine hits both alike):
     kit:       the memory-mapped cache through kit's ArrayBatches (gather rows, to float, normalise),
                exactly what `kit train` does;
     in-memory: the same images as a normalised float tensor built beforehand, batches sliced from it.
   The model, its training step, batch size and shuffling are the same; only the data path differs.
   Prints the median epoch time of each and their ratio (target: kit / in-memory <= 1.10).

Options: --images N (default 10000), --epochs N per path (default 3), --batch-size, --workers,
--skip-decode (use the cache the competition already has). Exit code 1 if the ratio misses the target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from kit.competition import load_competition  # noqa: E402
from kit.models import build_model  # noqa: E402
from kit.recipe import ModelConfig  # noqa: E402
from kit.train.batches import ArrayBatches, Normalizer  # noqa: E402
from machine import cifar10_spec, describe, load_average  # noqa: E402

MODEL = ModelConfig(arch="vgg_small", params={"widths": [16, 32, 64], "convs_per_stage": 1, "dropout": 0.2})
TARGET = 1.10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per path (after one warm-up each)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: one per core)")
    parser.add_argument("--skip-decode", action="store_true", help="use the competition's existing cache")
    args = parser.parse_args()

    spec = cifar10_spec()
    if spec is None:
        return 2
    print(f"machine: {describe()}")

    with tempfile.TemporaryDirectory() as cache:
        if not args.skip_decode:
            os.environ["KIT_CACHE"] = cache  # a cold cache: every image decoded now
        started = time.perf_counter()
        data = load_competition(spec, workers=args.workers)
        seconds = time.perf_counter() - started
        n = len(data.train_ids) + len(data.test_ids)
        if data.decoded:
            print(f"decode: {n} images in {seconds:.1f} s = {n / seconds:.0f} images/s "
                  f"(whole load_competition, listing and CSVs included)")
        started = time.perf_counter()
        data = load_competition(spec)
        print(f"cached load: {time.perf_counter() - started:.2f} s (decoded again: {data.decoded}, "
              f"images are {type(data.train_images).__name__})")
        kit, memory = time_epochs(data, args)
        os.environ.pop("KIT_CACHE", None)

    ratio = statistics.median(kit) / statistics.median(memory)
    print(f"epoch seconds, kit (memory-mapped cache): {', '.join(f'{s:.2f}' for s in kit)}  median {statistics.median(kit):.2f}")
    print(f"epoch seconds, in-memory tensor:          {', '.join(f'{s:.2f}' for s in memory)}  median {statistics.median(memory):.2f}")
    print(f"ratio kit / in-memory: {ratio:.3f} (target <= {TARGET}): {'PASS' if ratio <= TARGET else 'FAIL'}; "
          f"{args.images / statistics.median(kit):.0f} vs {args.images / statistics.median(memory):.0f} images/s; "
          f"{load_average()} now")
    return 0 if ratio <= TARGET else 1


def time_epochs(data, args) -> tuple[list[float], list[float]]:
    """Seconds per epoch of each path. The two paths take turns batch by batch (who goes first
    alternates), so a busy neighbour on a shared machine slows both alike instead of one epoch."""
    rows = np.arange(min(args.images, len(data.train_ids)))
    labels = data.train_labels
    normalizer = Normalizer.from_images(data.train_images, None)
    # the baseline's data: decoded, normalised and in memory before any timing starts
    tensor = normalizer(np.asarray(data.train_images[rows]))
    tensor_labels = torch.from_numpy(labels[rows])

    torch.manual_seed(0)
    model = build_model(MODEL, data.num_classes, data.channels, data.image_size[0])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def kit_batches(seed):
        # what kit train does: gather rows from the memory-mapped cache, to float, normalise
        yield from ArrayBatches(data.train_images, labels, rows, args.batch_size, normalizer, shuffle=True,
                                seed=seed, drop_last=True)

    def memory_batches(seed):
        order = torch.from_numpy(np.random.default_rng(seed).permutation(len(rows)))
        for b in range(len(rows) // args.batch_size):
            idx = order[b * args.batch_size:(b + 1) * args.batch_size]
            yield tensor[idx], tensor_labels[idx]

    def timed_step(batches):
        started = time.perf_counter()
        x, y = next(batches)  # fetching the batch is part of what is timed
        step(x, y)
        return time.perf_counter() - started

    kit, memory = [], []
    for epoch in range(args.epochs + 1):  # epoch 0 warms up and is not counted
        from_kit, from_memory = kit_batches(epoch), memory_batches(epoch)
        kit_s = memory_s = 0.0
        for b in range(len(rows) // args.batch_size):
            if b % 2:
                kit_s += timed_step(from_kit)
                memory_s += timed_step(from_memory)
            else:
                memory_s += timed_step(from_memory)
                kit_s += timed_step(from_kit)
        if epoch:
            kit.append(kit_s)
            memory.append(memory_s)
            print(f"  epoch {epoch}: kit {kit_s:.2f} s, in-memory {memory_s:.2f} s", flush=True)
    return kit, memory


if __name__ == "__main__":
    sys.exit(main())
