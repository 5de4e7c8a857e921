"""The model zoo's table: parameters, CPU training throughput at 32 px, CV accuracy on digits. One command:

    python bench/model_zoo.py                      # every scratch net and six timm backbones
    python bench/model_zoo.py --models resnet9 timm/resnet18 --folds 3 --epochs 3

For each model (10 classes, 1 channel, as digits has):
1. parameters;
2. training throughput: images/s of full training steps (forward, backward, AdamW step) on random
   32 px batches of --batch-size, after two warm-up steps, on this process's CPU threads; the ratio
   to the first model in the list (vgg_small by default) is printed too, as both ran in this process;
3. a short k-fold run on the built-in digits (8x8 grayscale) through kit's own train_recipe into a
   temporary store: the model's recipe in recipes/digits/ if there is one (the timm backbones use
   recipes/digits/timm_resnet18.yaml with the arch swapped) at that recipe's image size (--cv-size
   forces one), with --folds folds, --epochs epochs, seed 0 and no early stopping; prints the
   out-of-fold accuracy, log loss and seconds.

The load average before and after is printed: on a shared machine the throughput moves with it.
Output: a Markdown table on stdout (docs/models.md quotes one).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a clone without installing

from kit.models import create_model, list_models  # noqa: E402
from kit.recipe import recipe_from_dict  # noqa: E402
from kit.store import Store  # noqa: E402
from kit.train import train_recipe  # noqa: E402
from machine import describe, load_average  # noqa: E402

TIMM_BACKBONES = ["timm/resnet18", "timm/resnet50", "timm/efficientnet_b0", "timm/mobilenetv3_small_100",
                  "timm/convnext_atto", "timm/densenet121"]


def throughput(recipe, size: int, batch_size: int, steps: int) -> tuple[int, float]:
    torch.manual_seed(0)
    model = create_model(recipe.model.arch, num_classes=10, in_chans=1, image_size=size, **recipe.model.params).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch_size, 1, size, size), torch.randint(0, 10, (batch_size,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    for _ in range(2):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - started
    return sum(p.numel() for p in model.parameters()), steps * batch_size / seconds


def bench_recipe(name: str, folds: int, epochs: int, size: int | None):
    """The model's digits recipe, shortened; the path it came from."""
    own = ROOT / "recipes" / "digits" / f"{name.replace('timm/', 'timm_')}.yaml"
    path = own if own.is_file() else ROOT / "recipes" / "digits" / "timm_resnet18.yaml"
    data = yaml.safe_load(path.read_text())
    if not own.is_file():
        data["model"]["arch"] = name
    if size is not None:
        data["image_size"] = size
    data["cv"]["folds"] = folds
    data["train"].update(epochs=epochs, seed=0, early_stopping=None)
    return recipe_from_dict(data, source=str(path), default_name=name.replace("/", "_")), path.relative_to(ROOT)


def cv_run(recipe, store: Path) -> dict:
    summary = train_recipe(recipe, Store(store))
    return {"accuracy": summary.cv["accuracy"], "log_loss": summary.cv["log_loss"], "seconds": summary.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list_models()[::-1] + TIMM_BACKBONES)
    parser.add_argument("--size", type=int, default=32, help="input side for the throughput")
    parser.add_argument("--cv-size", type=int, default=None, help="input side for the CV run (default: the recipe's)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--skip-cv", action="store_true")
    args = parser.parse_args()
    print(f"machine: {describe()}", flush=True)
    rows, baseline = [], None
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("KIT_DATA", str(Path(tmp) / "data"))
        for name in args.models:
            recipe, source = bench_recipe(name, args.folds, args.epochs, args.cv_size)
            params, speed = throughput(recipe, args.size, args.batch_size, args.steps)
            baseline = baseline or speed
            cv = {} if args.skip_cv else cv_run(recipe, Path(tmp) / "store")
            cv_size = recipe.image_size or 8  # digits' own size when the recipe leaves it out
            rows.append((name, recipe.model.params, params, speed, speed / baseline, cv, cv_size, source))
            print(f"{name}: {params / 1e6:.2f}M params, {speed:.0f} img/s"
                  + (f", CV accuracy {cv['accuracy']:.4f} in {cv['seconds']:.0f} s" if cv else ""), flush=True)
    print(f"{load_average()} after\n")
    print(f"| model | model.params | parameters | train img/s at {args.size} px (batch {args.batch_size}) | "
          f"vs {args.models[0]} | CV px | digits CV accuracy ({args.folds} folds, {args.epochs} epochs) "
          f"| CV log loss | CV run s | recipe |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, model_params, params, speed, ratio, cv, cv_size, source in rows:
        cells = [f"{cv_size}", f"{cv['accuracy']:.4f}", f"{cv['log_loss']:.4f}", f"{cv['seconds']:.0f}"] if cv else ["-"] * 4
        shown = ", ".join(f"{k}: {v}" for k, v in model_params.items()) or "defaults"
        print(f"| {name} | {shown} | {params / 1e6:.2f}M | {speed:.0f} | {ratio:.2f} | " + " | ".join(cells)
              + f" | {source} |")


if __name__ == "__main__":
    main()
