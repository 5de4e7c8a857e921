"""The fast paths: resident batches equal gathered ones, and the CUDA switches are taken exactly when CUDA is there.

Without a GPU, CUDA is faked where only the decision is under test (which settings, whether torch.compile
is called) and everything that computes runs on the CPU. The tests marked `cuda` run the same paths on a
real GPU (skipped without one; `make gpu-check` runs them): its settings, its resident and gathered
batches, the batch augmentation, fit under autocast and torch.compile, and predictions with TTA.
"""

import numpy as np
import pytest
import torch

from kit.augment import resolve_transforms
from kit.recipe import TrainConfig
from kit.train import resident
from kit.train.batch_augment import plan
from kit.train.batches import ArrayBatches, Normalizer
from kit.train.device import DeviceSettings, pick_device
from kit.train.loop import compiled, fit, predict_proba
from kit.train.resident import ResidentBatches, batches_for
from kit.tta import TTA, resolve_views

CPU = torch.device("cpu")


def images_and_labels(n=50, size=8, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8), rng.integers(0, 4, n)


def test_normalize_is_the_textbook_formula():
    images, _ = images_and_labels()
    normalizer = Normalizer.from_images(images, None)
    textbook = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - normalizer.mean) / normalizer.std
    fast = normalizer.normalize(torch.from_numpy(images))
    assert fast.is_contiguous() and torch.allclose(fast, textbook, atol=1e-5)


@pytest.mark.parametrize("augmented", [False, True], ids=["plain", "flip-shift-cutout"])
def test_resident_batches_equal_gathered_batches(augmented):
    images, labels = images_and_labels()
    normalizer = Normalizer.from_images(images, 16)  # resized to 16 px per batch, as for a bigger model input
    rows = np.random.default_rng(1).permutation(50)[:40]
    entries = resolve_transforms(["light", "CoarseDropout"])  # presets expanded, as load_recipe does

    def augment():
        return plan(entries, normalizer, seed=5) if augmented else None

    gathered = ArrayBatches(images, labels, rows, 16, normalizer, shuffle=True, seed=3, drop_last=True,
                            augment=augment())
    held = ResidentBatches(images, labels, rows, 16, normalizer, CPU, shuffle=True, seed=3, drop_last=True,
                           augment=augment())
    assert (held.augment is not None) == augmented
    assert len(held) == len(gathered) == 2
    for _epoch in range(2):  # reshuffled alike each pass
        for (xa, ya), (xb, yb) in zip(gathered, held, strict=True):
            assert xa.shape == (16, 3, 16, 16)
            assert torch.equal(ya, yb) and torch.allclose(xa, xb, atol=1e-5)
    # a resumed pass continues the same shuffle (and the same augmentation draws)
    state = held.state_dict()
    after = [x for x, _ in held]
    held.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(after, [x for x, _ in held]))


@pytest.mark.parametrize("rows", [np.arange(10, 47), np.array([3, 1, 30, 2, 17, 40])], ids=["in-order", "any-order"])
def test_held_out_batches_come_in_the_rows_order(rows):
    images, labels = images_and_labels()
    normalizer = Normalizer.from_images(images, None)
    gathered = list(ArrayBatches(images, labels, rows, 16, normalizer))
    held = ResidentBatches(images, labels, rows, 16, normalizer, CPU)
    assert held.in_order == (list(rows) == sorted(rows))  # in order: batches are slices of the resident tensor
    for (xa, ya), (xb, yb) in zip(gathered, held, strict=True):
        assert torch.equal(ya, yb) and torch.allclose(xa, xb, atol=1e-5)


def test_rows_beyond_the_budget_are_gathered_per_batch(monkeypatch):
    images, labels = images_and_labels()
    normalizer = Normalizer.from_images(images, None)
    assert isinstance(batches_for(images, labels, np.arange(50), 8, normalizer, CPU), ResidentBatches)
    monkeypatch.setattr(resident, "RESIDENT_FLOAT_BUDGET", images[:10].size * 4)  # room for 10 images only
    assert isinstance(batches_for(images, labels, np.arange(50), 8, normalizer, CPU), ArrayBatches)


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch believes a GPU is there; the global flags pick_device sets are put back afterwards."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # pick_device checks the device is there
    # torch.backends' flag modules are not plain objects monkeypatch can restore: saved and put back by hand
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    yield monkeypatch
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = flags


