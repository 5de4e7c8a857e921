"""Shared fixtures: every test runs in its own folder, with kit's data, store and submissions there.

`trained_store` trains two tiny recipes on digits once per session (2 folds, 1 epoch, ~seconds)
and hands out copies, so tests that need a filled store neither retrain nor disturb each other.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

# a few seconds on two CPU cores: tiny nets, 2 folds, 1 epoch
TINY = {
    "competition": "digits",
    "model": {"arch": "vgg_small", "params": {"widths": [8, 16], "convs_per_stage": 1}},
    "cv": {"folds": 2, "seed": 0},
    "train": {"epochs": 1, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.01}, "scheduler": {"name": "constant"}},
}


def write_recipe(folder: Path, name: str, **changes) -> Path:
    recipe = yaml.safe_load(yaml.safe_dump(TINY))
    for dotted, value in changes.items():
        keys = dotted.split("__")
        node = recipe
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory) -> Path:
    """The built-in digits competition, written once per session."""
    from kit.competition import load_competition
    from kit.competition.digits import digits_spec

    root = tmp_path_factory.mktemp("data") / "digits"
    load_competition(digits_spec(root))
    return root


@pytest.fixture
def workdir(tmp_path, monkeypatch, digits_root) -> Path:
    """A project folder as a user has it: cwd, with data/digits in place and store/ empty."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    shutil.copytree(digits_root, data / "digits")
    monkeypatch.setenv("KIT_DATA", str(data))
    monkeypatch.setenv("KIT_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("KIT_SUBMISSIONS", str(tmp_path / "submissions"))
    (tmp_path / "recipes").mkdir()
    return tmp_path


def _train_into(base: Path, digits_root: Path, recipes: dict[str, dict]) -> Path:
    """Train `recipes` (name -> write_recipe changes) on the session's digits into base/store."""
    import os

    from kit.recipe import load_recipe
    from kit.store import Store
    from kit.train import train_recipe

    old = os.environ.get("KIT_DATA")
    os.environ["KIT_DATA"] = str(digits_root.parent)
    try:
        for name, changes in recipes.items():
            train_recipe(load_recipe(write_recipe(base, name, **changes)), Store(base / "store"))
    finally:
        os.environ.pop("KIT_DATA") if old is None else os.environ.__setitem__("KIT_DATA", old)
    return base / "store"


@pytest.fixture(scope="session")
def _trained_store_template(tmp_path_factory, digits_root) -> Path:
    return _train_into(tmp_path_factory.mktemp("trained"), digits_root,
                       {"tiny_vgg": {}, "tiny_resnet": {"model": {"arch": "resnet_small", "params": {"widths": [8, 16]}}}})


@pytest.fixture
def trained_store(workdir, _trained_store_template) -> Path:
    """A store with two finished tiny models on digits (tiny_vgg, tiny_resnet), copied into workdir."""
    target = workdir / "store"
    shutil.copytree(_trained_store_template, target)
    return target


# a model worth predicting with (about 0.9 CV accuracy on digits, ~15 s): 6 epochs, averaged with TTA flip
FEW_EPOCHS = {"model": {"arch": "vgg_small", "params": {"widths": [16, 32], "convs_per_stage": 1}},
              "train__epochs": 6, "train__batch_size": 32, "train__optimizer": {"name": "adam", "lr": 0.005},
              "tta": "flip"}


@pytest.fixture(scope="session")
def _few_epochs_template(tmp_path_factory, digits_root) -> Path:
    return _train_into(tmp_path_factory.mktemp("few_epochs"), digits_root, {"few_epochs": FEW_EPOCHS})


@pytest.fixture
def few_epochs_store(workdir, _few_epochs_template) -> Path:
    """A store with one model, 'few_epochs', on digits: 2 folds x 6 epochs, predicted with TTA flip."""
    target = workdir / "store"
    shutil.copytree(_few_epochs_template, target)
    return target


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` run on a real GPU only: skipped, with the reason, where torch sees none."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a real CUDA device (make gpu-check runs these: pytest -m cuda)")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)
