"""airbench's training method as kit options: each one against its definition, and the whole on digits."""

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from kit.cli import app
from kit.models.scratch.airbench import FixedScaleBatchNorm, PatchWhitening
from kit.recipe import LookaheadConfig, OptimizerConfig, SchedulerConfig
from kit.train.batch_augment import AlternatingFlip, BatchAugment
from kit.train.batches import ArrayBatches, Normalizer
from kit.train.lookahead import Lookahead
from kit.train.optim import LRSchedule, build_optimizer, optimizer_groups
from tests.conftest import write_recipe

runner = CliRunner()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_whitening_from_data_makes_the_patches_covariance_the_identity(device):
    rng = np.random.default_rng(0)
    # correlated channels and neighbouring pixels, so that the patches are far from white to begin with
    base = rng.normal(size=(200, 3, 12, 12))
    images = np.einsum("nchw,dc->ndhw", base, np.array([[1, 0, 0], [.8, .6, 0], [.5, .4, .3]]))
    images = images + 0.7 * np.roll(images, 1, axis=-1)
    stem = PatchWhitening(3, kernel=2, eps=1e-8).to(device)
    stem.init_from_data(torch.tensor(images, dtype=torch.float32, device=device))
    # the patches again, another way: numpy's sliding windows, flattened channel-major like the filters
    windows = np.lib.stride_tricks.sliding_window_view(images, (2, 2), axis=(2, 3))  # n c h' w' 2 2
    patches = windows.transpose(0, 2, 3, 1, 4, 5).reshape(-1, 12)
    filters = stem.weight.detach().cpu().double().numpy().reshape(24, 12)
    assert np.allclose(filters[12:], -filters[:12])  # the +/- pairs
    whitened = patches @ filters[:12].T
    covariance = whitened.T @ whitened / len(whitened)  # airbench's (uncentred) second moment
    assert np.abs(covariance - np.eye(12)).max() < 1e-3
    assert np.abs(np.cov(patches.T) - np.eye(12)).max() > 0.5  # and they were not white before
    assert stem.is_whitened  # the first training batch no longer re-whitens it


def test_whitening_bias_trains_only_in_its_first_epochs():
    stem = PatchWhitening(3, bias_epochs=2)
    flags = []
    for epoch in range(4):
        stem.epoch_start(epoch)
        flags.append(stem.bias.requires_grad)
    assert flags == [True, True, False, False] and not stem.weight.requires_grad


def test_alternating_flip_mirrors_each_image_in_exactly_every_other_epoch():
    n, epochs = 40, 6
    images = np.zeros((n, 1, 4, 1), np.uint8)
    images[:, 0, 0, 0] = 255  # a bright left column: flipped, it is on the right
    batches = ArrayBatches(images, np.arange(n), np.arange(n), 8, Normalizer([0.0], [1.0], None), shuffle=True,
                           seed=3, augment=BatchAugment([AlternatingFlip(seed=3)], seed=3))
    flipped = np.zeros((epochs, n), bool)
    for epoch in range(epochs):
        for x, y in batches:
            flipped[epoch, y.numpy()] = x[:, 0, 0, -1].numpy() > 0.5
    assert (flipped[1:] != flipped[:-1]).all()  # every image changes side every epoch
    assert 0.25 < flipped[0].mean() < 0.75  # and which epochs flip it is drawn per image
    again = AlternatingFlip(seed=3).starts_flipped(np.arange(n))
    assert np.array_equal(again, flipped[0])  # a fixed coin per (seed, image), whatever the batch order


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), FixedScaleBatchNorm(4), nn.GELU(), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 3))


