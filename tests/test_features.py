"""The feature cache and the embeddings mode: a frozen backbone's features computed once, heads trained on them."""

import numpy as np
import pytest
from PIL import Image
import timm
import torch
from typer.testing import CliRunner

import kit.features
from kit.cli import app
from kit.errors import RecipeError
from kit.recipe import load_recipe
from kit.store import Store
from kit.train import train_recipe
from tests.conftest import write_recipe

TINY_TIMM = "test_resnet"


def _recipe(workdir, name, head="linear", **changes):
    options = {"model": {"arch": f"timm/{TINY_TIMM}"}, "image_size": 16,
               "train__epochs": 5, "train__finetune": {"mode": "embeddings", "head": {"name": head}}}
    options.update(changes)
    return load_recipe(write_recipe(workdir / "recipes", name, **options))


@pytest.fixture
def computations(monkeypatch):
    """How many times the backbone ran over a split (train or test) to compute features."""
    calls = []
    real = kit.features.extract

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(kit.features, "extract", counting)
    return calls


def test_features_are_computed_once_for_every_fold_seed_and_head(workdir, computations):
    store = Store(workdir / "store")
    linear = train_recipe(_recipe(workdir, "linear", train__seed=[0, 1], tta="flip"), store)
    assert len(computations) == 2  # the training images and the test images, once each, for 2 seeds x 2 folds
    mlp = train_recipe(_recipe(workdir, "mlp", head="mlp", tta="flip"), store)
    logreg = train_recipe(_recipe(workdir, "logreg", head="logreg", tta="flip", train__epochs=1), store)
    assert len(computations) == 2  # another head, the same features
    for summary in (linear, mlp, logreg):
        # random weights: features worth little, but a head still learns from them (chance is 0.1)
        assert summary.folds_trained == (4 if summary is linear else 2) and summary.cv["accuracy"] > 0.2, summary
        predictions = store.assemble(store.manifest("digits", summary.model))
        assert np.allclose(predictions.oof.sum(1), 1, atol=1e-4) and np.allclose(predictions.test.sum(1), 1, atol=1e-4)
    folders = list((workdir / "store" / "digits" / "features").iterdir())
    assert len(folders) == 1 and np.load(folders[0] / "train.npy", mmap_mode="r").shape[1] == 2  # two views
    # the members blend as any others do
    result = CliRunner().invoke(app, ["blend", "--models", "linear", "--models", "mlp", "--models", "logreg", "--out", "sub.csv"])
    assert result.exit_code == 0, result.output
    # a head alone cannot run on new images: kit predict says so in one line
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(workdir / "x.png")
    result = CliRunner().invoke(app, ["predict", "mlp", str(workdir / "x.png")])
    assert result.exit_code == 2 and "is a mlp head on cached features" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_changing_the_weights_the_input_size_or_the_views_computes_new_features(workdir, computations):
    store = Store(workdir / "store")
    weights = workdir / "backbone.pth"
    torch.manual_seed(0)
    torch.save(timm.create_model(TINY_TIMM).state_dict(), weights)
    model = {"arch": f"timm/{TINY_TIMM}", "pretrained": str(weights)}
    train_recipe(_recipe(workdir, "a", model=model), store)
    assert len(computations) == 2
    train_recipe(_recipe(workdir, "b", model=model, train__epochs=3), store)  # the head's training: cached
    assert len(computations) == 2
    torch.manual_seed(1)
    torch.save(timm.create_model(TINY_TIMM).state_dict(), weights)  # other weights in the same file
    train_recipe(_recipe(workdir, "c", model=model), store)
    assert len(computations) == 4
    train_recipe(_recipe(workdir, "d", model=model, image_size=24), store)
    assert len(computations) == 6
    train_recipe(_recipe(workdir, "e", model=model, tta="flip"), store)
    assert len(computations) == 8
    assert len(list((workdir / "store" / "digits" / "features").iterdir())) == 4


def test_a_linear_probe_without_augmentation_trains_on_cached_features_and_stores_the_whole_network(
        workdir, computations):
    store = Store(workdir / "store")
    summary = train_recipe(_recipe(workdir, "probe", train__finetune={"mode": "linear_probe"}), store)
    assert len(computations) == 2 and summary.cv["accuracy"] > 0.15
    state = torch.load(store.fold_dir("digits", "probe", 0, 0) / "weights.pt", weights_only=True)
    model = timm.create_model(TINY_TIMM, num_classes=10, in_chans=1)
    model.load_state_dict(state)  # every tensor of the network: kit predict runs it on new images


@pytest.mark.parametrize("changes, expected", [
    ({"augment": {"transforms": ["HorizontalFlip"]}}, "augment: the embeddings mode trains its head on features "),
    ({"train__finetune": {"mode": "embeddings", "head": {"name": "mlpp"}}}, "train.finetune.head.name: no head "
                                                                            "'mlpp' (did you mean 'mlp'?)"),
    ({"train__finetune": {"mode": "embeddings", "head": {"name": "mlp", "params": {"hiden": 8}}}},
     "train.finetune.head.params.hiden: head 'mlp' takes no such parameter (did you mean 'hidden'?)"),
    ({"train__finetune": {"mode": "full", "head": {"name": "mlp"}}}, "train.finetune.head: a head on cached "
                                                                     "features is for mode: embeddings"),
])
def test_embeddings_recipes_that_cannot_run_are_refused_at_load_in_one_line(workdir, changes, expected):
    with pytest.raises(RecipeError) as err:
        _recipe(workdir, "bad", **changes)
    assert expected in str(err.value) and "\n" not in str(err.value)
