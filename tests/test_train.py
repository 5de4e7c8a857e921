import json

import numpy as np
import pandas as pd
import pytest

from kit.errors import RecipeError, StoreError
from kit.progress import Reporter
from kit.recipe import load_recipe
from kit.store import Store
from kit.train import train_recipe
from tests.conftest import write_recipe


class Recorder(Reporter):
    def __init__(self):
        self.messages, self.tables = [], []

    def message(self, text):
        self.messages.append(text)

    def table(self, title, columns, rows, highlight=None):
        self.tables.append(title)


def test_two_fold_one_epoch_fills_the_store(workdir):
    recipe = load_recipe(write_recipe(workdir / "recipes", "tiny"))
    reporter = Recorder()
    summary = train_recipe(recipe, Store(workdir / "store"), reporter)
    model_dir = workdir / "store" / "digits" / "models" / "tiny"
    assert summary.folds_trained == 2 and summary.folds_skipped == 0
    assert len(reporter.tables) == 2  # a table per fold
    for k in range(2):
        fold = model_dir / "seed0" / f"fold{k}"
        assert {p.name for p in fold.iterdir()} == {"oof.npz", "test.npz", "history.csv", "weights.pt", "fold.json"}
        with np.load(fold / "oof.npz") as oof, np.load(fold / "test.npz") as test:
            assert oof["probs"].shape == (len(oof["ids"]), 10)
            assert np.allclose(oof["probs"].sum(1), 1, atol=1e-5)
            assert test["probs"].shape == (360, 10)
        history = pd.read_csv(fold / "history.csv")
        assert list(history.columns) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
    manifest = json.loads((model_dir / "model.json").read_text())
    assert manifest["status"] == "complete" and manifest["n_folds"] == 2
    assert manifest["folds_hash"] and manifest["data_fingerprint"] and manifest["recipe_hash"] == recipe.hash
    assert (workdir / "store" / "digits" / "folds" / "k2-seed0.csv").is_file()
    assert (workdir / "store" / "digits" / "sample_submission.csv").is_file()
    metrics = json.loads((model_dir / "metrics.json").read_text())
    # one epoch of a tiny net: twice chance (0.1) or better on digits
    assert metrics["cv"]["accuracy"] == summary.cv["accuracy"] > 0.2


def test_rerun_skips_finished_folds_and_force_retrains(workdir):
    path = write_recipe(workdir / "recipes", "tiny")
    store = Store(workdir / "store")
    train_recipe(load_recipe(path), store)
    weights = workdir / "store" / "digits" / "models" / "tiny" / "seed0" / "fold1" / "weights.pt"
    before = weights.stat().st_mtime_ns
    reporter = Recorder()
    summary = train_recipe(load_recipe(path), store, reporter)
    assert (summary.folds_trained, summary.folds_skipped) == (0, 2)
    assert weights.stat().st_mtime_ns == before
    assert any("2 of 2 (seed, fold) runs already in the store" in m for m in reporter.messages)
    summary = train_recipe(load_recipe(path), store, force=True)
    assert summary.folds_trained == 2 and weights.stat().st_mtime_ns != before


def test_a_missing_fold_is_trained_alone(workdir):
    path = write_recipe(workdir / "recipes", "tiny")
    store = Store(workdir / "store")
    train_recipe(load_recipe(path), store)
    fold0 = workdir / "store" / "digits" / "models" / "tiny" / "seed0" / "fold0"
    (fold0 / "fold.json").unlink()  # as if killed before fold 0 finished
    summary = train_recipe(load_recipe(path), store)
    assert (summary.folds_trained, summary.folds_skipped) == (1, 1)


def test_same_seed_gives_the_same_predictions(workdir):
    store = Store(workdir / "store")
    a = train_recipe(load_recipe(write_recipe(workdir / "recipes", "a")), store)
    b = train_recipe(load_recipe(write_recipe(workdir / "recipes", "b")), store)
    assert np.allclose(store.load_member("digits", "a").oof, store.load_member("digits", "b").oof, atol=1e-5)
    assert a.cv["accuracy"] == b.cv["accuracy"]


def test_several_seeds_are_each_trained(workdir):
    store = Store(workdir / "store")
    summary = train_recipe(load_recipe(write_recipe(workdir / "recipes", "s", train__seed=[0, 1])), store)
    assert summary.folds_trained == 4
    metrics = json.loads((workdir / "store" / "digits" / "models" / "s" / "metrics.json").read_text())
    assert set(metrics["per_seed"]) == {"0", "1"}


def test_changed_recipe_under_the_same_name_is_refused(workdir):
    store = Store(workdir / "store")
    train_recipe(load_recipe(write_recipe(workdir / "recipes", "tiny")), store)
    changed = load_recipe(write_recipe(workdir / "recipes", "tiny", train__epochs=2))
    with pytest.raises(StoreError, match="the recipe changed since model 'tiny' was trained.*--force"):
        train_recipe(changed, store)


def test_unknown_architecture_is_refused_when_the_recipe_loads(workdir):
    path = write_recipe(workdir / "recipes", "bad", model={"arch": "resnet_tiny"})
    with pytest.raises(RecipeError, match="bad.yaml: model.arch: unknown architecture 'resnet_tiny'"):
        load_recipe(path)