@pytest.mark.parametrize("bf16, amp", [(True, torch.bfloat16), (False, torch.float16)])
def test_cuda_gets_autocast_channels_last_and_tf32(fake_cuda, bf16, amp):
    fake_cuda.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    settings = pick_device("auto")
    assert settings.device.type == "cuda" and settings.channels_last and settings.amp_dtype == amp
    assert settings.uses_grad_scaler == (amp == torch.float16)  # fp16 needs loss scaling, bf16 does not
    assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32
    assert pick_device("auto", "fp32").amp_dtype is None  # a recipe's precision overrides the choice


def test_cpu_keeps_plain_fp32_without_bf16_units(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("kit.train.device.cpu_has_bf16_units", lambda: False)
    settings = pick_device("auto")
    assert settings.device == CPU and settings.amp_dtype is None and not settings.channels_last


def test_cpu_with_bf16_units_trains_in_bf16_channels_last_unless_the_recipe_says_otherwise(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("kit.train.device.cpu_has_bf16_units", lambda: True)
    settings = pick_device("auto")
    assert settings.device == CPU and settings.amp_dtype == torch.bfloat16 and settings.channels_last
    assert pick_device("cpu", "fp32").amp_dtype is None and not pick_device("cpu", "fp32").channels_last
    assert not pick_device("cpu", memory_format="contiguous").channels_last
    assert pick_device("cpu", memory_format="contiguous").amp_dtype == torch.bfloat16


def test_bf16_units_are_what_this_cpu_reports():
    from kit.train.device import cpu_has_bf16_units

    reported = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    assert cpu_has_bf16_units() == bool(reported)


@pytest.mark.parametrize("amx, avx512_bf16", [(True, False), (False, True), (False, False)])
def test_either_amx_or_avx512_bf16_counts_as_bf16_units(monkeypatch, amx, avx512_bf16):
    from kit.train.device import cpu_has_bf16_units

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert cpu_has_bf16_units() == (amx or avx512_bf16)


def test_torch_compile_only_when_the_recipe_asks_and_cuda_runs(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: calls.append(model) or model)
    model = torch.nn.Linear(2, 2)
    cuda = DeviceSettings(torch.device("cuda"), torch.bfloat16, channels_last=True)
    cpu = DeviceSettings(CPU, None, channels_last=False)
    on, off = TrainConfig(epochs=1, compile=True), TrainConfig(epochs=1)
    assert compiled(model, off, cuda) is model and compiled(model, on, cpu) is model and not calls
    compiled(model, on, cuda)
    assert calls == [model]


def test_a_compile_recipe_trains_eagerly_on_the_cpu(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.compile called on the CPU")

    monkeypatch.setattr(torch, "compile", refuse)
    images, labels = images_and_labels(64, channels=1)
    normalizer = Normalizer.from_images(images, None)
    train = ArrayBatches(images, labels, np.arange(48), 16, normalizer, shuffle=True)
    val = ArrayBatches(images, labels, np.arange(48, 64), 16, normalizer)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    result = fit(model, train, val, TrainConfig(epochs=1, compile=True), DeviceSettings(CPU, None, False))
    assert len(result.history) == 1


# ---- on a real GPU ----

def small_cnn(classes=4):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, classes))


@pytest.mark.cuda
def test_a_real_gpu_gets_autocast_channels_last_and_tf32():
    settings = pick_device("auto")
    assert settings.device.type == "cuda" and settings.channels_last
    assert settings.amp_dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32


@pytest.mark.cuda
def test_batches_on_a_gpu_equal_the_cpus():
    images, labels = images_and_labels()
    normalizer = Normalizer.from_images(images, 16)
    rows = np.random.default_rng(1).permutation(50)[:40]
    options = dict(shuffle=True, seed=3, drop_last=True)
    on_cpu = ResidentBatches(images, labels, rows, 16, normalizer, CPU, **options)
    resident_gpu = ResidentBatches(images, labels, rows, 16, normalizer, torch.device("cuda"), **options)  # uint8 there
    gathered_gpu = ArrayBatches(images, labels, rows, 16, normalizer, device="cuda", **options)  # pinned, non-blocking
    for (x, y), (xr, yr), (xg, yg) in zip(on_cpu, resident_gpu, gathered_gpu, strict=True):
        assert xr.is_cuda and xg.is_cuda and yr.is_cuda and yg.is_cuda
        assert torch.allclose(xr.cpu(), x, atol=1e-5) and torch.allclose(xg.cpu(), x, atol=1e-5)
        assert torch.equal(yr.cpu(), y) and torch.equal(yg.cpu(), y)


@pytest.mark.cuda
def test_batch_augmentation_computes_the_same_on_a_gpu():
    images, _ = images_and_labels(32)
    normalizer = Normalizer.from_images(images, None)
    x = normalizer(images)
    augment = plan(resolve_transforms(["light", "CoarseDropout"]), normalizer, seed=5)
    g = torch.Generator().manual_seed(0)
    for op in augment.ops:  # the same draws applied on both devices
        params = op.draw(len(x), x.shape[-2:], g, CPU)
        on_gpu = op.apply(x.cuda(), {k: v.cuda() for k, v in params.items()})
        assert on_gpu.is_cuda and torch.allclose(on_gpu.cpu(), op.apply(x, params), atol=1e-6), op


@pytest.mark.cuda
@pytest.mark.parametrize("compile_", [False, True], ids=["eager", "compiled"])
def test_fit_trains_on_a_gpu_under_autocast(compile_):
    images, labels = images_and_labels(128)
    normalizer = Normalizer.from_images(images, None)
    settings = pick_device("cuda")
    train = batches_for(images, labels, np.arange(96), 32, normalizer, settings.device, shuffle=True, drop_last=True)
    val = batches_for(images, labels, np.arange(96, 128), 32, normalizer, settings.device)
    model = small_cnn()
    result = fit(model, train, val, TrainConfig(epochs=2, compile=compile_), settings)
    assert len(result.history) == 2 and all(np.isfinite(h["val_loss"]) for h in result.history)
    assert model[0].weight.is_cuda and model[0].weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.cuda
def test_predictions_with_tta_on_a_gpu_equal_the_cpus():
    images, labels = images_and_labels(40)
    normalizer = Normalizer.from_images(images, None)
    tta = TTA(tuple(resolve_views("airbench")), shift=0.125)  # mirror and shifts
    cpu_model, gpu_model = small_cnn().eval(), small_cnn().eval()
    gpu = DeviceSettings(torch.device("cuda"), None, channels_last=True)  # fp32: comparable to the CPU's
    on_cpu = predict_proba(cpu_model, batches_for(images, labels, np.arange(40), 16, normalizer, CPU),
                           DeviceSettings(CPU, None, False), tta)
    on_gpu = predict_proba(gpu_model.cuda().to(memory_format=torch.channels_last),
                           batches_for(images, labels, np.arange(40), 16, normalizer, gpu.device), gpu, tta)
    assert on_gpu.shape == on_cpu.shape == (40, 4) and np.allclose(on_gpu, on_cpu, atol=1e-3)


def test_memory_format_is_channels_last_on_the_cpu_only_when_the_recipe_asks(monkeypatch):
    from kit.train.device import pick_device

    monkeypatch.setattr("kit.train.device.cpu_has_bf16_units", lambda: False)
    assert not pick_device("cpu").channels_last
    assert pick_device("cpu", memory_format="channels_last").channels_last
    assert not pick_device("cpu", memory_format="contiguous").channels_last
