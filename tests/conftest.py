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


@pytest.fixture(scope="session")
def _trained_store_template(tmp_path_factory, digits_root) -> Path:
    import os

    from kit.recipe import load_recipe
    from kit.store import Store
    from kit.train import train_recipe

    base = tmp_path_factory.mktemp("trained")
    old = os.environ.get("KIT_DATA")
    os.environ["KIT_DATA"] = str(digits_root.parent)
    try:
        a = write_recipe(base, "tiny_vgg")
        b = write_recipe(base, "tiny_resnet", model={"arch": "resnet_small", "params": {"widths": [8, 16]}})
        for path in (a, b):
            train_recipe(load_recipe(path), Store(base / "store"))
    finally:
        os.environ.pop("KIT_DATA") if old is None else os.environ.__setitem__("KIT_DATA", old)
    return base / "store"


@pytest.fixture
def trained_store(workdir, _trained_store_template) -> Path:
    """A store with two finished tiny models on digits (tiny_vgg, tiny_resnet), copied into workdir."""
    target = workdir / "store"
    shutil.copytree(_trained_store_template, target)
    return target
