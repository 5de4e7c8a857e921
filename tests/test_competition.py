import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from kit.cli import app
from kit.competition import load_competition
from kit.competition.digits import digits_spec
from kit.competition.spec import PixelCsvSpec
from kit.errors import DataError

from .conftest import write_recipe


def test_digits_is_written_in_kaggle_layout(digits_root):
    train = pd.read_csv(digits_root / "train.csv")
    test = pd.read_csv(digits_root / "test.csv")
    sample = pd.read_csv(digits_root / "sample_submission.csv")
    solution = pd.read_csv(digits_root / "solution.csv")
    assert list(train.columns[:3]) == ["id", "label", "pixel0"] and train.shape == (1437, 66)
    assert "label" not in test.columns and test.shape == (360, 65)
    assert list(sample.columns) == ["id", "label"] and list(sample["id"]) == list(test["id"])
    assert list(solution["id"]) == list(test["id"])
    assert not set(train["id"]) & set(test["id"])
    # the split is stratified: every class has about a fifth of its images in the test set
    share = solution["label"].value_counts() / (solution["label"].value_counts() + train["label"].value_counts())
    assert share.between(0.17, 0.23).all()


def test_digits_loads_as_uint8_images(digits_root):
    data = load_competition(digits_spec(digits_root))
    assert data.train_images.shape == (1437, 8, 8, 1) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (360, 8, 8, 1)
    assert data.classes == [str(i) for i in range(10)]
    assert data.train_images.max() > 200  # 0..16 scaled to 0..255
    assert data.train_ids.dtype.kind == "U" and len(set(data.train_ids)) == 1437
    # a second load gives the same fingerprint; it tracks content
    assert load_competition(digits_spec(digits_root)).fingerprint == data.fingerprint


def _pixel_competition(tmp_path, train: pd.DataFrame, test: pd.DataFrame, sample: pd.DataFrame) -> PixelCsvSpec:
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    sample.to_csv(tmp_path / "sample_submission.csv", index=False)
    return PixelCsvSpec(name="tiny", root=tmp_path)


def _frames(n=6, side=2):
    pixels = {f"pixel{i}": np.arange(n) * 10 % 256 for i in range(side * side)}
    train = pd.DataFrame({"id": [f"a{i}" for i in range(n)], "label": ["cat", "dog"] * (n // 2), **pixels})
    test = pd.DataFrame({"id": ["t1", "t2"], **{k: v[:2] for k, v in pixels.items()}})
    sample = pd.DataFrame({"id": ["t2", "t1"], "label": ["cat", "cat"]})
    return train, test, sample


def test_string_labels_and_ids_come_through(tmp_path):
    data = load_competition(_pixel_competition(tmp_path, *_frames()))
    assert data.classes == ["cat", "dog"]
    assert list(data.train_labels) == [0, 1] * 3
    assert data.train_images.shape == (6, 2, 2, 1)
    assert list(data.test_ids) == ["t1", "t2"]


@pytest.mark.parametrize("damage, message", [
    (lambda tr, te, sa: (tr.drop(columns="label"), te, sa), r"train.csv: no column 'label' \(set by label_column\)"),
    (lambda tr, te, sa: (tr.assign(id=["a0", "a0", "a2", "a3", "a4", "a5"]), te, sa), r"train.csv: duplicate id 'a0' \(lines 2 and 3\)"),
    (lambda tr, te, sa: (tr.assign(pixel1=[1, 2, 300, 4, 5, 6]), te, sa), r"train.csv: line 4, column 'pixel1': pixel value"),
    (lambda tr, te, sa: (tr.drop(columns="pixel3"), te, sa), r"3 pixel columns is not a square image"),
    (lambda tr, te, sa: (tr, te, sa.assign(id=["t2", "t9"])), r"sample_submission.csv: 1 test ids missing from it \(e.g. 't1'\)"),
])
def test_bad_pixel_csv_is_named(tmp_path, damage, message):
    spec = _pixel_competition(tmp_path, *damage(*_frames()))
    with pytest.raises(DataError, match=message):
        load_competition(spec)


def test_missing_file_is_named(tmp_path):
    spec = _pixel_competition(tmp_path, *_frames())
    (tmp_path / "test.csv").unlink()
    with pytest.raises(DataError, match=r"test.csv: no such file \(the competition's 'test' file\)"):
        load_competition(spec)


def _digit_recognizer(root, n=24, n_test=4, side=28):
    """Kaggle's Digit Recognizer as shipped: train.csv label,pixel0..pixel783 and test.csv pixels only (no id
    column in either: kit numbers the rows), sample_submission.csv ImageId,Label."""
    rng = np.random.default_rng(0)
    columns = [f"pixel{i}" for i in range(side * side)]
    root.mkdir()
    train = pd.DataFrame(rng.integers(0, 256, (n, side * side)), columns=columns)
    train.insert(0, "label", np.arange(n) % 3)
    train.to_csv(root / "train.csv", index=False)
    pd.DataFrame(rng.integers(0, 256, (n_test, side * side)), columns=columns).to_csv(root / "test.csv", index=False)
    pd.DataFrame({"ImageId": range(1, n_test + 1), "Label": 0}).to_csv(root / "sample_submission.csv", index=False)


def test_numbered_train_ids_survive_training_two_recipes_rerunning_and_blending(workdir):
    """Ids kit numbers itself (no id column) hash as their CSV copy in the folds file does: the second
    recipe of one `kit train` call, a rerun and a blend all accept the folds the first recipe made."""
    _digit_recognizer(workdir / "dr")
    (workdir / "comp.yaml").write_text(yaml.safe_dump({"name": "dr", "layout": "pixel_csv", "root": "dr"}))
    recipes = [write_recipe(workdir, name, competition="comp.yaml", train__batch_size=8) for name in ("a", "b")]
    runner = CliRunner()
    result = runner.invoke(app, ["train", *map(str, recipes)])
    assert result.exit_code == 0, result.output
    assert result.output.count("2 folds trained, 0 skipped") == 2
    result = runner.invoke(app, ["train", *map(str, recipes)])
    assert result.exit_code == 0, result.output
    assert result.output.count("0 folds trained, 2 skipped") == 2
    result = runner.invoke(app, ["blend", "--out", "sub.csv"])
    assert result.exit_code == 0, result.output
    sub = pd.read_csv(workdir / "sub.csv", dtype=str)
    assert list(sub.columns) == ["ImageId", "Label"] and list(sub["ImageId"]) == ["1", "2", "3", "4"]
