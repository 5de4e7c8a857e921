"""Training options of a recipe: optimizers, schedules, fine-tuning modes, EMA, clipping, early stopping, precision."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from kit.models import create_model
from kit.recipe import OPTIMIZERS, SCHEDULERS, FinetuneConfig, OptimizerConfig, SchedulerConfig, TrainConfig, load_recipe
from kit.store import Store
from kit.train import train_recipe
from kit.train.batches import ArrayBatches, Normalizer
from kit.train.device import DeviceSettings, pick_device
from kit.train.ema import WeightEMA
from kit.train.finetune import Finetune, model_stages
from kit.metrics import log_loss
from kit.train.loop import fit, predict_proba
from kit.train.optim import LRSchedule, build_optimizer
from tests.conftest import write_recipe

CPU = DeviceSettings(torch.device("cpu"), None, channels_last=False)


def small_net(num_classes=4):
    torch.manual_seed(0)
    # stem, stage1, stage2, head: four stages, the classifier head.fc last
    return create_model("resnet_small", num_classes=num_classes, in_chans=1, image_size=8, widths=[4, 8])


def toy_data(n=96, classes=4, size=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    images = rng.integers(0, 60, (n, size, size, 1)).astype(np.uint8)
    images[np.arange(n), labels, labels] = 255  # a learnable signal: a bright pixel per class
    normalizer = Normalizer.from_images(images, None)
    train = ArrayBatches(images, labels, np.arange(64), 16, normalizer, shuffle=True)
    val = ArrayBatches(images, labels, np.arange(64, n), 32, normalizer)
    return train, val


def train_cfg(**changes) -> TrainConfig:
    base = {"epochs": 2, "batch_size": 16, "optimizer": {"name": "sgd", "lr": 0.05}, "scheduler": {"name": "constant"}}
    return TrainConfig.model_validate({**base, **changes})


def one_step(model, optimizer):
    x, y = torch.randn(8, 1, 8, 8), torch.arange(8) % 4
    optimizer.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_trains(name):
    model = small_net()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = build_optimizer(model.parameters(), OptimizerConfig(name=name, lr=0.01, weight_decay=1e-4, nesterov=True))
    for _ in range(3):
        one_step(model.train(), optimizer)
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def lrs(name, epochs=6, steps=4, val_losses=None, **cfg):
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = LRSchedule(optimizer, SchedulerConfig(name=name, **cfg), epochs, steps)
    out = []
    for epoch in range(epochs):
        for _ in range(steps):
            out.append(schedule.lr)
            schedule.step()
        schedule.epoch_end(val_losses[epoch] if val_losses else 1.0)
    return out


# triangle rises by its own shape, without warmup_epochs: tests/test_airbench_method.py
@pytest.mark.parametrize("name", [s for s in SCHEDULERS if s != "triangle"])
def test_each_schedule_warms_up_then_follows_its_shape(name):
    values = lrs(name, warmup_epochs=1, step_size=2, gamma=0.5, patience=1)
    assert len(values) == 24 and all(v > 0 for v in values)
    assert values[0] < values[3] <= 1.0 + 1e-9  # warm-up: rising over the first epoch (one-cycle: its rise)
    after = values[4:]
    if name == "constant":
        assert after == pytest.approx([1.0] * 20)
    elif name == "cosine":
        assert after[0] == pytest.approx(1.0) and all(a >= b for a, b in zip(after, after[1:])) and after[-1] < 0.05
    elif name == "onecycle":
        peak = values.index(max(values))
        assert max(values) == pytest.approx(1.0, abs=1e-3) and values[-1] < 0.01
        assert all(a >= b for a, b in zip(values[peak:], values[peak + 1:]))
    elif name == "step":
        assert after[0] == pytest.approx(1.0) and after[8] == pytest.approx(0.5) and after[16] == pytest.approx(0.25)
    elif name == "plateau":
        # no improvement after epoch 1: halved once `patience` (1) epochs have passed without one, then again
        assert after == pytest.approx([1.0] * 8 + [0.5] * 8 + [0.25] * 4)


def test_plateau_keeps_the_rate_while_the_loss_improves():
    assert lrs("plateau", epochs=4, val_losses=[4, 3, 2, 1], patience=0) == pytest.approx([1.0] * 16)


def frozen_and_trained(model, finetune, epoch):
    """Which parameters (by name) change in one optimizer step in `epoch`."""
    optimizer = build_optimizer(finetune.param_groups(0.1), OptimizerConfig(name="adamw", lr=0.1, weight_decay=0.1))
    finetune.start_epoch(model, epoch)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    one_step(model, optimizer)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k]) and "num_batches" not in k}
    return changed


def test_linear_probe_trains_only_the_classifier_and_keeps_the_backbones_batchnorm_statistics():
    model = small_net()
    changed = frozen_and_trained(model, Finetune(model, FinetuneConfig(mode="linear_probe")), epoch=3)
    assert changed == {"head.fc.weight", "head.fc.bias"}


def test_freeze_then_unfreeze_changes_every_layer_after_the_frozen_epochs():
    model = small_net()
    finetune = Finetune(model, FinetuneConfig(mode="freeze_then_unfreeze", freeze_epochs=2))
    assert frozen_and_trained(model, finetune, epoch=1) == {"head.fc.weight", "head.fc.bias"}
    changed = frozen_and_trained(model, finetune, epoch=2)
    assert {"stem.0.weight", "stage1.0.conv1.0.weight", "stage2.0.conv2.1.running_mean", "head.fc.weight"} <= changed
    assert all(p.requires_grad for p in model.parameters())


def test_gradual_unfreezing_adds_one_stage_from_the_top_per_period():
    model = small_net()
    finetune = Finetune(model, FinetuneConfig(mode="gradual", epochs_per_stage=2))
    assert len(finetune.stages) == 4  # stem, stage1, stage2, classifier
    assert [finetune.trainable_stages(e) for e in range(8)] == [1, 1, 2, 2, 3, 3, 4, 4]
    changed = frozen_and_trained(model, finetune, epoch=2)
    assert any(k.startswith("stage2.") for k in changed)
    assert not any(k.startswith(("stage1.", "stem.")) for k in changed)


def test_layer_decay_gives_lower_stages_smaller_rates():
    model = small_net()
    groups = Finetune(model, FinetuneConfig(layer_decay=0.5)).param_groups(0.1)
    assert [g["lr"] for g in groups] == pytest.approx([0.0125, 0.025, 0.05, 0.1])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    optimizer = build_optimizer(groups, OptimizerConfig(name="sgd", lr=0.1))
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.0125, 0.025, 0.05, 0.1])


def test_frozen_batchnorm_keeps_its_statistics_and_weights():
    from torchvision.ops.misc import FrozenBatchNorm2d  # what timm's freeze_batch_norm_2d puts in

    model = small_net()
    Finetune(model, FinetuneConfig(freeze_bn=True))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    changed = frozen_and_trained(model, Finetune(model, FinetuneConfig(freeze_bn=True)), epoch=0)
    assert not any("bn" in k or "running" in k or k.endswith(".1.weight") for k in changed if "fc" not in k)
    assert "stem.0.weight" in changed


def test_a_timm_model_is_cut_into_its_own_stages():
    model = create_model("timm/test_resnet", num_classes=3, in_chans=1, image_size=32)
    stages = model_stages(model)
    assert len(stages) == 6  # stem, layer1..layer4, fc
    assert {id(p) for p in stages[-1]} == {id(p) for p in model.fc.parameters()}
    assert sum(len(s) for s in stages) == len(list(model.parameters()))


def test_ema_tracks_the_weights_with_warmup():
    model = small_net()
    ema = WeightEMA(model, decay=0.99)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    one_step(model.train(), optimizer)
    ema.update(model)  # the first update copies (decay warm-up starts at 0)
    assert all(torch.equal(a, b) for a, b in zip(ema.module.state_dict().values(), model.state_dict().values()))
    for _ in range(3):
        one_step(model, optimizer)
        ema.update(model)
    w_model, w_ema = model.head.fc.weight, ema.module.head.fc.weight
    assert not torch.equal(w_model, w_ema)
    resumed = WeightEMA(small_net(), decay=0.99)
    resumed.load_state_dict(ema.state_dict())  # a checkpoint's copy: same weights, same warm-up step
    assert resumed.steps == 4 and torch.equal(resumed.module.head.fc.weight, w_ema)


def test_fit_with_ema_clipping_and_a_finetune_mode_trains_and_keeps_the_best_epoch():
    train, val = toy_data()
    model = small_net()
    result = fit(model, train, val, train_cfg(epochs=3, ema_decay=0.9, grad_clip=1.0,
                                              finetune={"mode": "freeze_then_unfreeze", "freeze_epochs": 1}), CPU)
    assert len(result.history) == 3 and not result.stopped_early
    assert result.best["val_loss"] == min(h["val_loss"] for h in result.history)


def test_gradient_clipping_bounds_each_step():
    train, val = toy_data()
    moved = {}
    for clip in (None, 1e-4):
        model = small_net()
        before = [p.detach().clone() for p in model.parameters()]
        fit(model, train, val, train_cfg(epochs=1, grad_clip=clip, optimizer={"name": "sgd", "lr": 0.5, "momentum": 0}), CPU)
        moved[clip] = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    # SGD without momentum moves at most lr * clip per step: 4 steps of 0.5 * 1e-4
    assert moved[1e-4] <= 4 * 0.5 * 1e-4 * 1.01 < moved[None]


def test_early_stopping_stops_when_the_validation_loss_stalls():
    train, val = toy_data()
    # a frozen backbone (its batch norm statistics too) and a vanishing lr: the loss never improves after epoch 1
    cfg = train_cfg(epochs=6, early_stopping=2, optimizer={"name": "sgd", "lr": 1e-12}, finetune={"mode": "linear_probe"})
    result = fit(small_net(), train, val, cfg, CPU)
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 0


def test_precision_switches_are_honoured():
    assert pick_device("cpu", "fp32").amp_dtype is None and not pick_device("cpu", "fp32").channels_last
    assert pick_device("cpu", "bf16").amp_dtype == torch.bfloat16
    assert pick_device("cpu", "fp16").uses_grad_scaler
    train, val = toy_data()
    model = small_net()
    settings = DeviceSettings(torch.device("cpu"), torch.bfloat16, channels_last=True)  # what CUDA gets
    result = fit(model, train, val, train_cfg(epochs=1), settings)
    assert np.isfinite(result.best["val_loss"])
    assert model.stem[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_a_recipe_with_every_option_trains_into_the_store(workdir):
    path = write_recipe(workdir / "recipes", "options", train__epochs=2, train__ema_decay=0.9,
                        train__grad_clip=5.0, train__early_stopping=1, train__precision="fp32",
                        train__finetune={"mode": "gradual", "layer_decay": 0.8},
                        train__scheduler={"name": "cosine", "warmup_epochs": 1})
    summary = train_recipe(load_recipe(path), Store(workdir / "store"))
    assert summary.folds_trained == 2 and summary.cv["accuracy"] > 0.1
    fold = json.loads((workdir / "store" / "digits" / "models" / "options" / "seed0" / "fold0" / "fold.json").read_text())
    assert "stopped_early" in fold and 1 <= len(fold["history"]) <= 2


def test_keep_last_holds_the_final_epochs_weights_and_best_keeps_the_lowest_val_loss():
    train, val = toy_data()
    kept = {}
    for keep in ("best", "last"):
        model = small_net()
        result = fit(model, train, val, train_cfg(epochs=4, keep=keep, optimizer={"name": "sgd", "lr": 0.5}),
                     DeviceSettings(torch.device("cpu"), None, channels_last=False))
        losses = [h["val_loss"] for h in result.history]
        kept[keep] = (result.best_epoch, losses, predict_proba(model, val, DeviceSettings(torch.device("cpu"), None, False)))
    best_epoch, losses, best_probs = kept["best"]
    last_epoch, last_losses, last_probs = kept["last"]
    assert best_epoch == int(np.argmin(losses)) and last_epoch == 3
    labels = val.labels[val.indices]
    # the weights held at the end predict what their epoch's validation pass measured
    assert log_loss(labels, last_probs) == pytest.approx(last_losses[-1], rel=1e-5)
    assert log_loss(labels, best_probs) == pytest.approx(min(losses), rel=1e-5)