def test_decoupled_sgd_matches_airbench_summed_loss_sgd():
    """kit's mean loss with the converted groups takes airbench's steps (its loss summed, its own formulas)."""
    lr, momentum, wd, per, bias_scale, batch = 11.5, 0.85, 0.0153, 1024, 64.0, 32
    cfg = OptimizerConfig(name="sgd", lr=lr, lr_per=per, momentum=momentum, nesterov=True, weight_decay=wd,
                          norm_bias_lr_scale=bias_scale)
    kit_net, ref_net = _net(), _net()
    trainable = [p for p in kit_net.parameters() if p.requires_grad]
    kit_opt = build_optimizer(optimizer_groups(kit_net, [{"params": trainable}], cfg, batch), cfg)
    # airbench94.py's own definition
    kilostep_scale = per * (1 + 1 / (1 - momentum))
    torch_lr, torch_wd = lr / kilostep_scale, wd * batch / kilostep_scale
    bias = [ref_net[1].bias]
    rest = [p for p in ref_net.parameters() if p.requires_grad and p is not ref_net[1].bias]
    ref_opt = torch.optim.SGD([dict(params=bias, lr=torch_lr * bias_scale, weight_decay=torch_wd / (torch_lr * bias_scale)),
                               dict(params=rest, lr=torch_lr, weight_decay=torch_wd / torch_lr)],
                              momentum=momentum, nesterov=True)
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        x, y = torch.randn(batch, 3, 6, 6, generator=g), torch.randint(0, 3, (batch,), generator=g)
        for net, opt, reduction in ((kit_net, kit_opt, "mean"), (ref_net, ref_opt, "sum")):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y, label_smoothing=0.2, reduction=reduction).backward()
            opt.step()
    for a, b in zip(kit_net.parameters(), ref_net.parameters()):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert not torch.equal(kit_net[0].weight, _net()[0].weight)  # and it did move


def test_norm_bias_scale_keeps_the_absolute_weight_decay():
    cfg = OptimizerConfig(name="sgd", lr=0.1, weight_decay=0.01, norm_bias_lr_scale=8)
    net = _net()
    groups = optimizer_groups(net, [{"params": [p for p in net.parameters() if p.requires_grad]}], cfg, 64)
    by_lr = {g["lr"]: g for g in groups}
    assert [p is net[1].bias for p in by_lr[0.8]["params"]] == [True]
    assert {lr: g["lr"] * g["weight_decay"] for lr, g in by_lr.items()} == pytest.approx({0.8: 1e-3, 0.1: 1e-3})


def test_triangle_schedule_is_linear_through_start_peak_and_end():
    epochs, steps = 5, 20
    cfg = SchedulerConfig(name="triangle", start_lr_ratio=0.2, peak_at=0.25, min_lr_ratio=0.07)
    schedule = LRSchedule(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0), cfg, epochs, steps)
    total = epochs * steps
    expected = np.interp(np.arange(total), [0, 0.25 * total, total], [0.2, 1.0, 0.07]) * 2.0
    seen = []
    for _ in range(total):
        seen.append(schedule.lr)
        schedule.step()
    assert np.allclose(seen, expected)


def test_lookahead_follows_its_definition():
    cfg = LookaheadConfig(start_epoch=1, every=2, decay_base=0.9, decay_pow=2.0)
    total, per_epoch = 12, 4
    model = nn.Linear(1, 1, bias=False)
    lookahead = Lookahead(cfg, total)
    average, expected = None, []
    for step in range(1, total + 1):
        epoch = (step - 1) // per_epoch
        with torch.no_grad():
            model.weight.add_(1.0)  # what an optimizer step would do
        w = model.weight.item()
        lookahead.update(model, epoch)
        if epoch >= 1 and step % 2 == 0:
            if average is None:
                average = w
            else:
                rho = 0.9 ** 2 * (step / total) ** 2
                average = rho * average + (1 - rho) * w
                w = average
        assert model.weight.item() == pytest.approx(w)
        if step % per_epoch == 0:
            lookahead.epoch_end(model)
            if average is not None:
                assert model.weight.item() == pytest.approx(average)
                w = average
            expected.append(w)
    assert lookahead.steps == total and expected[-1] < total  # it held the weights back


