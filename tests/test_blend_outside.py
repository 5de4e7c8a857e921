"""`kit blend --submission FILE`: outside submissions (a public notebook's output) blended with kit's
members on digits, and every malformed one refused with one line, exit 2 and nothing written."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kit.cli import app

runner = CliRunner()
CLASSES = [str(c) for c in range(10)]


@pytest.fixture
def outside(trained_store, workdir):
    """A probability CSV (rows shuffled, class columns reversed) and a label CSV for digits' test ids,
    written beside the store. The probabilities favour the true-looking class of tiny_vgg's test
    predictions a little; the labels are random: only their format matters here."""
    ids = pd.read_csv(trained_store / "digits" / "sample_submission.csv", dtype=str)["id"]
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), len(ids))
    frame = pd.DataFrame(probs, columns=CLASSES).round(6)
    frame = frame.div(frame.sum(axis=1), axis=0)
    frame.insert(0, "id", ids)
    frame = frame[["id"] + CLASSES[::-1]].sample(frac=1, random_state=0)  # any row and column order is read
    frame.to_csv(workdir / "public_probs.csv", index=False)
    pd.DataFrame({"id": ids, "label": rng.choice(CLASSES, len(ids))}).to_csv(workdir / "public_labels.csv", index=False)
    return workdir / "public_probs.csv", workdir / "public_labels.csv"


def invoke(*args):
    return runner.invoke(app, ["blend", *map(str, args)])


def test_outside_probabilities_and_labels_blend_with_a_kit_member_and_are_marked_not_cross_validated(outside, workdir):
    probs_csv, labels_csv = outside
    result = invoke("-m", "tiny_vgg", "--method", "soft", "--submission", probs_csv, "--submission", labels_csv,
                    "--out", "mixed.csv")
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "blend scores are not cross-validated: the submission also blends outside submissions" in output
    unwrapped = "".join(result.output.split())  # the console wraps long paths anywhere, spaces aside
    assert "public_probs.csv(probabilities)" in unwrapped and "public_labels.csv(labels)" in unwrapped
    assert "│ blend:soft │ not CV │" in output
    report = json.loads((workdir / "mixed.report" / "report.json").read_text())
    assert report["cross_validated"] is False
    assert {n: v["kind"] for n, v in report["outside"].items()} == {"public_probs.csv": "probabilities",
                                                                 "public_labels.csv": "labels"}
    assert report["fitted"]["weights"] == {"tiny_vgg": pytest.approx(1 / 3), "public_probs.csv": pytest.approx(1 / 3),
                                           "public_labels.csv": pytest.approx(1 / 3)}
    summary = (workdir / "mixed.report" / "summary.md").read_text()
    assert "**Not cross-validated:**" in summary and "public_labels.csv" in summary
    # the score is tiny_vgg's alone: a soft vote of one member is that member
    assert report["blend"]["accuracy"] == pytest.approx(report["members"]["tiny_vgg"]["accuracy"])
    # the submission is the mean of the three, in the sample submission's order
    sub = pd.read_csv(workdir / "mixed.csv", dtype=str)
    sample = pd.read_csv(workdir / "store" / "digits" / "sample_submission.csv", dtype=str)
    assert sub["id"].tolist() == sample["id"].tolist() and list(sub.columns) == ["id", "label"]
    from kit.store import Store

    member = Store(workdir / "store").load_member("digits", "tiny_vgg")
    row = {i: k for k, i in enumerate(member.test_ids)}
    kit_part = member.test[[row[i] for i in sample["id"]]]
    public = pd.read_csv(probs_csv, dtype={"id": str}).set_index("id").loc[sample["id"], CLASSES].to_numpy()
    labels = pd.read_csv(labels_csv, dtype=str).set_index("id").loc[sample["id"], "label"].astype(int).to_numpy()
    expected = (kit_part + public + np.eye(10)[labels]) / 3
    assert (sub["label"].astype(int).to_numpy() == expected.argmax(1)).mean() > 0.99  # 6-decimal rounding aside


def test_weights_name_outside_submissions_by_file_name(outside, workdir):
    probs_csv, _ = outside
    result = invoke("-m", "tiny_vgg", "--submission", probs_csv, "--weights", "tiny_vgg=0.75,public_probs.csv=0.25",
                    "--out", "w.csv")
    assert result.exit_code == 0, result.output
    report = json.loads((workdir / "w.report" / "report.json").read_text())
    assert report["fitted"]["weights"] == {"tiny_vgg": 0.75, "public_probs.csv": 0.25}
    only_outside = invoke("-m", "tiny_vgg", "--submission", probs_csv, "--weights", "public_probs.csv=1",
                          "--out", "z.csv")
    assert only_outside.exit_code == 2 and "the kit members' weights are all 0" in only_outside.output
    assert not (workdir / "z.csv").exists()


def _edit(path, target, change):
    frame = pd.read_csv(path, dtype=str)
    change(frame).to_csv(target, index=False)
    return target


def _set(frame, row, column, value):
    frame.loc[row, column] = value
    return frame


BAD = {  # name -> (which file, the change, what the error says)
    "other_id": (0, lambda f: _set(f, 3, "id", "nope"), "column 'id': id 'nope' is not in the sample submission"),
    "missing_id": (0, lambda f: f.drop(index=5), "column 'id': 1 of the sample submission's ids missing (e.g."),
    "duplicate_id": (1, lambda f: pd.concat([f, f.iloc[[0]]]), "appears twice"),
    "unknown_class": (1, lambda f: _set(f, 2, "label", "cat"), "column 'label': 'cat' is not a class of the competition"),
    "missing_class_column": (0, lambda f: f.drop(columns="7"), "expected one label column or one column per class"),
    "extra_column": (0, lambda f: f.assign(extra="0"), "unknown: extra"),
    "wrong_id_column": (1, lambda f: f.rename(columns={"id": "ImageId"}), "first column 'ImageId', expected the id column 'id'"),
    "not_summing_to_one": (0, lambda f: _set(f, 4, "3", "0.9"), "the probabilities sum to"),
    "negative": (0, lambda f: _set(f, 1, "0", "-0.1"), "column '0': '-0.1'; expected a probability from 0 to 1"),
    "not_a_number": (0, lambda f: _set(f, 1, "5", "abc"), "column '5': 'abc'; expected a probability from 0 to 1"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_malformed_outside_submission_is_one_line_exit_2_and_nothing_written(outside, workdir, case):
    which, change, fragment = BAD[case]
    bad = _edit(outside[which], workdir / f"{case}.csv", change)
    result = invoke("-m", "tiny_vgg", "--submission", bad, "--out", "bad.csv")
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert f"{case}.csv" in output and fragment in output, output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (workdir / "bad.csv").exists() and not (workdir / "bad.report").exists()
    assert not (workdir / "submissions").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--method", "caruana"], "blender 'caruana', which learns from them, cannot use it"),
    (["--method", "soft,hill"], "blender 'hill', which learns from them, cannot use it"),
    (["--method", "all", "--pick", "lgbm"], "blender 'lgbm', which learns from them"),
])
def test_a_learning_blender_with_an_outside_submission_is_refused(outside, workdir, args, fragment):
    result = invoke("--submission", outside[0], *args, "--out", "bad.csv")
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert f"--submission {outside[0]}: an outside submission has no out-of-fold predictions" in output
    assert fragment in output and len(result.output.strip().splitlines()) == 1
    assert not (workdir / "bad.csv").exists()


def test_method_all_with_an_outside_submission_keeps_the_untrained_blenders(outside, workdir):
    result = invoke("--submission", outside[1], "--method", "all", "--out", "all.csv")
    assert result.exit_code == 0, result.output
    report = json.loads((workdir / "all.report" / "report.json").read_text())
    assert set(report["blenders"]) == {"soft", "hard", "geomean", "rank"} and not any(report["nested_cv"].values())


def test_the_blend_does_not_overwrite_its_own_outside_submission(outside, workdir):
    before = outside[0].read_bytes()
    result = invoke("-m", "tiny_vgg", "--submission", outside[0], "--out", outside[0])
    assert result.exit_code == 2 and "is the outside submission" in result.output, result.output
    assert outside[0].read_bytes() == before
