"""`kit repredict`: a stored model's fold weights predict its folds and the test set again with other
views, as a new member; and `kit predict --submission`."""

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from kit.cli import app
from kit.competition import decode, load_competition, resolve_competition
from kit.store import Store
from tests import competitions

runner = CliRunner()


def _fold_arrays(model_dir, split):
    """{'seed0/fold1': (ids, probs)} of a model's oof.npz or test.npz files."""
    out = {}
    for path in sorted(model_dir.glob(f"seed*/fold*/{split}.npz")):
        with np.load(path) as f:
            out[f"{path.parent.parent.name}/{path.parent.name}"] = (f["ids"], f["probs"])
    return out


def _snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _refused(args, store, *expected):
    """The command exits 2 with one line saying each of `expected`, and leaves the store as it was."""
    before = _snapshot(store)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    text = " ".join(result.output.split())
    for part in expected:
        assert part in text, (part, text)
    assert _snapshot(store) == before


def test_the_sources_own_views_reproduce_its_stored_predictions_bit_for_bit(few_epochs_store):
    source = few_epochs_store / "digits" / "models" / "few_epochs"
    result = runner.invoke(app, ["repredict", "few_epochs", "--tta", "flip", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    member = few_epochs_store / "digits" / "models" / "few_epochs+tta-flip"
    for split in ("oof", "test"):
        stored, again = _fold_arrays(source, split), _fold_arrays(member, split)
        assert list(stored) == list(again) == ["seed0/fold0", "seed0/fold1"]
        for run in stored:
            assert np.array_equal(stored[run][0], again[run][0])
            assert np.array_equal(stored[run][1], again[run][1]), f"{run} {split}: not the training path's"
    # and so its CV is the source's, and the images came as stored (digits is an array layout)
    assert json.loads((member / "model.json").read_text())["cv"] == json.loads((source / "model.json").read_text())["cv"]
    assert "images as stored (pixel_csv)" in " ".join(result.output.split())


def test_other_views_make_a_member_that_blends_and_records_its_derivation(trained_store):
    models = trained_store / "digits" / "models"
    result = runner.invoke(app, ["repredict", "tiny_vgg", "--tta", "flip"])
    assert result.exit_code == 0, result.output
    assert "tiny_vgg+tta-flip" in result.output and "identity+hflip" in result.output
    member = models / "tiny_vgg+tta-flip"
    manifest = json.loads((member / "model.json").read_text())
    source_manifest = json.loads((models / "tiny_vgg" / "model.json").read_text())
    derived = manifest["derived_from"]
    assert derived["source"] == "tiny_vgg" and derived["tta"] == {"views": ["identity", "hflip"]}
    assert derived["weights_in"] == "source"
    assert derived["source_manifest_sha256"] == hashlib.sha256((models / "tiny_vgg" / "model.json").read_bytes()).hexdigest()
    assert derived["source_recipe_hash"] == source_manifest["recipe_hash"] and "recipe_hash" not in manifest
    assert derived["weights"] == {f"seed0/fold{k}": hashlib.sha256(
        (models / "tiny_vgg" / f"seed0/fold{k}/weights.pt").read_bytes()).hexdigest() for k in (0, 1)}
    assert manifest["tta"] == {"views": ["identity", "hflip"]} and manifest["status"] == "complete"
    for key in ("data_fingerprint", "folds_hash", "test_ids_hash", "classes", "n_folds", "seeds", "predict"):
        assert manifest[key] == source_manifest[key]
    # the format kit train writes, without weights (they stay the source's) or a history (nothing trained)
    for k in (0, 1):
        fold = member / f"seed0/fold{k}"
        assert sorted(p.name for p in fold.iterdir()) == ["fold.json", "oof.npz", "test.npz"]
        assert json.loads((fold / "fold.json").read_text())["tta"] == {"views": ["identity", "hflip"]}
    assert yaml.safe_load((member / "recipe.yaml").read_text())["tta"]["views"] == ["identity", "hflip"]
    assert not list(models.glob(".*"))  # no staging folder left behind

    # flip changes the predictions (a test that could not fail would pass on a copy of the source)
    src, new = Store(trained_store).load_member("digits", "tiny_vgg"), Store(trained_store).load_member("digits", "tiny_vgg+tta-flip")
    assert not np.allclose(src.test, new.test, atol=1e-4) and not np.allclose(src.oof, new.oof, atol=1e-4)
    assert manifest["cv"] != source_manifest["cv"]

    result = runner.invoke(app, ["blend", "-m", "tiny_vgg", "-m", "tiny_vgg+tta-flip", "--out", "sub.csv"])
    assert result.exit_code == 0, result.output
    assert "members differ in TTA" in " ".join(result.output.split())
    assert "tiny_vgg+tta-flip" in runner.invoke(app, ["models"]).output

    # kit predict runs a derived member: the source's weights, through the member's views
    Image.fromarray(load_competition(resolve_competition("digits")).test_images[0][..., 0]).save("t0.png")
    out = json.loads(runner.invoke(app, ["predict", "tiny_vgg+tta-flip", "t0.png", "--json", "--top", "1"]).output)
    assert out["tta"] == {"views": ["identity", "hflip"]}
    assert out["images"][0]["top"][0]["probability"] == pytest.approx(new.test[0].max(), abs=1e-5)


def test_a_repredict_of_a_derived_member_names_the_original_source(trained_store):
    assert runner.invoke(app, ["repredict", "tiny_vgg", "--tta", "flip"]).exit_code == 0
    result = runner.invoke(app, ["repredict", "tiny_vgg+tta-flip", "--tta", "none"])
    assert result.exit_code == 0, result.output
    member = trained_store / "digits" / "models" / "tiny_vgg+tta-none"  # named after the original, not the member
    assert json.loads((member / "model.json").read_text())["derived_from"]["source"] == "tiny_vgg"
    # with no views it is the source again, bit for bit
    source = trained_store / "digits" / "models" / "tiny_vgg"
    for split in ("oof", "test"):
        for run, (ids, probs) in _fold_arrays(source, split).items():
            assert np.array_equal(probs, _fold_arrays(member, split)[run][1])


def test_refusals_are_one_line_exit_2_and_write_nothing(trained_store):
    models = trained_store / "digits" / "models"
    _refused(["repredict", "tiny_vg", "--tta", "flip"], trained_store, "no model 'tiny_vg'", "did you mean 'tiny_vgg'")
    _refused(["repredict", "tiny_vgg", "--tta", "hflp"], trained_store, "--tta: 'hflp' is not a view",
             "did you mean 'hflip'")
    _refused(["repredict", "tiny_vgg", "--tta", "flip", "--as", "../x"], trained_store, "--as: '../x' is not a model name")
    _refused(["repredict", "tiny_vgg", "--tta", "flip", "--as", "tiny_resnet"], trained_store,
             "'tiny_resnet' is a trained model", "--as")
    _refused(["repredict", "tiny_vgg", "--tta", "none", "--as", "tiny_vgg", "--force"], trained_store,
             "'tiny_vgg' is a trained model (the source itself)")

    # a member of that name: refused, then replaced with --force
    assert runner.invoke(app, ["repredict", "tiny_vgg", "--tta", "flip"]).exit_code == 0
    _refused(["repredict", "tiny_vgg", "--tta", "flip"], trained_store, "member 'tiny_vgg+tta-flip' already exists",
             "--force replaces it")
    first = (models / "tiny_vgg+tta-flip" / "model.json").read_bytes()
    result = runner.invoke(app, ["repredict", "tiny_vgg", "--tta", "flip", "--force"])
    assert result.exit_code == 0, result.output
    assert json.loads((models / "tiny_vgg+tta-flip" / "model.json").read_bytes())["derived_from"] == \
        json.loads(first)["derived_from"]
    assert not list(models.glob(".*"))

    # a fold's weights changed (another fold's, of the same size) or gone
    weights = models / "tiny_resnet" / "seed0" / "fold1" / "weights.pt"
    kept = weights.read_bytes()
    shutil.copyfile(models / "tiny_resnet" / "seed0" / "fold0" / "weights.pt", weights)
    _refused(["repredict", "tiny_resnet", "--tta", "flip"], trained_store, "fold1/weights.pt: its content changed")
    weights.unlink()
    _refused(["repredict", "tiny_resnet", "--tta", "flip"], trained_store, "fold1/weights.pt: missing")
    weights.write_bytes(kept)

    # the derived member refuses to run once its source's weights are not the ones it was made with
    vgg_weights = models / "tiny_vgg" / "seed0" / "fold0" / "weights.pt"
    kept = vgg_weights.read_bytes()
    vgg_weights.unlink()
    _refused(["repredict", "tiny_vgg+tta-flip", "--tta", "none"], trained_store, "fold0/weights.pt: missing")
    vgg_weights.write_bytes(kept)

    manifest_path = models / "tiny_resnet" / "model.json"
    manifest = json.loads(manifest_path.read_text())
    unfinished = {**manifest, "status": "training"}
    manifest_path.write_text(json.dumps(unfinished))
    _refused(["repredict", "tiny_resnet", "--tta", "flip"], trained_store, "model 'tiny_resnet' is not finished")
    head = {**manifest, "predict": {**manifest["predict"], "head": "logreg"}}
    manifest_path.write_text(json.dumps(head))
    _refused(["repredict", "tiny_resnet", "--tta", "flip"], trained_store, "is a logreg head on cached features",
             "set the recipe's tta and train it again")
    manifest_path.write_text(json.dumps(manifest))
    assert runner.invoke(app, ["repredict", "tiny_resnet", "--tta", "flip"]).exit_code == 0


def test_the_decoded_image_cache_is_used_and_predict_writes_a_submission_in_the_samples_order(tmp_path, monkeypatch):
    """An image-file competition: re-predict reads the cache, opening no image; kit predict on its test
    folder writes the submission the store's test predictions make."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KIT_STORE", str(tmp_path / "store"))
    written = competitions.labels_csv(tmp_path / "comp", labels=("cat", "dog", "fox") * 4, n_test=5)
    recipe = {"competition": {"name": "tiny", "layout": "labels_csv", "root": "comp"},
              "model": {"arch": "vgg_small", "params": {"widths": [4], "convs_per_stage": 1}},
              "cv": {"folds": 2, "seed": 0}, "train": {"epochs": 1, "batch_size": 4}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert runner.invoke(app, ["train", "r.yaml"]).exit_code == 0

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was opened although the cache is valid")

    with monkeypatch.context() as m:
        m.setattr(decode.Image, "open", no_decoding)
        result = runner.invoke(app, ["repredict", "r", "--tta", "flip"])
    assert result.exit_code == 0, result.output
    assert "images from the decoded cache" in " ".join(result.output.split())

    result = runner.invoke(app, ["predict", "r", "comp/test", "--submission", "sub.csv"])
    assert result.exit_code == 0, result.output
    assert "the competition's test set, in the sample submission's order" in " ".join(result.output.split())
    sub = pd.read_csv("sub.csv", dtype=str)
    sample = pd.read_csv("comp/sampleSubmission.csv", dtype=str)
    assert list(sub.columns) == ["id", "label"] and list(sub["id"]) == list(sample["id"])
    member = Store("store").load_member("tiny", "r")
    by_id = dict(zip(member.test_ids, np.asarray(member.classes)[member.test.argmax(1)]))
    assert list(sub["label"]) == [by_id[i] for i in sub["id"]]
    assert sorted(sub["id"]) == sorted(written["test_ids"])


@pytest.fixture
def digit_test_files(few_epochs_store, workdir):
    """Every digits test image as a PNG named by its id, as a competition's test folder is."""
    data = load_competition(resolve_competition("digits"))
    folder = workdir / "test_images"
    folder.mkdir()
    for id_, image in zip(data.test_ids, data.test_images):
        Image.fromarray(image[..., 0]).save(folder / f"{id_}.png")
    return folder


def test_predict_submission_rows_are_the_stores_test_predictions(digit_test_files, few_epochs_store):
    member = Store(few_epochs_store).load_member("digits", "few_epochs")
    result = runner.invoke(app, ["predict", "few_epochs", str(digit_test_files), "--submission", "sub.csv"])
    assert result.exit_code == 0, result.output
    sample = pd.read_csv(few_epochs_store / "digits" / "sample_submission.csv", dtype=str)
    sub = pd.read_csv("sub.csv", dtype=str)
    assert list(sub.columns) == list(sample.columns) and list(sub.iloc[:, 0]) == list(sample.iloc[:, 0])
    row_of = {id_: i for i, id_ in enumerate(member.test_ids)}
    labels = np.asarray(member.classes)[member.test.argmax(1)]
    assert list(sub.iloc[:, 1]) == [labels[row_of[i]] for i in sub.iloc[:, 0]]
    assert runner.invoke(app, ["validate", "sub.csv"]).exit_code == 0

    # a probability competition: one column per class, each the fold average the store holds
    probs_sample = pd.DataFrame({sample.columns[0]: sample.iloc[:, 0],
                                 **{c: 0.1 for c in member.classes}})
    probs_sample.to_csv(few_epochs_store / "digits" / "sample_submission.csv", index=False)
    result = runner.invoke(app, ["predict", "few_epochs", str(digit_test_files), "--submission", "probs.csv"])
    assert result.exit_code == 0, result.output
    probs = pd.read_csv("probs.csv", dtype={sample.columns[0]: str})
    stored = member.test[[row_of[i] for i in probs.iloc[:, 0]]]
    assert np.allclose(probs[member.classes].to_numpy(), stored, atol=2e-5)


def test_predict_submission_for_a_new_test_set_and_bad_input(digit_test_files, few_epochs_store, workdir):
    new = workdir / "new_set"
    new.mkdir()
    for i, path in enumerate(sorted(digit_test_files.iterdir())[:4]):
        shutil.copy(path, new / f"photo{i}.png")
    result = runner.invoke(app, ["predict", "few_epochs", str(new), "--submission", "new.csv"])
    assert result.exit_code == 0, result.output
    assert "a new test set" in " ".join(result.output.split())
    sub = pd.read_csv("new.csv", dtype=str)
    assert list(sub.iloc[:, 0]) == ["photo0", "photo1", "photo2", "photo3"]  # the images' order

    def refused(args, *expected):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        text = " ".join(result.output.split())
        assert all(part in text for part in expected), text
        assert not (workdir / "bad.csv").exists()

    partial = workdir / "partial"
    partial.mkdir()
    for path in sorted(digit_test_files.iterdir())[:3]:
        shutil.copy(path, partial / path.name)
    refused(["predict", "few_epochs", str(partial), "--submission", "bad.csv"],
            "3 of the 3 images have ids of the sample submission", "357 of its 360 ids have no image")
    shutil.copy(new / "photo0.png", partial / "photo0.png")
    refused(["predict", "few_epochs", str(partial), "--submission", "bad.csv"], "1 images are not in it")
    (workdir / "empty").mkdir()
    refused(["predict", "few_epochs", str(workdir / "empty"), "--submission", "bad.csv"], "no image files")
    (new / "again").mkdir()
    shutil.copy(new / "photo0.png", new / "again" / "photo0.png")
    refused(["predict", "few_epochs", str(new), "--submission", "bad.csv"], "both have the id 'photo0'")
    refused(["predict", "few_epochs", str(partial), "--submission", str(few_epochs_store / "x.csv")],
            "inside the prediction store")
