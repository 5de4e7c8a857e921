"""The fast paths: resident batches equal gathered ones, and the CUDA switches are taken exactly when CUDA is there.

No GPU here: CUDA is faked where only the decision is under test (which settings, whether torch.compile
is called); everything that computes runs on the CPU.
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
from kit.train.loop import compiled, fit
from kit.train.resident import ResidentBatches, batches_for

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


def test_cpu_keeps_plain_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    settings = pick_device("auto")
    assert settings.device == CPU and settings.amp_dtype is None and not settings.channels_last


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
