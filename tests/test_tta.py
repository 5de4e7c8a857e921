"""Test-time augmentation: the views, their average, and the same views for the held-out fold and the test set."""

import json

import numpy as np
import pytest
import torch

from kit.errors import RecipeError
from kit.recipe import load_recipe
from kit.train.batches import ArrayBatches, Normalizer
from kit.train.device import pick_device
from kit.train.loop import predict_proba
from kit.tta import NO_TTA, TTA, resolve_views
from tests.conftest import write_recipe


class Probe(torch.nn.Module):
    """Logits that see where things are in the image: a fixed random linear map of the pixels."""

    def __init__(self, pixels, classes=4):
        super().__init__()
        self.linear = torch.nn.Linear(pixels, classes)

    def forward(self, x):
        return self.linear(x.flatten(1))


def _predict(model, images, tta):
    batches = ArrayBatches(images, None, np.arange(len(images)), 5, Normalizer([0.5], [0.25], None))
    return predict_proba(model, batches, pick_device("cpu"), tta)


def test_hflip_of_a_horizontally_symmetric_image_gives_the_identity_probabilities():
    torch.manual_seed(0)
    half = np.random.default_rng(0).integers(0, 256, (7, 8, 4, 1), dtype=np.uint8)
    symmetric = np.concatenate([half, half[:, :, ::-1]], axis=2)
    model = Probe(64)
    plain, flipped = _predict(model, symmetric, NO_TTA), _predict(model, symmetric, TTA(("identity", "hflip")))
    assert np.allclose(plain, flipped, atol=1e-6)
    asymmetric = np.random.default_rng(1).integers(0, 256, (7, 8, 8, 1), dtype=np.uint8)
    both = _predict(model, asymmetric, TTA(("identity", "hflip")))
    alone = (_predict(model, asymmetric, NO_TTA) + _predict(model, asymmetric[:, :, ::-1].copy(), NO_TTA)) / 2
    assert np.allclose(both, alone, atol=1e-6)  # the mean of the views' probabilities
    assert not np.allclose(both, _predict(model, asymmetric, NO_TTA), atol=1e-3)


def test_views_move_the_image_as_named():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3, 4] = 1
    tta = TTA(("identity", "hflip", "vflip", "shift_right", "shift_up"), shift=0.25)
    views = tta.expand(x)
    assert views.shape == (5, 1, 8, 8)
    where = [tuple(torch.nonzero(v[0]).tolist()[0]) for v in views]
    assert where == [(3, 4), (3, 3), (4, 4), (3, 6), (1, 4)]  # a shift of 0.25 x 8 = 2 pixels
    assert tta.merge(torch.arange(10.0).view(5, 2)).tolist() == [[4.0, 5.0]]


def test_views_and_presets_from_the_recipe(workdir):
    assert resolve_views("flip_shift") == ["identity", "hflip", "shift_left", "shift_right", "shift_up", "shift_down"]
    assert resolve_views(["flip", "vflip"]) == ["identity", "hflip", "vflip"]
    recipe = load_recipe(write_recipe(workdir / "recipes", "r", tta={"views": "flip", "shift": 0.1}))
    assert recipe.tta.views == ["identity", "hflip"]
    with pytest.raises(RecipeError, match=r"r.yaml: tta.views: 'hflp' is not a view .* \(did you mean 'hflip'\?\)"):
        load_recipe(write_recipe(workdir / "recipes", "r", tta=["identity", "hflp"]))
    with pytest.raises(RecipeError, match="tta.views: 'hflip' is listed twice"):
        load_recipe(write_recipe(workdir / "recipes", "r", tta=["flip", "hflip"]))


def test_oof_and_test_go_through_the_same_views(few_epochs_store):
    """The recorded views, and one held-out and one test row recomputed by hand from fold 0's weights."""
    from kit.models import build_model
    from kit.recipe import ModelConfig

    model_dir = few_epochs_store / "digits" / "models" / "few_epochs"
    manifest = json.loads((model_dir / "model.json").read_text())
    assert manifest["tta"] == {"views": ["identity", "hflip"]}
    fold_dir = model_dir / "seed0" / "fold0"
    assert json.loads((fold_dir / "fold.json").read_text())["tta"] == manifest["tta"]

    from kit.competition import load_competition, resolve_competition

    data = load_competition(resolve_competition("digits"))
    model = build_model(ModelConfig(arch="vgg_small", params=manifest["predict"]["params"]), 10, 1, 8)
    model.load_state_dict(torch.load(fold_dir / "weights.pt", weights_only=True))
    model.eval()
    settings = pick_device("cpu", manifest["predict"].get("precision", "auto"))
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    normalizer = Normalizer(manifest["predict"]["mean"], manifest["predict"]["std"], manifest["image_size"])
    with np.load(fold_dir / "oof.npz") as oof, np.load(fold_dir / "test.npz") as test:
        oof_id, oof_row = oof["ids"][0], oof["probs"][0]
        test_id, test_row = test["ids"][5], test["probs"][5]
    for split_ids, images, image_id, stored in ((data.train_ids, data.train_images, oof_id, oof_row),
                                                 (data.test_ids, data.test_images, test_id, test_row)):
        x = settings.to_device(normalizer(images[list(split_ids).index(image_id)][None]))
        with torch.no_grad(), settings.autocast():  # the precision and layout kit predicted with
            by_hand = (torch.softmax(model(x).float(), 1) + torch.softmax(model(x.flip(-1)).float(), 1)) / 2
        assert np.allclose(by_hand[0].numpy(), stored, atol=1e-5)
        with torch.no_grad():
            assert not np.allclose(torch.softmax(model(x), 1)[0].numpy(), stored, atol=1e-4)  # TTA did change it


def test_blend_warns_when_members_differ_in_tta(trained_store):
    from kit.blend import blend
    from kit.progress import Reporter
    from kit.store import Store

    manifest_path = trained_store / "digits" / "models" / "tiny_resnet" / "model.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["tta"] = {"views": ["identity", "hflip"]}  # as a model trained with tta: flip records it
    manifest_path.write_text(json.dumps(manifest))

    class Messages(Reporter):
        def __init__(self):
            self.lines = []

        def message(self, text):
            self.lines.append(text)

    reporter = Messages()
    result = blend(Store(trained_store), reporter=reporter)
    warning = "members differ in TTA (tiny_resnet: identity+hflip; tiny_vgg: none)"
    assert any(warning in line for line in reporter.lines)
    assert any(warning in w for w in result.report["warnings"])
    assert result.report["tta"] == {"tiny_resnet": {"views": ["identity", "hflip"]}, "tiny_vgg": "none"}
    summary = (result.report_files[0].parent / "summary.md").read_text()
    assert "**warning:** members differ in TTA" in summary

    manifest["tta"] = "none"
    manifest_path.write_text(json.dumps(manifest))
    assert blend(Store(trained_store)).report["warnings"] == []


def test_every_view_a_recipe_may_name_has_its_tensor_operation():
    from kit.tta import VIEWS
    from kit.tta_ops import OPS

    assert list(OPS) == list(VIEWS)