AIRBENCH = {
    "model": {"arch": "airbench", "params": {"widths": [16, 32, 32], "whiten_bias_epochs": 1}}, "image_size": 16,
    "train__epochs": 3, "train__batch_size": 32,
    "train__optimizer": {"name": "sgd", "lr": 11.5, "lr_per": 256, "momentum": 0.85, "nesterov": True,
                         "weight_decay": 0.0153, "norm_bias_lr_scale": 64},
    "train__scheduler": {"name": "triangle", "start_lr_ratio": 0.2, "peak_at": 0.23, "min_lr_ratio": 0.07},
    "train__label_smoothing": 0.2,
    "train__lookahead": {"start_epoch": 1, "every": 3},
    "train__init_images": 500,
    "augment": {"alternating_flip": True,
                "transforms": [{"Affine": {"translate_px": [-1, 1], "border_mode": 4, "p": 1.0}}]},
    "tta": {"views": "airbench", "shift": 0.1},
}


def test_tiny_airbench_trains_fold_by_fold_then_completes(workdir):
    path = write_recipe(workdir / "recipes", "airbench", **AIRBENCH)
    model_dir = workdir / "store" / "digits" / "models" / "airbench"
    first = runner.invoke(app, ["train", str(path), "--folds", "1"])
    assert first.exit_code == 0, first.output
    assert "1 still to train" in first.output
    manifest = json.loads((model_dir / "model.json").read_text())
    assert manifest["status"] == "training" and "cv" not in manifest
    assert not (model_dir / "metrics.json").exists() and not (model_dir / "seed0" / "fold0").exists()
    fold1 = json.loads((model_dir / "seed0" / "fold1" / "fold.json").read_text())
    assert fold1["val_acc"] > 0.5  # three epochs of the method on 900 digits
    second = runner.invoke(app, ["train", str(path)])
    assert second.exit_code == 0, second.output
    assert "1 folds trained, 1 skipped" in second.output
    manifest = json.loads((model_dir / "model.json").read_text())
    assert manifest["status"] == "complete" and manifest["cv"]["accuracy"] > 0.5


@pytest.mark.cuda
def test_tiny_airbench_trains_on_a_real_gpu(workdir):
    path = write_recipe(workdir / "recipes", "airbench", **AIRBENCH)
    result = runner.invoke(app, ["train", str(path), "--folds", "0", "--device", "cuda"])
    assert result.exit_code == 0, result.output
    fold0 = json.loads((workdir / "store" / "digits" / "models" / "airbench" / "seed0" / "fold0" / "fold.json").read_text())
    assert fold0["device"].startswith("cuda") and fold0["val_acc"] > 0.5  # as on the CPU, under bf16 autocast


@pytest.mark.parametrize("folds, fragment", [("7", "--folds: 7 is not a fold of"), ("0,x", "--folds: expected fold numbers")])
def test_bad_folds_are_refused_before_training(workdir, folds, fragment):
    path = write_recipe(workdir / "recipes", "tiny")
    result = runner.invoke(app, ["train", str(path), "--folds", folds])
    assert result.exit_code == 2 and fragment in result.output, result.output
    assert "Traceback" not in result.output and not (workdir / "store" / "digits" / "models" / "tiny").exists()


def test_alternating_flip_with_a_per_image_transform_is_refused(workdir):
    path = write_recipe(workdir / "recipes", "flipped", augment={"alternating_flip": True, "transforms": ["Rotate"]})
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 2 and "augment.alternating_flip: runs on whole batches" in result.output, result.output


# --- the whole method, step for step, against airbench94.py's loop written out independently ---

class _RefBatchNorm(nn.BatchNorm2d):
    """airbench94.py's: momentum 0.6 in its convention (1 - 0.6 in torch's), eps 1e-12, the scale frozen."""

    def __init__(self, ch):
        super().__init__(ch, eps=1e-12, momentum=1 - 0.6)
        self.weight.requires_grad = False


