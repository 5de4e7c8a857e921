"""Every layout read from a tiny competition in a temporary folder: ids, labels, channels and sizes
come through; bad inputs are one-line errors naming the file and the row or id."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from kit.cli import app
from kit.competition import load_competition, resolve_competition
from kit.competition.spec import ClassFoldersSpec, LabelsCsvSpec, NpzSpec
from kit.errors import DataError, RecipeError
from kit.recipe import recipe_from_dict
from kit.submit import submission_format, validate_submission, write_submission

from . import competitions


@pytest.fixture(autouse=True)
def _cache_beside_the_data(monkeypatch):
    monkeypatch.delenv("KIT_CACHE", raising=False)


def test_labels_csv_reads_kaggle_cifar_layout(tmp_path):
    made = competitions.labels_csv(tmp_path)
    data = load_competition(LabelsCsvSpec(name="tiny", root=tmp_path))
    assert list(data.train_ids) == made["train_ids"]
    assert data.classes == ["cat", "dog"] and list(data.train_labels) == [0, 1] * 4
    assert data.train_images.shape == (8, 8, 8, 3) and data.train_images.dtype == np.uint8
    np.testing.assert_array_equal(data.train_images, made["train"])
    # test ids come from the sample submission, in its order
    assert list(data.test_ids) == made["test_ids"][::-1]
    np.testing.assert_array_equal(data.test_images, made["test"][::-1])
    assert data.sample_submission == tmp_path / "sampleSubmission.csv"


def test_grayscale_jpegs_with_integer_labels_spelled_as_given(tmp_path):
    competitions.labels_csv(tmp_path, labels=["10", "07", "2", "10", "07", "2"], channels=1, ext=".jpg")
    data = load_competition(LabelsCsvSpec(name="tiny", root=tmp_path))
    assert data.classes == ["2", "07", "10"]  # numeric order, spelling kept
    assert data.train_images.shape == (6, 8, 8, 1)
    assert data.channels == 1


@pytest.mark.parametrize("odd", ["im0", "im1", "im39", "100"])  # first, unsampled, last training image; a test image
@pytest.mark.parametrize("most", [1, 3])
def test_one_image_of_the_other_kind_is_refused_wherever_it_comes(tmp_path, most, odd):
    # the channels must not depend on the files' order: one colour image among grayscale ones (or the
    # reverse) is refused the same way whether it is sampled first or found last, naming one of each kind
    competitions.labels_csv(tmp_path, labels=("cat", "dog") * 20, channels=most)
    folder = "test" if odd == "100" else "train"
    competitions.save(tmp_path / folder / f"{odd}.png", competitions.images(1, channels=4 - most)[0])
    kinds = ("colour", "grayscale") if most == 1 else ("grayscale", "colour")
    with pytest.raises(DataError, match=rf"a {kinds[0]} image \((RGB|L)\) among {kinds[1]} ones such as "
                                        rf".*; set channels: 3 in the competition .* or channels: 1") as caught:
        load_competition(LabelsCsvSpec(name="tiny", root=tmp_path))
    assert f"{folder}/{odd}.png" in str(caught.value)
    # with channels set, every image is converted to it
    assert load_competition(LabelsCsvSpec(name="tiny", root=tmp_path, channels=1)).train_images.shape[-1] == 1
    assert load_competition(LabelsCsvSpec(name="tiny", root=tmp_path, channels=3)).train_images.shape[-1] == 3


def test_ids_that_carry_their_extension_and_explicit_patterns(tmp_path):
    made = competitions.labels_csv(tmp_path)
    frame = pd.read_csv(tmp_path / "trainLabels.csv")
    frame.assign(id=frame["id"] + ".png").rename(columns={"id": "file", "label": "kind"}).to_csv(
        tmp_path / "labels.csv", index=False)
    spec = LabelsCsvSpec(name="tiny", root=tmp_path, train_labels="labels.csv", id_column="file", label_column="kind",
                         test_images="test/{id}.png", channels=3)
    data = load_competition(spec)
    assert data.train_ids[0] == "im0.png"
    np.testing.assert_array_equal(data.train_images, made["train"])


def test_class_folders_with_a_flat_test_folder_and_no_sample_submission(tmp_path):
    made = competitions.class_folders(tmp_path)
    data = load_competition(ClassFoldersSpec(name="tiny", root=tmp_path, sample_submission=None))
    assert data.classes == ["n01", "n02", "n03"]
    assert list(data.train_ids) == [w[0] for w in made["written"]]  # n03/images/img0 for the nested class
    assert [data.classes[i] for i in data.train_labels] == [w[1] for w in made["written"]]
    np.testing.assert_array_equal(data.train_images, made["train"])
    assert list(data.test_ids) == ["t0", "t1", "t2", "t3"]
    # kit writes the sample submission the competition did not ship
    sample = pd.read_csv(data.sample_submission, dtype=str)
    assert list(sample.columns) == ["id", "label"] and list(sample["id"]) == ["t0", "t1", "t2", "t3"]


def test_npz_arrays_channels_first_floats_and_text_labels(tmp_path):
    made = competitions.npz(tmp_path)
    data = load_competition(NpzSpec(name="tiny", root=tmp_path))
    np.testing.assert_array_equal(data.train_images, made["train"])  # NCHW floats in [0, 1] back to NHWC uint8
    assert data.classes == ["ant", "bee"] and list(data.train_ids[:2]) == ["r0", "r1"]
    assert list(data.test_ids) == ["0", "1"]  # no ids in test.npz: row numbers


def test_mixed_sizes_need_an_image_size_and_are_resized_to_it(tmp_path):
    competitions.labels_csv(tmp_path)
    competitions.save(tmp_path / "train" / "im3.png", competitions.images(1, 12)[0])
    with pytest.raises(DataError, match=r"im3.png: 12x12 pixels .* need an image_size"):
        load_competition(LabelsCsvSpec(name="tiny", root=tmp_path))
    data = load_competition(LabelsCsvSpec(name="tiny", root=tmp_path, image_size=6))
    assert data.train_images.shape == (8, 6, 6, 3) and data.test_images.shape == (3, 6, 6, 3)
    # a recipe's image_size serves when the competition sets none
    assert load_competition(LabelsCsvSpec(name="tiny", root=tmp_path), image_size=10).train_images.shape[1:3] == (10, 10)


def test_same_size_images_keep_their_size_whatever_the_recipe_asks(tmp_path):
    # a 224-px recipe on 8-px images upsamples at batch time; the cache keeps 8 px (49x fewer pixels)
    competitions.labels_csv(tmp_path)
    data = load_competition(LabelsCsvSpec(name="tiny", root=tmp_path), image_size=224)
    assert data.train_images.shape[1:3] == (8, 8) and data.cache_folder.name == "native-auto"


def test_subset_is_stratified_and_changes_the_fingerprint(tmp_path):
    competitions.labels_csv(tmp_path, labels=("cat", "dog") * 10)
    full = load_competition(LabelsCsvSpec(name="tiny", root=tmp_path))
    part = load_competition(LabelsCsvSpec(name="tiny-8", root=tmp_path, train_subset=8))
    assert len(part.train_ids) == 8 and np.bincount(part.train_labels).tolist() == [4, 4]
    rows = [list(full.train_ids).index(i) for i in part.train_ids]
    assert rows == sorted(rows)  # the competition's order is kept
    np.testing.assert_array_equal(part.train_images, full.train_images[rows])
    assert len(part.test_ids) == len(full.test_ids) and part.fingerprint != full.fingerprint


def test_a_string_label_submission_round_trips_to_the_sample_format(tmp_path):
    competitions.labels_csv(tmp_path, labels=("cat", "dog", "fox") * 2)
    data = load_competition(LabelsCsvSpec(name="tiny", root=tmp_path))
    probs = np.eye(3)[[2, 0, 1]]  # rows in data.test_ids order
    fmt = submission_format(data.sample_submission, data.classes)
    out = write_submission(tmp_path / "sub.csv", fmt, data.test_ids, probs, data.classes)
    validate_submission(out, data.sample_submission, data.classes)
    sub, sample = pd.read_csv(out, dtype=str), pd.read_csv(data.sample_submission, dtype=str)
    assert list(sub.columns) == list(sample.columns) and list(sub["id"]) == list(sample["id"])
    assert dict(zip(sub["id"], sub["label"])) == dict(zip(data.test_ids, ["fox", "cat", "dog"]))


def test_inline_competition_in_a_recipe_resolves_to_its_layout(tmp_path):
    recipe = recipe_from_dict({"competition": {"name": "tiny", "layout": "labels_csv", "root": str(tmp_path),
                                               "image_size": 16},
                               "model": {"arch": "vgg_small"}, "train": {"epochs": 1}}, default_name="r")
    assert isinstance(recipe.competition_spec, LabelsCsvSpec)
    dumped = recipe.resolved()["competition"]
    assert dumped["train_labels"] == "trainLabels.csv" and dumped["image_size"] == 16  # in recipe.yaml and the hash


@pytest.mark.parametrize("entry, message", [
    ({"name": "x", "root": "."}, r"layout: required, but missing \(one of pixel_csv, labels_csv"),
    ({"name": "x", "root": ".", "layout": "label_csv"}, r"layout: 'label_csv' is not one of .*did you mean 'labels_csv'"),
    ({"name": "x", "root": ".", "layout": "labels_csv", "train_csv": "a.csv"},
     r"train_csv: unknown key; allowed keys here: .*train_labels"),
    ({"name": "x", "root": ".", "layout": "labels_csv", "train_images": "train/"}, r"train_images: .*'\{id\}' once"),
    # array layouts keep their arrays as stored: the decode settings of image files are refused, saying why
    ({"name": "x", "root": ".", "layout": "npz", "image_size": 32},
     r"image_size: a npz competition's images are used at the size they are stored at; only labels_csv and "
     r"class_folders decode image files and take image_size \(a recipe's image_size resizes"),
    ({"name": "x", "root": ".", "layout": "pixel_csv", "channels": 3},
     r"channels: a pixel_csv competition's images are used with the channels they are stored with; only"),
    ({"name": "x", "root": ".", "layout": "pixel_csv", "id_colum": "ImageId"},
     r"id_colum: unknown key; allowed keys here: .*, test \(did you mean 'id_column'\?\)$"),
    # a key of the user's that starts with a capital is named (only schema class names are left out)
    ({"name": "x", "root": ".", "layout": "npz", "Train": "a"}, r"recipes/r.yaml: competition\.Train: unknown key"),
])
def test_bad_competition_specs_are_named(entry, message):
    with pytest.raises(RecipeError, match=message):
        resolve_competition(entry, "recipes/r.yaml")


def _damage_missing_image(root):
    (root / "train" / "im5.png").unlink()


def _damage_corrupt_image(root):
    (root / "train" / "im2.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")


def _damage_truncated_image(root):
    path = root / "test" / "101.png"
    path.write_bytes(path.read_bytes()[:40])


def _damage_unknown_sample_label(root):
    (root / "sampleSubmission.csv").write_text("id,label\n102,cat\n101,wolf\n100,cat\n")


def _damage_duplicate_id(root):
    (root / "trainLabels.csv").write_text("id,label\nim0,cat\nim1,dog\nim0,dog\n")


def _damage_empty_test_folder(root):
    for path in (root / "test").iterdir():
        path.unlink()


def _damage_missing_column(root):
    (root / "trainLabels.csv").write_text("id,class\nim0,cat\nim1,dog\n")


def _damage_unlisted_test_image(root):
    competitions.save(root / "test" / "999.png", competitions.images(1)[0])


def _damage_empty_label(root):
    (root / "trainLabels.csv").write_text("id,label\nim0,cat\nim1,\n")


@pytest.mark.parametrize("damage, message", [
    (_damage_missing_image, r"trainLabels.csv: line 7: id 'im5' has no image file \(expected .*train/im5.<png"),
    (_damage_corrupt_image, r"train/im2.png: not a readable image"),
    (_damage_truncated_image, r"test/101.png: not a readable image"),
    (_damage_unknown_sample_label, r"sampleSubmission.csv: line 3: label 'wolf' never occurs in training"),
    (_damage_duplicate_id, r"trainLabels.csv: duplicate id 'im0' \(lines 2 and 4\)"),
    (_damage_empty_test_folder, r"test: empty folder, no image files"),
    (_damage_missing_column, r"trainLabels.csv: no column 'label' \(set by label_column\); columns are: id, class"),
    (_damage_unlisted_test_image, r"test/999.png: a test image that sampleSubmission.csv does not list"),
    (_damage_empty_label, r"trainLabels.csv: line 3: empty 'label'"),
])
def test_bad_inputs_are_one_line_errors_naming_file_and_row(tmp_path, damage, message):
    competitions.labels_csv(tmp_path)
    damage(tmp_path)
    with pytest.raises(DataError, match=message) as caught:
        load_competition(LabelsCsvSpec(name="tiny", root=tmp_path))
    assert "\n" not in str(caught.value)


def test_empty_class_folder_and_stray_image_are_named(tmp_path):
    competitions.class_folders(tmp_path)
    (tmp_path / "train" / "n04").mkdir()
    with pytest.raises(DataError, match=r"train/n04: empty class folder"):
        load_competition(ClassFoldersSpec(name="tiny", root=tmp_path, sample_submission=None))
    (tmp_path / "train" / "n04").rmdir()
    competitions.save(tmp_path / "train" / "loose.png", competitions.images(1)[0])
    with pytest.raises(DataError, match=r"train/loose.png: an image outside any class folder"):
        load_competition(ClassFoldersSpec(name="tiny", root=tmp_path, sample_submission=None))


def test_npz_without_the_named_array_is_named(tmp_path):
    competitions.npz(tmp_path)
    with pytest.raises(DataError, match=r"train.npz: no array 'y' \(set by labels_key\); arrays are: images, labels, ids"):
        load_competition(NpzSpec(name="tiny", root=tmp_path, labels_key="y"))


def test_duplicate_ids_in_an_archive_or_a_folder_are_named(tmp_path):
    competitions.npz(tmp_path / "npz")
    np.savez(tmp_path / "npz" / "train.npz", images=competitions.images(6), labels=np.array(["a", "b"] * 3),
             ids=np.array(["x", "y", "z", "y", "q", "x"]))
    with pytest.raises(DataError, match=r"train.npz: duplicate id 'x' in 'ids' \(rows 0, 5\)"):
        load_competition(NpzSpec(name="tiny", root=tmp_path / "npz"))
    root = tmp_path / "folders"
    competitions.class_folders(root)
    competitions.save(root / "test" / "t1.jpg", competitions.images(1)[0])
    with pytest.raises(DataError, match=r"test: two images share the id 't1' \(t1.jpg and t1.png\)"):
        load_competition(ClassFoldersSpec(name="tiny", root=root, sample_submission=None))
    (root / "test" / "t1.jpg").unlink()
    competitions.save(root / "train" / "n02" / "img1.jpg", competitions.images(1)[0])
    with pytest.raises(DataError, match=r"train: two images share the id 'n02/img1' \(same name, different ext"):
        load_competition(ClassFoldersSpec(name="tiny", root=root, sample_submission=None))


def test_an_array_layout_reads_its_sample_submission_like_a_file_layout(tmp_path):
    competitions.npz(tmp_path)
    (tmp_path / "sample_submission.csv").write_text("id\n0\n1\n")
    with pytest.raises(DataError, match=r"sample_submission.csv: expected an id column and at least one answer "
                                        r"column, found \['id'\]"):
        load_competition(NpzSpec(name="tiny", root=tmp_path))
    (tmp_path / "sample_submission.csv").write_text("id,label\n")
    with pytest.raises(DataError, match=r"sample_submission.csv: no rows; the sample submission must list every"):
        load_competition(NpzSpec(name="tiny", root=tmp_path))


def test_prepare_cli_summarises_and_fails_cleanly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    competitions.labels_csv(tmp_path / "comp")
    (tmp_path / "comp.yaml").write_text(yaml.safe_dump({"name": "tiny", "layout": "labels_csv", "root": "comp"}))
    runner = CliRunner()
    result = runner.invoke(app, ["prepare", "comp.yaml"])
    assert result.exit_code == 0, result.output
    assert "decoded now" in result.output and "cat, dog" in result.output
    assert "already decoded" in runner.invoke(app, ["prepare", "comp.yaml"]).output
    (tmp_path / "comp" / "train" / "im1.png").unlink()
    result = runner.invoke(app, ["prepare", "comp.yaml"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "line 3: id 'im1' has no image file" in result.output


def test_train_and_blend_on_an_image_folder_competition(tmp_path, monkeypatch):
    """kit train reads the memory-mapped cache; the blended submission follows sampleSubmission.csv."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KIT_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("KIT_SUBMISSIONS", str(tmp_path / "submissions"))
    competitions.labels_csv(tmp_path / "comp", labels=("cat", "dog", "fox") * 4, n_test=5)
    recipe = {"competition": {"name": "tiny", "layout": "labels_csv", "root": "comp"},
              "model": {"arch": "vgg_small", "params": {"widths": [4], "convs_per_stage": 1}},
              "cv": {"folds": 2, "seed": 0}, "train": {"epochs": 1, "batch_size": 4}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    runner = CliRunner()
    result = runner.invoke(app, ["train", "r.yaml"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["blend", "--out", "sub.csv"])
    assert result.exit_code == 0, result.output
    sub = pd.read_csv(tmp_path / "sub.csv", dtype=str)
    assert list(sub["id"]) == list(pd.read_csv(tmp_path / "comp" / "sampleSubmission.csv", dtype=str)["id"])
    assert set(sub["label"]) <= {"cat", "dog", "fox"}


def test_prepare_names_a_competition_file_that_is_not_utf8(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    competitions.labels_csv(tmp_path / "comp")
    Path("comp.yaml").write_bytes("# the café's images\nname: tiny\nlayout: labels_csv\nroot: comp\n".encode("latin-1"))
    result = CliRunner().invoke(app, ["prepare", "comp.yaml"])
    assert result.exit_code == 2 and not isinstance(result.exception, UnicodeDecodeError), result.output
    assert result.output.strip() == ("error: comp.yaml: not valid YAML ('utf-8' codec can't decode byte 0xe9 in "
                                     "position 9: invalid continuation byte)")


def test_one_archive_holds_both_splits_under_their_own_keys(tmp_path, monkeypatch):
    """Keras-era datasets ship x_train, y_train, x_test in one .npz: each split names its own arrays."""
    monkeypatch.chdir(tmp_path)
    train, test = competitions.images(6, channels=1, seed=7), competitions.images(3, channels=1, seed=8)
    Path("data").mkdir()
    np.savez("data/mnist.npz", x_train=train[..., 0], y_train=np.array([3, 5] * 3), x_test=test[..., 0])
    competition = {"name": "mnist", "layout": "npz", "root": "data", "train": "mnist.npz", "test": "mnist.npz",
                   "train_images_key": "x_train", "labels_key": "y_train", "test_images_key": "x_test",
                   "sample_submission": None}
    Path("comp.yaml").write_text(yaml.safe_dump(competition))
    result = CliRunner().invoke(app, ["prepare", "comp.yaml"])
    assert result.exit_code == 0, result.output
    assert re.search(r"train\W+6\W+2\W+8x8\W+1\W", result.output), result.output  # images, classes, size, channels
    assert re.search(r"test\W+3\W+8x8\W+1\W", result.output), result.output
    data = load_competition(resolve_competition("comp.yaml"))
    np.testing.assert_array_equal(data.train_images, train)
    np.testing.assert_array_equal(data.test_images, test)
    assert list(data.test_ids) == ["0", "1", "2"] and data.classes == ["3", "5"]
    # an ids key the user names must be there (unset, the ids are the row numbers)
    Path("comp.yaml").write_text(yaml.safe_dump({**competition, "test_ids_key": "id_test"}))
    result = CliRunner().invoke(app, ["prepare", "comp.yaml"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == ("error: data/mnist.npz: no array 'id_test' (set by test_ids_key); arrays are: "
                                     "x_train, y_train, x_test")
