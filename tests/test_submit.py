import numpy as np
import pandas as pd
import pytest

from kit.errors import SubmissionError
from kit.submit import score_submission, submission_format, validate_submission, write_submission

CLASSES = ["cat", "dog", "fox"]


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample.csv"
    pd.DataFrame({"ImageId": ["3", "1", "2"], "Label": ["cat"] * 3}).to_csv(path, index=False)
    return path


def test_labels_follow_the_sample_order_and_spelling(tmp_path, sample):
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])  # ids 1, 2, 3
    out = write_submission(tmp_path / "sub.csv", submission_format(sample, CLASSES), np.array(["1", "2", "3"]),
                           probs, CLASSES)
    assert out.read_text() == "ImageId,Label\n3,fox\n1,cat\n2,dog\n"


def test_probability_submissions_get_one_column_per_class(tmp_path):
    sample = tmp_path / "sample.csv"
    pd.DataFrame({"id": ["a", "b"], "fox": 0.3, "cat": 0.3, "dog": 0.4}).to_csv(sample, index=False)
    out = write_submission(tmp_path / "sub.csv", submission_format(sample, CLASSES), np.array(["b", "a"]),
                           np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]]), CLASSES)
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["id", "fox", "cat", "dog"]
    assert frame.iloc[0].tolist() == ["a", 0.0, 1.0, 0.0]


def test_predictions_for_other_ids_are_refused(tmp_path, sample):
    with pytest.raises(SubmissionError, match="e.g. '3' has no prediction"):
        write_submission(tmp_path / "sub.csv", submission_format(sample, CLASSES), np.array(["1", "2", "4"]),
                         np.ones((3, 3)) / 3, CLASSES)
    assert not (tmp_path / "sub.csv").exists()


@pytest.mark.parametrize("text, message", [
    ("ImageId,Label\n3,fox\n2,cat\n1,dog\n", "line 3: id '2', expected '1'"),
    ("ImageId,Label\n3,fox\n1,cat\n", "2 rows, expected 3"),
    ("ImageId,Label\n3,fox\n1,Cat\n2,dog\n", "line 3: label 'Cat' is not a class"),
    ("ImageId,Label\n3,fox\n1,\n2,dog\n", "line 3, column 'Label': empty or NaN"),
    ("id,Label\n3,fox\n1,cat\n2,dog\n", "columns \\['id', 'Label'\\], expected \\['ImageId', 'Label'\\]"),
])
def test_validate_names_the_problem(tmp_path, sample, text, message):
    path = tmp_path / "sub.csv"
    path.write_text(text)
    with pytest.raises(SubmissionError, match=message):
        validate_submission(path, sample, CLASSES)


def test_score_against_solution(tmp_path):
    solution = tmp_path / "solution.csv"
    solution.write_text("id,label\n1,cat\n2,dog\n3,dog\n4,fox\n")
    sub = tmp_path / "sub.csv"
    sub.write_text("id,label\n4,fox\n3,dog\n2,cat\n1,cat\n")
    metrics = score_submission(sub, solution)
    assert metrics["accuracy"] == 0.75 and metrics["kind"] == "labels"
    sub.write_text("id,label\n4,fox\n3,dog\n9,cat\n1,cat\n")
    with pytest.raises(SubmissionError, match="1 missing \\(e.g. '2'\\), 1 unknown \\(e.g. '9'\\)"):
        score_submission(sub, solution)
