"""Does augmentation or TTA help this recipe? The same recipe trained four ways, CV accuracy of each. One command:

    python bench/augment_accuracy.py                                   # digits, built in, about 4 minutes on 2 cores
    python bench/augment_accuracy.py recipes/cifar10/cpu_vgg.yaml --augment light --tta flip   # after `make cifar10`

The base recipe is trained as it is (plain), with the --augment transforms added (augment), with the
--tta views added (tta), and with both (augment+tta); nothing else changes (same folds, seed, epochs,
optimizer). Each variant is its own model in a scratch store (--store, default a temporary folder), so a
rerun with the same --store skips what is done. Prints CV accuracy, log loss and macro-F1 of each variant
and its difference from plain. With a fixed seed on the CPU, the tta variant trains the very weights of
plain (TTA changes only how the stored predictions are made), so their difference is TTA's alone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from kit.recipe import read_recipe_file, recipe_from_dict  # noqa: E402
from kit.store import Store  # noqa: E402
from kit.train import train_recipe  # noqa: E402
from machine import describe  # noqa: E402

# digits are 8 px and not mirror-symmetric: small rotations, zooms and one-pixel shifts, no flips
DIGITS_AUGMENT = [{"Affine": {"rotate": [-10, 10], "scale": [0.9, 1.1], "translate_percent": [-0.125, 0.125],
                              "p": 0.7}}]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", nargs="?", default="recipes/digits/vgg_small.yaml")
    parser.add_argument("--augment", default=None,
                        help="a preset name, or YAML for augment.transforms (default: rotate/scale/shift for digits)")
    parser.add_argument("--tta", default="shift", help="the tta views or preset (default: shift)")
    parser.add_argument("--epochs", type=int, default=None, help="train.epochs for every variant (default: the recipe's)")
    parser.add_argument("--store", default=None, help="scratch store (default: a temporary folder)")
    args = parser.parse_args()

    base = read_recipe_file(args.recipe)
    if args.epochs:
        base["train"] = {**base["train"], "epochs": args.epochs}
    augment = yaml.safe_load(args.augment) if args.augment else DIGITS_AUGMENT
    stem = Path(args.recipe).stem
    variants = {
        "plain": {},
        "augment": {"augment": {"transforms": augment}},
        "tta": {"tta": args.tta},
        "augment+tta": {"augment": {"transforms": augment}, "tta": args.tta},
    }
    store_dir = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="kit-augment-accuracy-"))
    print(f"machine: {describe()}")
    print(f"recipe {args.recipe}; augment {augment}; tta {args.tta}; store {store_dir}")

    results = {}
    for variant, extra in variants.items():
        name = f"{stem}{f'-{args.epochs}ep' if args.epochs else ''}-{variant.replace('+', '-')}"
        recipe = recipe_from_dict({**base, **extra}, source=args.recipe, default_name=name)
        started = time.perf_counter()
        summary = train_recipe(recipe, Store(store_dir))
        results[variant] = summary.cv
        print(f"  {variant:<12} CV accuracy {summary.cv['accuracy']:.4f}  log loss {summary.cv['log_loss']:.4f}  "
              f"macro-F1 {summary.cv['macro_f1']:.4f}  ({time.perf_counter() - started:.0f} s)", flush=True)

    plain = results["plain"]["accuracy"]
    print(f"\n{'variant':<12} {'accuracy':>9} {'vs plain':>9} {'log loss':>9} {'macro-F1':>9}")
    for variant, cv in results.items():
        print(f"{variant:<12} {cv['accuracy']:9.4f} {cv['accuracy'] - plain:+9.4f} {cv['log_loss']:9.4f} "
              f"{cv['macro_f1']:9.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
