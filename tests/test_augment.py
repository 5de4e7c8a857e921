"""Train-time augmentation: recipes checked against albumentations, pipelines that keep shape and dtype,
reproducible draws, batches that replay on resume, mixup/CutMix, and the preview grid."""

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from kit.augment import PRESETS, augment_images, build_pipeline, check_pipeline, resolve_transforms
from kit.cli import app
from kit.errors import RecipeError
from kit.recipe import MixConfig, load_recipe
from kit.train.augmented_batches import AugmentedBatches
from kit.train.batches import Normalizer
from kit.train.mixing import BatchMixer
from tests.conftest import write_recipe

GRAY = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
RGB = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("transforms, fragment", [
    (["HorizontalFlp"], "augment.transforms.0: 'HorizontalFlp' is not an albumentations transform nor a preset "
                        "(light, medium, heavy) (did you mean 'HorizontalFlip'?)"),
    (["horizontalflip"], "(did you mean 'HorizontalFlip'?)"),
    (["medum"], "(did you mean 'medium'?)"),
    ([{"Affine": {"rotat": 10}}], "augment.transforms.0.Affine.rotat: not an argument of albumentations' Affine "
                                  "(did you mean 'rotate'?)"),
    ([{"Affine": {"rotate": "ten"}}], "augment.transforms.0.Affine.rotate: input should be a valid"),
    ([{"OneOf": {"transforms": ["HorizontalFlip", {"Blur": {"blur_lmit": 3}}]}}],
     "augment.transforms.0.OneOf.transforms.1.Blur.blur_lmit: not an argument of albumentations' Blur "
     "(did you mean 'blur_limit'?)"),
    (["Normalize"], "augment.transforms.0: Normalize: not usable in a recipe's augmentation: kit standardises"),
    ([{"HorizontalFlip": {"p": 0.5}, "VerticalFlip": {}}], "augment.transforms.0: expected one transform as"),
    ([{"RandomCrop": {"height": 4}}], "augment.transforms.0.RandomCrop: albumentations' RandomCrop needs width"),
])
def test_bad_transforms_are_one_line_naming_the_entry(workdir, transforms, fragment):
    path = write_recipe(workdir / "recipes", "bad", augment={"transforms": transforms})
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and fragment in message and "\n" not in message


def test_mixup_and_cutmix_cannot_exceed_one_batch(workdir):
    path = write_recipe(workdir / "recipes", "bad", augment={"mixup": {"p": 0.7}, "cutmix": {"p": 0.5}})
    with pytest.raises(RecipeError, match="mixup.p \\+ cutmix.p is 1.2"):
        load_recipe(path)


def test_presets_are_expanded_into_the_stored_recipe_and_the_hash(workdir):
    plain = load_recipe(write_recipe(workdir / "recipes", "plain"))
    defaults = load_recipe(write_recipe(workdir / "recipes", "defaults", augment={"transforms": [], "workers": 2},
                                        tta="none"))
    assert plain.hash == defaults.hash  # models trained before augment/tta existed keep their hash
    light = load_recipe(write_recipe(workdir / "recipes", "light", augment="light"))
    assert light.resolved()["augment"]["transforms"] == PRESETS["light"]
    listed = load_recipe(write_recipe(workdir / "recipes", "listed", augment={"transforms": PRESETS["light"]}))
    assert light.hash == listed.hash != plain.hash
    more_workers = load_recipe(write_recipe(workdir / "recipes", "w", augment={"transforms": "light", "workers": 3}))
    assert more_workers.hash == light.hash  # workers change the speed, never the result


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("images", [GRAY, RGB], ids=["gray8", "rgb32"])
def test_pipelines_change_images_but_keep_shape_and_dtype(preset, images):
    pipeline = build_pipeline(resolve_transforms(preset), images.shape[1:3])
    check_pipeline(pipeline, images, "augment.transforms")
    out = augment_images(pipeline, images, seed=3)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images)
    assert np.array_equal(out, augment_images(pipeline, images, seed=3))  # a seed replays its draws
    assert not np.array_equal(out, augment_images(pipeline, images, seed=4))


def test_crops_default_to_the_image_size_and_size_changes_are_refused():
    pipeline = build_pipeline(resolve_transforms(["RandomResizedCrop"]), (8, 8))
    assert augment_images(pipeline, GRAY, seed=0).shape == GRAY.shape
    shrinking = build_pipeline(resolve_transforms([{"RandomCrop": {"height": 4, "width": 4}}]), (8, 8))
    with pytest.raises(RecipeError, match="turns 8x8x1 images into 4x4x1; each image must keep its size"):
        check_pipeline(shrinking, GRAY, "augment.transforms")


