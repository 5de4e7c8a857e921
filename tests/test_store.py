"""The store's one owner: model.json read through the Manifest, fold files written and found through Store."""

import json
import shutil

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from kit.cli import app
from kit.store import FOLD_FILES, Manifest, Store, verify_model
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


def test_kit_train_refuses_a_finished_fold_whose_weights_are_truncated(workdir):
    """Not '2 skipped': the damaged file is named and nothing is written; deleting the fold, as the
    message says, retrains that fold alone."""
    from tests.conftest import write_recipe
    from tests.test_bad_inputs import checksums

    recipe = write_recipe(workdir / "recipes", "tiny")
    assert runner.invoke(app, ["train", str(recipe)]).exit_code == 0
    fold1 = workdir / "store" / "digits" / "models" / "tiny" / "seed0" / "fold1"
    weights = fold1 / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:-100])
    before = checksums(workdir / "store")
    result = runner.invoke(app, ["train", str(recipe)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert f"{weights}: " in result.output and "bytes, but fold.json recorded" in result.output
    assert "delete seed0/fold1 and run kit train" in result.output
    assert checksums(workdir / "store") == before
    shutil.rmtree(fold1)
    result = runner.invoke(app, ["train", str(recipe)])
    assert result.exit_code == 0 and "1 folds trained, 1 skipped" in result.output, result.output


def test_a_submission_is_never_written_from_nan_probabilities(tmp_path):
    """The last guard, behind the store's checks: argmax would make a NaN row the first class."""
    import pytest

    from kit.errors import SubmissionError
    from kit.submit import submission_format, write_submission

    store, _, _ = synthetic_store(tmp_path / "store")
    member = store.load_member("syn", "m0")
    fmt = submission_format(store.sample_submission("syn"), member.classes)
    probs = member.test.copy()
    probs[5] = np.nan
    with pytest.raises(SubmissionError, match=f"test id '{member.test_ids[5]}' are NaN or infinite; no submission"):
        write_submission(tmp_path / "s.csv", fmt, member.test_ids, probs, member.classes)
    assert not (tmp_path / "s.csv").exists()


def test_verify_model_checks_every_file_against_fold_json(trained_store):
    """The kill tests' check: a file edited after its fold finished is found by its sha256."""
    model_dir = trained_store / "digits" / "models" / "tiny_vgg"
    assert verify_model(model_dir) == []
    history = model_dir / "seed0" / "fold0" / "history.csv"
    history.write_text(history.read_text().replace("1,", "2,", 1))
    problems = verify_model(model_dir)
    assert len(problems) == 1 and problems[0].startswith(f"{history}: its content changed since the fold finished")
