"""Does airbench's method cost more through kit than as a plain PyTorch loop? One command:

    python bench/airbench_method.py       # after `make cifar10`; --device cuda on a GPU

The airbench net trains on the same CIFAR-10 subset with the same method (recipes/cifar10/
airbench94.yaml: whitening from 5,000 images, decoupled Nesterov SGD with 64x the lr for the
batch-norm biases, the triangle schedule, Lookahead-EMA, label smoothing 0.2, alternating flips,
2-px reflected shifts) two ways in one process, taking turns:

  hand-written: what one writes from airbench94.py in a notebook: the images as a normalised float
                tensor on the device, built beforehand (outside the timing); the whitening stem set
                from the first 5,000 of them by airbench's formulas; SGD whose lr and weight decay come
                from airbench's own formulas (not kit's optimizer_groups), a LambdaLR triangle, the
                Lookahead-EMA inline; each run pre-flips the set at random once and reflect-pads it,
                each epoch crops it (airbench's batch_crop), flips all of it in odd epochs, and
                slices a randperm into batches; a no-grad validation pass after every epoch.
  kit:          kit.train.loop.fit with the recipe's train section (its epochs set to --epochs), as
                `kit train` runs a fold: the batches kit train builds (resident, the batch
                augmentation planned as kit/train/run.py plans it), the rich progress bar, the
                validation metrics and the per-epoch checkpoint written to disk.

Whole runs are timed, not single epochs: the method's schedule spans the run (the triangle peaks at
23% of all steps, the Lookahead starts at epoch 3, the whitening bias freezes after epoch 3), so a
one-epoch fit would be another method, and fit's per-run setup (optimizer, whitening from 5,000
images) is part of what a run costs. Round 0 is a one-epoch warm-up of each, not counted; then in
each of --rounds rounds both paths train --epochs epochs from the same initial weights, back to
back, the first of the pair alternating. On the CPU the measure is the process's CPU time (other
processes' load lands on wall time; wall is printed too); on a GPU wall time, synchronised. The ratio
judged is the median over rounds of each round's hand-written / kit time; exit code 1 if it is under
0.98. The held-out accuracy each reached in the last round is printed: similar figures say the two
are the same method (the shuffles and augmentation draws differ, so they are not identical).

Options: --images N (train + validation rows, 80/20, default 10000), --epochs N per run (default 4:
the Lookahead and the bias freeze both happen), --rounds N (default 3), --device auto|cpu|cuda.
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
from kit.recipe import load_recipe  # noqa: E402
from kit.train.batch_augment import BatchAugment  # noqa: E402
from kit.train.batch_augment import plan as plan_batch_augment  # noqa: E402
from kit.train.batches import Normalizer  # noqa: E402
from kit.train.checkpoint import EpochCheckpoint  # noqa: E402
from kit.train.device import pick_device  # noqa: E402
from kit.train.loop import fit  # noqa: E402
from kit.train.resident import batches_for  # noqa: E402
from machine import cifar10_spec, describe  # noqa: E402

RECIPE = "recipes/cifar10/airbench94.yaml"
TARGET = 0.98
SEED = 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    spec = cifar10_spec()
    if spec is None:
        return 2
    recipe = load_recipe(RECIPE)
    settings = pick_device(args.device, recipe.train.precision)
    data = load_competition(spec)
    device_name = torch.cuda.get_device_name(settings.device) if settings.device.type == "cuda" else "CPU"
    print(f"device: {device_name}, amp {settings.amp_dtype}; {describe()}")

    rows = np.arange(args.images)
    train_rows, val_rows = rows[: int(0.8 * len(rows))], rows[int(0.8 * len(rows)):]
    labels = data.train_labels
    normalizer = Normalizer.from_images(data.train_images, None)
    cfg = recipe.train.model_copy(update={"epochs": args.epochs})
    torch.manual_seed(SEED)
    kit_model = build_model(recipe.model, data.num_classes, data.channels, 32).to(settings.device)
    hand_model = build_model(recipe.model, data.num_classes, data.channels, 32).to(settings.device)
    if settings.channels_last:  # on a GPU, as airbench94.py (and kit's fit) run it
        hand_model.to(memory_format=torch.channels_last)
    initial = {k: v.clone() for k, v in kit_model.state_dict().items()}

    # --- kit: what kit train builds for a fold ---
    on_batches = plan_batch_augment(recipe.augment.transforms, normalizer.to(settings.device),
                                    alternating_flip=recipe.augment.alternating_flip)
    val_batches = batches_for(data.train_images, labels, val_rows, recipe.predict.batch_size, normalizer,
                              settings.device)
    checkpoint_dir = tempfile.TemporaryDirectory()
    reporter = RichReporter()
    fits = []

    def kit_run(epochs: int):
        def run() -> None:
            # built per run outside the timing, as kit train builds them per fold before fit
            batches = batches_for(data.train_images, labels, train_rows, cfg.batch_size, normalizer, settings.device,
                                  shuffle=True, seed=SEED, drop_last=True, augment=BatchAugment(on_batches.ops, SEED))
            kit_model.load_state_dict(initial)
            timer.start()
            reporter.start("train", "kit", total=epochs)
            checkpoint = EpochCheckpoint(Path(checkpoint_dir.name) / "checkpoint.pt", key="bench")
            fits.append(fit(kit_model, batches, val_batches, cfg.model_copy(update={"epochs": epochs}), settings,
                            reporter, progress_key="train", checkpoint=checkpoint))
            checkpoint.remove()  # as kit train does once a fold is done (else the next run would resume)
            reporter.finish("train")
            timer.stop("kit")
        return run

    # --- hand-written: airbench94.py's loop, in a notebook ---
    def tensor(rows_):
        x = settings.to_device(normalizer(np.asarray(data.train_images[rows_])))
        return x, torch.from_numpy(labels[rows_]).to(settings.device)
    X_train, y_train = tensor(train_rows)
    X_val, y_val = tensor(val_rows)
    opt, sched, ahead = cfg.optimizer, cfg.scheduler, cfg.lookahead
    batch_size, pad = cfg.batch_size, 2
    hand_accuracy = []

    def hand_run(epochs: int):
        def run() -> None:
            hand_model.load_state_dict(initial)
            timer.start()
            whiten = hand_model.stem[0]
            init_whitening_conv(whiten, X_train[: cfg.init_images])
            # airbench's decoupled hyper-parameters; its loss is summed, this one the batch mean (x batch_size)
            kilostep_scale = opt.lr_per * (1 + 1 / (1 - opt.momentum))
            lr = opt.lr / kilostep_scale * batch_size
            wd = opt.weight_decay * batch_size / kilostep_scale
            lr_biases = lr * opt.norm_bias_lr_scale
            bn_biases = {id(m.bias) for m in hand_model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
            trainable = [p for p in hand_model.parameters() if p.requires_grad]
            norm_biases = [p for p in trainable if id(p) in bn_biases]
            others = [p for p in trainable if id(p) not in bn_biases]
            optimizer = torch.optim.SGD([dict(params=norm_biases, lr=lr_biases, weight_decay=wd / lr_biases),
                                         dict(params=others, lr=lr, weight_decay=wd / lr)],
                                        momentum=opt.momentum, nesterov=True)
            steps_per_epoch = len(X_train) // batch_size
            total_steps = epochs * steps_per_epoch

            def triangle(step):
                warmup_steps = total_steps * sched.peak_at
                if step < warmup_steps:
                    frac = step / warmup_steps
                    return sched.start_lr_ratio * (1 - frac) + frac
                frac = (step - warmup_steps) / (total_steps - warmup_steps)
                return 1 - frac + sched.min_lr_ratio * frac
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, triangle)
            # airbench's CifarLoader: pre-flip at random once, pre-pad once
            flip = (torch.rand(len(X_train), device=X_train.device) < 0.5).view(-1, 1, 1, 1)
            padded = F.pad(torch.where(flip, X_train.flip(-1), X_train), (pad,) * 4, mode="reflect")
            average, step = None, 0
            for epoch in range(epochs):
                whiten.bias.requires_grad = epoch < recipe.model.params["whiten_bias_epochs"]
                hand_model.train()
                images = settings.to_device(batch_crop(padded, X_train.shape[-1]))  # channels_last on a GPU
                if epoch % 2 == 1:
                    images = images.flip(-1)
                order = torch.randperm(len(images), device=images.device)
                for i in range(steps_per_epoch):
                    idx = order[i * batch_size:(i + 1) * batch_size]
                    with settings.autocast():
                        loss = F.cross_entropy(hand_model(images[idx]), y_train[idx],
                                               label_smoothing=cfg.label_smoothing)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    step += 1
                    # Lookahead-EMA: from start_epoch, every `every` steps, the weights pulled into an average
                    if epoch >= ahead.start_epoch and step % ahead.every == 0:
                        with torch.no_grad():
                            state = [v for v in hand_model.state_dict().values() if v.is_floating_point()]
                            if average is None:
                                average = [v.clone() for v in state]
                            else:
                                rho = ahead.decay_base ** ahead.every * (step / total_steps) ** ahead.decay_pow
                                for a, v in zip(average, state):
                                    a.lerp_(v, 1 - rho)
                                    v.copy_(a)
                if average is not None:
                    with torch.no_grad():
                        for a, v in zip(average, [v for v in hand_model.state_dict().values() if v.is_floating_point()]):
                            v.copy_(a)
                hand_accuracy.append(accuracy(hand_model, X_val, y_val, settings))
            timer.stop("hand-written")
        return run

    timer = Timer(settings)
    n_images = len(train_rows) // batch_size * batch_size
    for round_ in range(args.rounds + 1):  # round 0: one epoch of each, warming both up, not counted
        epochs = args.epochs if round_ else 1
        runs = (("hand-written", hand_run(epochs)), ("kit", kit_run(epochs)))
        for _name, run in runs[:: 1 if round_ % 2 else -1]:
            run()
        if not round_:
            timer.reset()
    checkpoint_dir.cleanup()

    wall, cpu = timer.wall, timer.cpu
    timing = cpu if settings.device.type == "cpu" else wall
    ratio = statistics.median(h / k for h, k in zip(timing["hand-written"], timing["kit"]))
    wall_ratio = statistics.median(h / k for h, k in zip(wall["hand-written"], wall["kit"]))
    speed = {name: args.epochs * n_images / statistics.median(t) for name, t in timing.items()}
    print(f"training: {RECIPE}'s method, {args.epochs} epoch(s) of {n_images} images per run (+ validation on "
          f"{len(val_rows)}), {args.rounds} rounds")
    print(f"  wall seconds: kit {fmt(wall['kit'])}, hand-written {fmt(wall['hand-written'])}; "
          f"median ratio {wall_ratio:.3f}")
    if settings.device.type == "cpu":
        print(f"  CPU seconds:  kit {fmt(cpu['kit'])}, hand-written {fmt(cpu['hand-written'])}")
    measure = "CPU" if settings.device.type == "cpu" else "wall"
    print(f"  kit {speed['kit']:.0f} images/s, hand-written {speed['hand-written']:.0f} images/s "
          f"(median {measure} time); kit / hand-written, median of the rounds' ratios: {ratio:.3f} "
          f"(target >= {TARGET})")
    kit_final = fits[-1].history[-1]["val_acc"]
    print(f"  held-out accuracy after the last run: kit {kit_final:.4f}, hand-written {hand_accuracy[-1]:.4f}")
    print("target met" if ratio >= TARGET else "missed: training")
    return 0 if ratio >= TARGET else 1


def init_whitening_conv(layer, images: torch.Tensor, eps: float = 5e-4) -> None:
    """airbench94.py's: the filters are the 2x2 patches' covariance eigenvectors scaled to unit variance, +/- pairs."""
    c, (h, w) = images.shape[1], layer.weight.shape[2:]
    with torch.no_grad():
        patches = images.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c, h, w).float()
        flat = patches.view(len(patches), -1)
        eigenvalues, eigenvectors = torch.linalg.eigh(flat.T @ flat / len(flat), UPLO="U")
        eigenvalues, eigenvectors = eigenvalues.flip(0).view(-1, 1, 1, 1), eigenvectors.T.reshape(c * h * w, c, h, w).flip(0)
        scaled = eigenvectors / torch.sqrt(eigenvalues + eps)
        layer.weight.copy_(torch.cat((scaled, -scaled)))
        layer.bias.zero_()
    layer.is_whitened = True  # kit's stem would otherwise whiten itself from its first batch


def batch_crop(images: torch.Tensor, crop_size: int) -> torch.Tensor:
    """airbench94.py's: each image a random crop_size window of the padded set, one mask per shift."""
    r = (images.size(-1) - crop_size) // 2
    shifts = torch.randint(-r, r + 1, size=(len(images), 2), device=images.device)
    out = torch.empty((len(images), images.size(1), crop_size, crop_size), device=images.device, dtype=images.dtype)
    for sy in range(-r, r + 1):
        for sx in range(-r, r + 1):
            mask = (shifts[:, 0] == sy) & (shifts[:, 1] == sx)
            out[mask] = images[mask, :, r + sy:r + sy + crop_size, r + sx:r + sx + crop_size]
    return out


def accuracy(model, X, y, settings, batch_size: int = 2000) -> float:
    model.eval()
    with torch.no_grad(), settings.autocast():
        correct = sum((model(X[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum()
                      for i in range(0, len(X), batch_size))
    return float(correct) / len(X)


class Timer:
    """Wall and process CPU seconds of each timed span, by name; the device synchronised at both ends."""

    def __init__(self, settings):
        self.settings = settings
        self.reset()

    def reset(self) -> None:
        self.wall, self.cpu = {"kit": [], "hand-written": []}, {"kit": [], "hand-written": []}

    def start(self) -> None:
        self.sync()
        self.started, self.started_cpu = time.perf_counter(), time.process_time()

    def stop(self, name: str) -> None:
        self.sync()
        self.wall[name].append(time.perf_counter() - self.started)
        self.cpu[name].append(time.process_time() - self.started_cpu)

    def sync(self) -> None:
        if self.settings.device.type == "cuda":
            torch.cuda.synchronize(self.settings.device)


def fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


if __name__ == "__main__":
    sys.exit(main())