def test_every_transform_draws_on_its_own():
    """albumentations' Compose(seed=...) gives every transform the same stream (two p=0.5 flips then always
    flip together); kit seeds each one apart."""
    pipeline = build_pipeline(resolve_transforms(["HorizontalFlip", "VerticalFlip"]), (8, 8))
    image = np.arange(64, dtype=np.uint8).reshape(1, 8, 8, 1)
    out = augment_images(pipeline, np.repeat(image, 200, axis=0), seed=0)
    h = np.array([np.array_equal(o, image[0][:, ::-1]) or np.array_equal(o, image[0][::-1, ::-1]) for o in out])
    v = np.array([np.array_equal(o, image[0][::-1]) or np.array_equal(o, image[0][::-1, ::-1]) for o in out])
    assert 0.35 < h.mean() < 0.65 and 0.35 < v.mean() < 0.65
    assert 0.1 < (h & v).mean() < 0.4  # independent: about a quarter flip both ways


def _batches(workers=0, seed=0):
    images = np.random.default_rng(2).integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
    pipeline = build_pipeline(resolve_transforms(["heavy"]), (8, 8))
    return AugmentedBatches(images, np.arange(40) % 3, np.arange(40), 16, Normalizer([0.5], [0.25], 8), pipeline,
                            seed=seed, drop_last=True, workers=workers)


def _epoch(batches):
    return [(x.clone(), y.clone()) for x, y in batches]


def test_augmented_batches_replay_from_their_state_and_do_not_depend_on_workers():
    batches = _batches()
    first = _epoch(batches)
    state = batches.state_dict()
    second = _epoch(batches)
    assert not torch.equal(first[0][0], second[0][0])  # a new shuffle and new draws each pass
    resumed = _batches(seed=99)
    resumed.load_state_dict(state)
    for (x, y), (rx, ry) in zip(second, _epoch(resumed)):
        assert torch.equal(x, rx) and torch.equal(y, ry)
    in_workers = _batches(workers=2)
    for (x, y), (wx, wy) in zip(first, _epoch(in_workers)):
        assert torch.equal(x, wx) and torch.equal(y, wy)


def test_mixup_and_cutmix_make_soft_targets_that_match_the_images():
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 8, 8).contiguous()  # image i is all i
    y = torch.tensor([0, 1, 2, 3])
    mixup = BatchMixer(4, mixup=MixConfig(p=1.0, alpha=0.4), seed=0)
    mixed, target = mixup(x, y)
    lam = target[0, 0].item()
    assert torch.allclose(target.sum(1), torch.ones(4))
    assert torch.allclose(mixed[0], torch.full((1, 8, 8), 3 * (1 - lam)))  # image 0 mixed with image 3
    cutmix = BatchMixer(4, cutmix=MixConfig(p=1.0, alpha=1.0), seed=1)
    cut, target = cutmix(x, y)
    pasted = (cut[0] == 3).float().mean().item()  # image 0's pixels that came from image 3
    assert target[0, 3].item() == pytest.approx(pasted) and target[0, 0].item() == pytest.approx(1 - pasted)
    untouched = BatchMixer(4, mixup=MixConfig(p=0.0, alpha=1.0), cutmix=MixConfig(p=0.0, alpha=1.0), seed=0)
    assert untouched(x, y)[1] is y
    replay = BatchMixer(4, mixup=MixConfig(p=1.0, alpha=0.4), seed=5)
    replay.load_state_dict(mixup.state_dict())
    assert torch.equal(replay(x, y)[1], mixup(x, y)[1])


def test_augment_preview_writes_a_png_grid_of_the_expected_size(workdir):
    path = write_recipe(workdir / "recipes", "shifted",
                        augment={"transforms": [{"Affine": {"translate_percent": 0.15, "p": 1.0}}]})
    out = workdir / "preview.png"
    result = CliRunner().invoke(app, ["augment-preview", str(path), "--n", "3", "--samples", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        # digits are 8 px: cells of 96 px (x12), 4 px gaps, a 14 px label band under each row
        assert image.size == (4 + 3 * (96 + 4), 4 + 3 * (96 + 14 + 4))
        grid = np.asarray(image)
    original, augmented = grid[4:100, 4:100], grid[4:100, 104:200]
    assert not np.array_equal(original, augmented)


def test_augment_preview_of_a_recipe_without_transforms_says_so(workdir):
    path = write_recipe(workdir / "recipes", "plain")
    result = CliRunner().invoke(app, ["augment-preview", str(path)])
    assert result.exit_code == 2 and "augment.transforms: empty" in result.output
