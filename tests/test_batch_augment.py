"""The device-side batch augmentation gives what albumentations gives, image by image (on the CPU)."""

import albumentations as A
import numpy as np
import pytest
import torch

from kit.train.batch_augment import BatchAugment, Cutout, Flip, Translate, plan
from kit.train.batches import Normalizer

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (6, 12, 10, 3), dtype=np.uint8)  # H=12, W=10: rows and columns differ
NORM = Normalizer(mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3], size=None)


def normalized(images) -> torch.Tensor:
    return NORM.normalize(torch.from_numpy(np.ascontiguousarray(images)))


def test_flips_equal_albumentations():
    ours = plan(["HorizontalFlip"], NORM).ops[0]
    every = {"apply": torch.ones(len(IMAGES), dtype=torch.bool)}
    expected = np.stack([A.HorizontalFlip(p=1)(image=im)["image"] for im in IMAGES])
    assert torch.allclose(ours.apply(normalized(IMAGES), every), normalized(expected), atol=1e-6)
    vertical = plan([{"VerticalFlip": {"p": 0.3}}], NORM).ops[0]
    expected = np.stack([A.VerticalFlip(p=1)(image=im)["image"] for im in IMAGES])
    assert vertical.p == 0.3 and torch.allclose(vertical.apply(normalized(IMAGES), every), normalized(expected), atol=1e-6)


@pytest.mark.parametrize("dx, dy", [(0, 0), (3, 0), (0, -2), (-4, 5), (9, 11)])
@pytest.mark.parametrize("fill", [0, 128])
def test_translations_equal_albumentations_affine(dx, dy, fill):
    ours = plan([{"Affine": {"translate_px": {"x": [-4, 4], "y": [-4, 4]}, "fill": fill}}], NORM).ops[0]
    params = {"dx": torch.full((len(IMAGES),), dx), "dy": torch.full((len(IMAGES),), dy)}
    reference = A.Affine(translate_px={"x": (dx, dx), "y": (dy, dy)}, fill=fill, p=1)
    expected = np.stack([reference(image=im)["image"] for im in IMAGES])
    assert torch.allclose(ours.apply(normalized(IMAGES), params), normalized(expected), atol=1e-5)


@pytest.mark.parametrize("dx, dy", [(0, 0), (2, 0), (0, -2), (-1, 2), (3, -4)])
def test_reflected_translations_equal_albumentations_affine(dx, dy):
    """border_mode 4 (cv2's BORDER_REFLECT_101, airbench's reflect padding) on whole batches."""
    ours = plan([{"Affine": {"translate_px": [-4, 4], "border_mode": 4}}], NORM).ops[0]
    params = {"dx": torch.full((len(IMAGES),), dx), "dy": torch.full((len(IMAGES),), dy)}
    reference = A.Affine(translate_px={"x": (dx, dx), "y": (dy, dy)}, border_mode=4, p=1)
    expected = np.stack([reference(image=im)["image"] for im in IMAGES])
    assert torch.allclose(ours.apply(normalized(IMAGES), params), normalized(expected), atol=1e-5)


def test_cutout_equals_albumentations_coarse_dropout():
    ours = plan([{"CoarseDropout": {"num_holes_range": [1, 2], "hole_height_range": [2, 5],
                                    "hole_width_range": [2, 5], "fill": 40}}], NORM).ops[0]
    holes = np.array([[1, 2, 4, 7], [5, 0, 10, 3]])  # x_min, y_min, x_max, y_max
    params = {"x0": torch.tensor([[1, 5]]), "y0": torch.tensor([[2, 0]]), "x1": torch.tensor([[4, 10]]),
              "y1": torch.tensor([[7, 3]]), "active": torch.tensor([[True, True]])}
    expected = A.CoarseDropout(fill=40, p=1).apply(IMAGES[0], holes=holes, seed=0)
    assert torch.allclose(ours.apply(normalized(IMAGES[:1]), params), normalized(expected[None]), atol=1e-5)


def test_parameters_are_drawn_from_albumentations_distributions():
    n, g = 40_000, torch.Generator().manual_seed(0)
    flips = Flip(-1, p=0.3).draw(n, (32, 32), g, torch.device("cpu"))["apply"].float().mean()
    assert abs(flips - 0.3) < 0.01
    shift = Translate(x=(-0.1, 0.1), y=(-0.1, 0.1), pixels=False, p=1.0, fill=NORM.fill_value(0)) \
        .draw(n, (32, 32), g, torch.device("cpu"))["dx"].numpy()
    affine = A.Affine(translate_percent=(-0.1, 0.1), p=1)
    affine.set_random_seed(0)
    theirs = np.array([affine._get_translate_params((32, 32))["x"] for _ in range(n)])
    # int(uniform(-0.1, 0.1) * 32): -3..3, with 0 twice as likely (truncation toward zero)
    for value in range(-3, 4):
        assert abs((shift == value).mean() - (theirs == value).mean()) < 0.01
    assert set(np.unique(shift)) == set(np.unique(theirs))
    cut = Cutout(holes=(1, 3), height=(0.1, 0.3), width=(0.1, 0.3), p=1.0, fill=NORM.fill_value(0)) \
        .draw(n, (32, 32), g, torch.device("cpu"))
    counts = cut["active"].sum(1).numpy()
    assert set(np.unique(counts)) == {1, 2, 3} and abs(counts.mean() - 2) < 0.02
    heights = (cut["y1"] - cut["y0"]).numpy()
    assert heights.min() == 3 and heights.max() == 9  # int(32 * U(0.1, 0.3))
    assert (cut["y1"] <= 32).all() and (cut["x0"] >= 0).all()


def test_plan_covers_only_what_it_can_reproduce():
    assert plan(["HorizontalFlip", {"Affine": {"translate_percent": 0.1}}, "CoarseDropout"], NORM) is not None
    assert plan([{"Affine": {"rotate": [-10, 10]}}], NORM) is None  # rotation: albumentations, per image
    assert plan([{"Affine": {"translate_px": 2, "border_mode": 1}}], NORM) is None  # BORDER_REFLECT: edge repeated
    assert plan(["RandomBrightnessContrast"], NORM) is None
    assert plan([{"CoarseDropout": {"fill": "random"}}], NORM) is None


def test_augment_keeps_shape_changes_images_and_resumes_exactly():
    augment = plan(["HorizontalFlip", {"Affine": {"translate_px": [-2, 2], "p": 1.0}},
                    {"CoarseDropout": {"p": 1.0}}], NORM)
    x = normalized(IMAGES)
    state = augment.state_dict()
    first = augment(x)
    assert first.shape == x.shape and first.dtype == x.dtype and not torch.equal(first, x)
    again = BatchAugment(augment.ops)
    again.load_state_dict(state)  # an empty state (nothing drawn yet): the same seed
    assert torch.equal(again(x), first)
    saved = augment.state_dict()
    second = augment(x)
    augment.load_state_dict(saved)
    assert torch.equal(augment(x), second)