class _RefGroup(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv1, self.pool, self.norm1 = nn.Conv2d(c_in, c_out, 3, padding="same", bias=False), nn.MaxPool2d(2), \
            _RefBatchNorm(c_out)
        self.conv2, self.norm2, self.activ = nn.Conv2d(c_out, c_out, 3, padding="same", bias=False), \
            _RefBatchNorm(c_out), nn.GELU()

    def forward(self, x):
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


class _RefMul(nn.Module):
    def forward(self, x):
        return x / 9


def _reference_net(widths):
    """airbench94.py's make_net (its final MaxPool2d(3) as a global max-pool, the same on its 3x3 map)."""
    net = nn.Sequential(nn.Conv2d(3, 24, 2, padding=0, bias=True), nn.GELU(), _RefGroup(24, widths[0]),
                        _RefGroup(widths[0], widths[1]), _RefGroup(widths[1], widths[2]), nn.AdaptiveMaxPool2d(1),
                        nn.Flatten(), nn.Linear(widths[2], 10, bias=False), _RefMul())
    net[0].weight.requires_grad = False
    nn.init.zeros_(net[0].bias)  # its Conv zeroes every bias at construction
    return net


def _reference_whitening(layer, images, eps=5e-4):
    """airbench94.py's init_whitening_conv: eigenvectors of the 2x2 patches' uncentred covariance."""
    c, (h, w) = images.shape[1], layer.weight.shape[2:]
    patches = images.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c, h, w).float()
    flat = patches.view(len(patches), -1)
    values, vectors = torch.linalg.eigh(flat.T @ flat / len(flat), UPLO="U")
    values, vectors = values.flip(0).view(-1, 1, 1, 1), vectors.T.reshape(c * h * w, c, h, w).flip(0)
    scaled = vectors / torch.sqrt(values + eps)
    layer.weight.data[:] = torch.cat((scaled, -scaled))


class _Recorded:
    """kit's training batches, each pass's (inputs, labels) kept so that the reference replays the same ones."""

    def __init__(self, batches):
        self.batches, self.passes = batches, []

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        self.passes.append([])
        for x, y in self.batches:
            self.passes[-1].append((x.clone(), y.clone()))
            yield x, y

    def __getattr__(self, name):
        return getattr(self.batches, name)


