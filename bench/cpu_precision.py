"""What `precision: auto` chooses on this CPU, and what each choice costs. One command:

    python bench/cpu_precision.py                      # airbench, resnet_small and vgg_small at 32 px
    python bench/cpu_precision.py --models airbench --batch-size 512 --rounds 5
    python bench/cpu_precision.py --models timm/tf_efficientnet_lite0 --size 128 --batch-size 64

For each net (10 classes, 3 channels, --size px (32), the recipe's own parameters where a CIFAR-10 recipe
names it) it times full training steps (forward, cross entropy, backward, SGD step) on random
batches four ways, in one process, taking turns round by round so that a change in the machine's
load lands on all four alike: fp32 contiguous (NCHW), fp32 channels_last, bf16 autocast contiguous,
bf16 autocast channels_last. Each round is --steps steps after one warm-up step; a way's figure is
its median round. Printed: images/s of each, the ratio of each to fp32 contiguous (measured in the
same run), what `precision: auto` / `memory_format: auto` pick on this CPU (kit/train/device.py:
bf16 and channels_last where the CPU has AMX tiles or AVX512-BF16, fp32 and contiguous elsewhere), and the load
average. Speeds differ between CPUs: compare the ratios of one run, not figures from two machines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from kit.models import build_model  # noqa: E402
from kit.recipe import ModelConfig  # noqa: E402
from kit.train.device import cpu_has_bf16_units, pick_device  # noqa: E402
from machine import describe, load_average  # noqa: E402

PARAMS = {"airbench": {"widths": [64, 256, 256]}}  # recipes/cifar10/airbench94.yaml's net
WAYS = [("fp32", "contiguous"), ("fp32", "channels_last"), ("bf16", "contiguous"), ("bf16", "channels_last")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["airbench", "resnet_small", "vgg_small"])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    auto = pick_device("cpu")
    picked = (f"{'bf16' if auto.amp_dtype is not None else 'fp32'}, "
              f"{'channels_last' if auto.channels_last else 'contiguous'}")
    print(f"CPU: {describe()}; bf16 units (AMX or AVX512-BF16): {'yes' if cpu_has_bf16_units() else 'no'}; precision auto picks {picked}")
    print(f"training steps at {args.size} px, batch {args.batch_size}, {args.steps} steps a round, {args.rounds} rounds\n")
    print("| net | way | images/s | x fp32 contiguous |")
    print("| --- | --- | ---: | ---: |")
    for name in args.models:
        speeds = measure(name, args)
        base = speeds[WAYS[0]]
        for way in WAYS:
            print(f"| {name} | {way[0]} {way[1]} | {speeds[way]:.0f} | {speeds[way] / base:.2f} |", flush=True)
    print(f"\nafter: {load_average()}")
    return 0


def measure(name: str, args) -> dict[tuple[str, str], float]:
    torch.manual_seed(0)
    x = torch.randn(args.batch_size, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch_size,))
    runs = {}
    for precision, memory_format in WAYS:
        settings = pick_device("cpu", precision, memory_format)
        model = build_model(ModelConfig(arch=name, params=PARAMS.get(name, {})), 10, 3, args.size)
        model.train()
        if hasattr(model, "stem") and hasattr(model.stem[0], "init_from_data"):
            model.stem[0].init_from_data(x)
        if settings.channels_last:
            model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
        runs[(precision, memory_format)] = (settings, model, optimizer, settings.to_device(x))
    seconds = {way: [] for way in WAYS}
    for round_ in range(args.rounds):
        for way in WAYS[:: 1 if round_ % 2 == 0 else -1]:
            settings, model, optimizer, inputs = runs[way]
            for step in range(args.steps + 1):
                if step == 1:  # the first step of a round warms caches and oneDNN's kernels up
                    started = time.perf_counter()
                with settings.autocast():
                    loss = F.cross_entropy(model(inputs), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            seconds[way].append(time.perf_counter() - started)
    return {way: args.steps * args.batch_size / statistics.median(s) for way, s in seconds.items()}


if __name__ == "__main__":
    sys.exit(main())
