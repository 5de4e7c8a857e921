"""train.log: tensorboard: event files per fold as training runs; not part of the recipe's hash; without the
tensorboard package, one line saying how to install it."""

from __future__ import annotations

import importlib.util

import pytest
from typer.testing import CliRunner

from kit.cli import app
from kit.recipe import load_recipe

from .conftest import write_recipe

runner = CliRunner()


def test_the_log_is_not_part_of_the_model(workdir):
    plain = load_recipe(write_recipe(workdir / "recipes", "a"))
    logged = load_recipe(write_recipe(workdir / "recipes", "b", train__log="tensorboard"))
    assert plain.train.log == "none" and logged.train.log == "tensorboard"
    assert plain.hash == logged.hash and plain.legacy_hash == logged.legacy_hash


def test_without_tensorboard_installed_training_fails_in_one_line_with_the_fix(workdir, monkeypatch):
    recipe = write_recipe(workdir / "recipes", "logged", train__log="tensorboard")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    result = runner.invoke(app, ["train", str(recipe)])
    output = result.output.strip()
    assert result.exit_code == 2, output
    assert len(output.splitlines()) == 1 and "Traceback" not in output, output
    assert str(recipe) in output and "pip install 'kit[tensorboard]'" in " ".join(output.split())
    assert not (workdir / "store" / "digits" / "models" / "logged").exists()


def test_tensorboard_event_files_per_fold_with_every_epoch(workdir):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed (pip install 'kit[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = write_recipe(workdir / "recipes", "logged", train__log="tensorboard", train__epochs=2)
    result = runner.invoke(app, ["train", str(recipe)])
    assert result.exit_code == 0, result.output
    logs = workdir / "store" / "digits" / "tensorboard" / "logged"
    for k in (0, 1):
        folder = logs / "seed0" / f"fold{k}"
        assert list(folder.glob("events.out.tfevents.*")), folder
        events = EventAccumulator(str(folder))
        events.Reload()
        tags = set(events.Tags()["scalars"])
        assert {"loss/train", "loss/validation", "accuracy/train", "accuracy/validation", "lr"} <= tags
        assert [e.step for e in events.Scalars("loss/validation")] == [1, 2]
    # the model is the one a recipe without the log trains: its folds are in the store and done
    assert (workdir / "store" / "digits" / "models" / "logged" / "metrics.json").is_file()
