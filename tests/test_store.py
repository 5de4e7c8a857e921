"""The store's one owner: model.json read through the Manifest, fold files written and found through Store."""

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from kit.cli import app
from kit.store import FOLD_FILES, Manifest, Store
from tests.blend_fixtures import synthetic_store

runner = CliRunner()

# the keys kit's first version wrote (before TTA, kit predict and its precision), once the model finished
FIRST_KEYS = ("name", "competition", "arch", "status", "recipe_hash", "data_fingerprint", "folds_file", "folds_hash",
              "n_folds", "seeds", "classes", "test_ids_hash", "image_size", "kit_version", "created", "finished", "cv")


def _rewrite(path, edit):
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_model_json_of_an_older_kit_still_lists_and_blends(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_SUBMISSIONS", str(tmp_path / "submissions"))
    monkeypatch.setattr("kit.report.plot_matrix", lambda path, *args, **kwargs: path)
    store, _, _ = synthetic_store(tmp_path / "store")

    def as_first_kit(manifest):
        old = {key: manifest.get(key) for key in FIRST_KEYS}
        old.update(recipe_hash="abc", image_size=8, kit_version="0.1.0", created="2026-01-01T00:00:00+00:00",
                   finished="2026-01-01T00:01:00+00:00", written_by_a_later_kit={"ignored": True})
        manifest.clear()
        manifest.update(old)

    _rewrite(store.model_dir("syn", "m1") / "model.json", as_first_kit)
    manifest = store.manifest("syn", "m1")
    assert manifest.tta == "none" and manifest.predict is None  # the defaults older models are read with
    result = runner.invoke(app, ["models", "--store", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    assert "m1" in result.output and "complete" in result.output
    result = runner.invoke(app, ["blend", "--store", str(tmp_path / "store"), "--method", "soft"])
    assert result.exit_code == 0, result.output
    assert "m1" in result.output and "submission:" in result.output


def test_model_json_missing_a_required_field_is_named(tmp_path):
    store, _, _ = synthetic_store(tmp_path / "store")
    _rewrite(store.model_dir("syn", "m2") / "model.json", lambda m: m.pop("folds_hash"))
    result = runner.invoke(app, ["blend", "--store", str(tmp_path / "store")])
    assert result.exit_code == 2
    assert "m2/model.json: folds_hash: required, but missing; retrain the model with --force" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_model_json_reads_back_as_kit_wrote_it(trained_store):
    """Plain-JSON readers of the store see the same keys and values the Manifest was written with."""
    for model in ("tiny_vgg", "tiny_resnet"):
        raw = json.loads((trained_store / "digits" / "models" / model / "model.json").read_text())
        assert Manifest.model_validate(raw).model_dump(exclude_none=True) == raw
        assert {"predict", "tta", "cv", "recipe_hash"} <= set(raw)


def _image(path):
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).save(path)
    return path


def test_a_finished_fold_holds_the_fold_files_and_its_weights_are_found(trained_store, workdir):
    store = Store(trained_store)
    manifest = store.manifest("digits", "tiny_vgg")
    weights = store.weights_files(manifest)
    assert len(weights) == manifest.n_folds * len(manifest.seeds)
    for path in weights:
        assert {p.name for p in path.parent.iterdir()} == set(FOLD_FILES)
    weights[-1].unlink()
    result = runner.invoke(app, ["predict", "--store", str(trained_store), "tiny_vgg", str(_image(workdir / "a.png"))])
    assert result.exit_code == 2 and f"{weights[-1]}: missing; retrain the model with --force" in result.output


def test_predict_reads_a_model_that_did_not_record_its_precision_or_tta(few_epochs_store, workdir):
    """A model trained before kit recorded them predicts in automatic precision, without TTA."""
    def as_older_kit(manifest):
        manifest["predict"].pop("precision")
        manifest.pop("tta")

    _rewrite(few_epochs_store / "digits" / "models" / "few_epochs" / "model.json", as_older_kit)
    result = runner.invoke(app, ["predict", "--store", str(few_epochs_store), "few_epochs",
                                 str(_image(workdir / "a.png")), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["tta"] == "none" and answer["runs"] == 2 and len(answer["images"][0]["top"]) == 5


def test_unfinished_models_are_refused_by_blend(tmp_path):
    store, _, _ = synthetic_store(tmp_path / "store")
    _rewrite(store.model_dir("syn", "m0") / "model.json", lambda m: m.update(status="training"))
    result = runner.invoke(app, ["blend", "--store", str(tmp_path / "store"), "--models", "m0"])
    assert result.exit_code == 2 and "model 'm0' is not finished: its training stopped after" in result.output