def test_kit_trains_as_airbench94_does_step_for_step():
    """kit's fit with airbench94.yaml's train section (decoupled Nesterov SGD, 64x norm-bias lr, triangle,
    Lookahead-EMA, label smoothing, whitening from data and its bias frozen after its epochs) ends on the
    weights that airbench94.py's own loop reaches on the same batches: the same method, not a look-alike."""
    from kit.models import build_model
    from kit.recipe import load_recipe
    from kit.train.device import pick_device
    from kit.train.loop import fit

    recipe = load_recipe("recipes/cifar10/airbench94.yaml")
    widths, epochs, batch, n = [8, 16, 16], 5, 32, 192
    cfg = recipe.train.model_copy(update={"epochs": epochs, "batch_size": batch, "init_images": 64,
                                          "lookahead": recipe.train.lookahead.model_copy(update={"every": 2})})
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n)
    normalizer = Normalizer.from_images(images, None)
    batches = _Recorded(ArrayBatches(images, labels, np.arange(n), batch, normalizer, shuffle=True, seed=1,
                                     drop_last=True, augment=BatchAugment([AlternatingFlip(seed=1)], seed=1)))
    torch.manual_seed(0)
    params = dict(recipe.model.params, widths=widths)
    kit_net = build_model(recipe.model.model_copy(update={"params": params}), 10, 3, 32)
    ref_net = _reference_net(widths)
    kit_state = {k: v for k, v in kit_net.state_dict().items() if not k.endswith("whitened")}  # kit's flag
    assert [v.shape for v in ref_net.state_dict().values()] == [v.shape for v in kit_state.values()]
    ref_net.load_state_dict(dict(zip(ref_net.state_dict(), kit_state.values())))
    nn.init.zeros_(ref_net[0].bias)  # kit zeroes it when it whitens
    kit_whitening = []
    kit_net.stem[0].register_forward_pre_hook(lambda m, _: kit_whitening.append(m.weight.detach().clone()))
    fit(kit_net, batches, None, cfg, pick_device("cpu", "fp32"))  # the reference runs in fp32
    kit_whitening = kit_whitening[0]  # the filters kit's loop computed before its first step

    # airbench94.py's main(), its hyper-parameters those of the recipe
    opt, ahead = cfg.optimizer, cfg.lookahead
    kilostep_scale = opt.lr_per * (1 + 1 / (1 - opt.momentum))
    lr, wd = opt.lr / kilostep_scale, opt.weight_decay * batch / kilostep_scale
    lr_biases = lr * opt.norm_bias_lr_scale
    norm_biases = [p for k, p in ref_net.named_parameters() if "norm" in k and p.requires_grad]
    other = [p for k, p in ref_net.named_parameters() if "norm" not in k and p.requires_grad]
    optimizer = torch.optim.SGD([dict(params=norm_biases, lr=lr_biases, weight_decay=wd / lr_biases),
                                 dict(params=other, lr=lr, weight_decay=wd / lr)], momentum=opt.momentum, nesterov=True)
    total = epochs * len(batches)
    sched = cfg.scheduler
    schedule = np.interp(np.arange(total + 1), [0, sched.peak_at * total, total],
                         [sched.start_lr_ratio, 1, sched.min_lr_ratio])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: schedule[i])
    _reference_whitening(ref_net[0], batches.first_images(cfg.init_images))
    # the same filters up to each eigenvector's sign (eigh's choice): then the reference takes kit's signs
    kit_filters, ref_filters = kit_whitening.flatten(1), ref_net[0].weight.detach().flatten(1)
    same = torch.isclose(kit_filters, ref_filters, atol=1e-4).all(1) | torch.isclose(kit_filters, -ref_filters, atol=1e-4).all(1)
    # each filter's norm is 1/sqrt(eigenvalue + eps): the same spectrum, filter for filter
    kit_norms, ref_norms = kit_filters.norm(dim=1), ref_filters.norm(dim=1)
    assert torch.allclose(kit_norms, ref_norms, rtol=1e-3)
    # where two eigenvalues nearly coincide, any rotation within their plane is an eigenvector (eigh's choice
    # differs between CPUs): only such filters may differ, and they must stay in that plane
    for i in torch.nonzero(~same).flatten().tolist():
        partners = torch.nonzero(torch.isclose(ref_norms, ref_norms[i], rtol=2e-2)).flatten().tolist()
        assert len(partners) > 1, f"whitening filter {i} differs and its eigenvalue is not a repeated one"
        plane = ref_filters[partners]
        inside = plane.T @ torch.linalg.lstsq(plane.T, kit_filters[i:i + 1].T).solution
        assert torch.allclose(inside.flatten(), kit_filters[i], atol=1e-3)
    ref_net[0].weight.data.copy_(kit_whitening)
    ema, step = None, 0
    for epoch in range(epochs):
        ref_net[0].bias.requires_grad = epoch < recipe.model.params["whiten_bias_epochs"]
        ref_net.train()
        for x, y in batches.passes[epoch]:
            loss = nn.functional.cross_entropy(ref_net(x), y, label_smoothing=cfg.label_smoothing, reduction="sum")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if epoch >= ahead.start_epoch and step % ahead.every == 0:
                with torch.no_grad():
                    if ema is None:
                        ema = {k: v.clone() for k, v in ref_net.state_dict().items()}
                    else:
                        rho = ahead.decay_base ** ahead.every * (step / total) ** ahead.decay_pow
                        for e, v in zip(ema.values(), ref_net.state_dict().values()):
                            if v.is_floating_point():
                                e.lerp_(v, 1 - rho)
                                v.copy_(e)
        if ema is not None:
            with torch.no_grad():
                for e, v in zip(ema.values(), ref_net.state_dict().values()):
                    if v.is_floating_point():
                        v.copy_(e)
    assert len(batches.passes) == epochs and ema is not None  # every epoch ran, the Lookahead took part
    kit_state = {k: v for k, v in kit_net.state_dict().items() if not k.endswith("whitened")}
    for (name, a), b in zip(kit_state.items(), ref_net.state_dict().values()):
        if a.is_floating_point():
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), name  # seen: 2e-7
    moved = kit_net.stage1[0].weight - build_model(recipe.model.model_copy(update={"params": params}), 10, 3, 32).stage1[0].weight
    assert moved.abs().max() > 1e-3  # and training moved the weights
