"""`kit predict`: a trained model on image files, its folds averaged, the top classes per image."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from kit.cli import app
from kit.competition import load_competition, resolve_competition
from kit.errors import DataError, StoreError
from kit.predict import collect_images, predict_images
from kit.store import Store

runner = CliRunner()
HANDFUL = 8


@pytest.fixture
def digit_files(few_epochs_store, workdir):
    """The first test digits written as PNG files, with their true labels (digits ships its solution)."""
    data = load_competition(resolve_competition("digits"))
    folder = workdir / "new_images"
    folder.mkdir()
    for i in range(HANDFUL):
        Image.fromarray(data.test_images[i][..., 0]).save(folder / f"{i:02d}-id{data.test_ids[i]}.png")
    solution = pd.read_csv(data.solution, dtype=str).set_index("id")["label"]
    return folder, [solution[i] for i in data.test_ids[:HANDFUL]]


def test_predict_gives_the_right_top1_and_the_stores_test_probabilities(digit_files, few_epochs_store):
    folder, labels = digit_files
    result = runner.invoke(app, ["predict", "few_epochs", str(folder), "--top", "3", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["runs"] == 2 and out["tta"] == {"views": ["identity", "hflip"]}
    images = out["images"]
    assert [p["image"] for p in images] == sorted(str(p) for p in folder.iterdir())  # file i is test row i
    assert all(len(p["top"]) == 3 for p in images)
    assert [p["top"][0]["class"] for p in images] == labels  # a model of 6 epochs gets this handful right
    # each image gets what the store holds for it: the same decoding, normalisation, folds and TTA
    member = Store(few_epochs_store).load_member("digits", "few_epochs")
    for i, p in enumerate(images):
        assert p["top"][0]["probability"] == pytest.approx(member.test[i].max(), abs=1e-5)


def test_predict_table_and_model_folder(digit_files, few_epochs_store):
    folder, labels = digit_files
    model_dir = few_epochs_store / "digits" / "models" / "few_epochs"
    first = sorted(folder.iterdir())[0]
    result = runner.invoke(app, ["predict", str(model_dir), str(first), "--top", "2"])
    assert result.exit_code == 0, result.output
    assert "2 fold weights averaged" in result.output and first.name in result.output
    assert "probability" in result.output


def test_predict_bad_input_is_one_clear_error(digit_files, few_epochs_store, workdir):
    folder, _ = digit_files
    result = runner.invoke(app, ["predict", "few_epoch", str(folder)])
    assert result.exit_code == 2 and "did you mean 'few_epochs'" in result.output
    result = runner.invoke(app, ["predict", "few_epochs", str(workdir / "nothing_here.png")])
    assert result.exit_code == 2 and "nothing_here.png: no such file or folder" in result.output
    (workdir / "empty").mkdir()
    with pytest.raises(DataError, match="no image files in this folder"):
        collect_images([workdir / "empty"])
    (workdir / "notes.png").write_text("not an image")
    result = runner.invoke(app, ["predict", "few_epochs", str(workdir / "notes.png")])
    assert result.exit_code == 2 and "notes.png: not a readable image" in result.output

    model_dir = few_epochs_store / "digits" / "models" / "few_epochs"
    manifest = json.loads((model_dir / "model.json").read_text())
    del manifest["predict"]  # as a model trained before kit predict existed
    (model_dir / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="no 'predict' section .* retrain it with kit train --force"):
        predict_images(model_dir, sorted(folder.iterdir()))


def test_colour_images_are_converted_to_the_models_channels(digit_files, few_epochs_store, workdir):
    folder, labels = digit_files
    grey = sorted(folder.iterdir())[0]
    colour = workdir / "colour.png"
    Image.open(grey).convert("RGB").save(colour)
    model_dir = few_epochs_store / "digits" / "models" / "few_epochs"
    a, b = predict_images(model_dir, [grey]), predict_images(model_dir, [colour])
    assert np.allclose(a.probs, b.probs, atol=1e-6)
