"""Is kit's training loop as fast as a hand-written PyTorch loop? One command:

    python bench/throughput.py            # after `make cifar10`; also `make bench`

The same small CNN trains on the same CIFAR-10 subset two ways in one process, taking turns
epoch by epoch so that load from other processes on a shared machine hits both alike:

  hand-written: the minimal loop people write in a notebook: the images as a normalised float
                tensor built beforehand (outside the timing) on the device, a randperm per epoch,
                forward, cross-entropy, backward, optimizer step; then a no-grad pass over the
                validation rows. No progress bar, no logging, no checkpoint.
  kit:          kit.train.loop.fit for one epoch, exactly as `kit train` runs it: batches gathered
                from the memory-mapped uint8 image cache and normalised on the fly, the lr schedule,
                on-device loss/accuracy sums, the validation pass and its metrics, the rich progress
                bar, and the per-epoch checkpoint written (atomically, fsynced) to disk.

Both start from the same weights and use the same optimizer, batch size and threads. Then
inference over the 10,000 test images: kit's predict_proba against a no-grad loop over a prebuilt
tensor. Prints images/s of each and the ratio kit / hand-written (target >= 0.95 for both): in each
round the two run back to back, and the ratio judged is the median over rounds of the pair's ratio.

Options: --images N (train + validation rows, default 10000), --epochs N timed per path (default 8,
after one warm-up each; inference gets twice as many passes), --batch-size, --device auto|cpu|cuda. Exit code 1 if a ratio misses.
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
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from kit.competition import load_competition  # noqa: E402
from kit.console import RichReporter  # noqa: E402
from kit.models import build_model  # noqa: E402
from kit.recipe import ModelConfig, TrainConfig  # noqa: E402
from kit.train.batches import Normalizer  # noqa: E402
from kit.train.checkpoint import EpochCheckpoint  # noqa: E402
from kit.train.device import pick_device  # noqa: E402
from kit.train.loop import fit, predict_proba  # noqa: E402
from kit.train.resident import batches_for  # noqa: E402
from machine import cifar10_spec, describe  # noqa: E402

MODEL = ModelConfig(arch="vgg_small", params={"widths": [32, 64, 128], "convs_per_stage": 1, "dropout": 0.2})
TARGET = 0.95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    spec = cifar10_spec()
    if spec is None:
        return 2
    settings = pick_device(args.device)
    data = load_competition(spec)
    device_name = torch.cuda.get_device_name(settings.device) if settings.device.type == "cuda" else "CPU"
    print(f"device: {device_name}, amp {settings.amp_dtype}; {describe()}")

    rows = np.arange(args.images)
    train_rows, val_rows = rows[: int(0.8 * len(rows))], rows[int(0.8 * len(rows)):]
    normalizer = Normalizer.from_images(data.train_images, None)
    labels = data.train_labels
    cfg = TrainConfig(epochs=1, batch_size=args.batch_size, optimizer={"name": "adamw", "lr": 2e-3},
                      scheduler={"name": "constant"})
    torch.manual_seed(0)
    kit_model = build_model(MODEL, data.num_classes, data.channels, 32).to(settings.device)
    hand_model = build_model(MODEL, data.num_classes, data.channels, 32).to(settings.device)
    hand_model.load_state_dict(kit_model.state_dict())

    # the hand-written loop's data: a normalised float tensor, built once, outside the timing
    def tensor(images, rows_):
        return settings.to_device(normalizer(np.asarray(images[rows_])))
    X_train, X_val, X_test = tensor(data.train_images, train_rows), tensor(data.train_images, val_rows), \
        tensor(data.test_images, np.arange(len(data.test_ids)))
    y_train = torch.from_numpy(labels[train_rows]).to(settings.device)
    y_val = torch.from_numpy(labels[val_rows]).to(settings.device)
    hand_optimizer = torch.optim.AdamW(hand_model.parameters(), lr=2e-3)

    def hand_epoch() -> None:
        hand_model.train()
        order = torch.randperm(len(X_train), device=settings.device)
        for i in range(0, len(order) - args.batch_size + 1, args.batch_size):
            idx = order[i:i + args.batch_size]
            with settings.autocast():
                loss = F.cross_entropy(hand_model(X_train[idx]), y_train[idx])
            hand_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            hand_optimizer.step()
        hand_model.eval()
        with torch.no_grad():
            correct = sum((hand_model(X_val[i:i + 512]).argmax(1) == y_val[i:i + 512]).sum()
                          for i in range(0, len(X_val), 512))
        float(correct)

    checkpoint_dir = tempfile.TemporaryDirectory()
    reporter = RichReporter()
    # what kit train builds for a fold (resident on the device when the rows fit, as here)
    train_batches = batches_for(data.train_images, labels, train_rows, args.batch_size, normalizer, settings.device,
                                shuffle=True, drop_last=True)
    val_batches = batches_for(data.train_images, labels, val_rows, 512, normalizer, settings.device)
    test_batches = batches_for(data.test_images, None, np.arange(len(data.test_ids)), 512, normalizer, settings.device)
    print(f"kit's batches: {type(train_batches).__name__}")

    def kit_epoch() -> None:
        reporter.start("train", "kit", total=1)
        checkpoint = EpochCheckpoint(Path(checkpoint_dir.name) / "checkpoint.pt", key="bench")
        fit(kit_model, train_batches, val_batches, cfg, settings, reporter, progress_key="train", checkpoint=checkpoint)
        checkpoint.remove()  # as kit train does once a fold is done (else the next call would resume)
        reporter.finish("train")

    def hand_predict() -> None:
        hand_model.eval()
        with torch.inference_mode():
            out = [torch.softmax(hand_model(X_test[i:i + 512]).float(), 1) for i in range(0, len(X_test), 512)]
        torch.cat(out).cpu().numpy()

    def kit_predict() -> None:
        predict_proba(kit_model, test_batches, settings)

    n_train = len(train_rows) // args.batch_size * args.batch_size
    results = {}
    # an inference pass is short, so it gets twice the rounds: its median is then as steady as training's
    for phase, (kit_run, hand_run, images, rounds) in {
            "training": (kit_epoch, hand_epoch, n_train, args.epochs),
            "inference": (kit_predict, hand_predict, len(X_test), 2 * args.epochs)}.items():
        wall = {"kit": [], "hand-written": []}
        cpu = {"kit": [], "hand-written": []}
        for round_ in range(rounds + 1):  # round 0 warms both up and is not counted
            for name, run in (("hand-written", hand_run), ("kit", kit_run))[:: 1 if round_ % 2 else -1]:
                sync(settings)
                started, started_cpu = time.perf_counter(), time.process_time()
                run()
                sync(settings)
                if round_:
                    wall[name].append(time.perf_counter() - started)
                    cpu[name].append(time.process_time() - started_cpu)
        # On a GPU, wall time is the measure. On a shared CPU, other processes' load inflates the wall
        # time of whichever loop it hits, so the CPU time this process spent is measured too: both
        # loops do the same arithmetic, and kit's extra work (bars, logging, checkpoints) is CPU work too.
        timing = cpu if settings.device.type == "cpu" else wall
        speed = {name: images / statistics.median(t) for name, t in timing.items()}
        # the judged ratio pairs the two passes of each round (run back to back), so a machine that
        # drifts faster or slower over minutes moves both sides of a pair alike; its median over rounds
        ratio = statistics.median(h / k for h, k in zip(timing["hand-written"], timing["kit"]))
        wall_ratio = statistics.median(h / k for h, k in zip(wall["hand-written"], wall["kit"]))
        results[phase] = ratio
        print(f"{phase}: {images} images per pass, {rounds} rounds")
        print(f"  wall seconds: kit {fmt(wall['kit'])}, hand-written {fmt(wall['hand-written'])}; "
              f"median ratio {wall_ratio:.3f}")
        if settings.device.type == "cpu":
            print(f"  CPU seconds:  kit {fmt(cpu['kit'])}, hand-written {fmt(cpu['hand-written'])}")
        print(f"  kit {speed['kit']:.0f} images/s, hand-written {speed['hand-written']:.0f} images/s "
              f"(median {'CPU' if settings.device.type == 'cpu' else 'wall'} time); kit / hand-written, "
              f"median of the rounds' ratios: {ratio:.3f} (target >= {TARGET})")
    checkpoint_dir.cleanup()
    missed = [p for p, r in results.items() if r < TARGET]
    print("all targets met" if not missed else f"missed: {', '.join(missed)}")
    return 1 if missed else 0


def sync(settings) -> None:
    if settings.device.type == "cuda":
        torch.cuda.synchronize(settings.device)


def fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


if __name__ == "__main__":
    sys.exit(main())
