"""Submissions in the competition's own format, checked against its sample submission.

The sample submission decides everything: the id column (its first), the row order, and the
kind of answer. One more column (`label`, `Label`, `Category`...) means one predicted label per
row, written exactly as the competition spells its classes; one column per class means
probabilities (log-loss competitions).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import fileio
from .errors import SubmissionError, reason


@dataclass(frozen=True)
class SubmissionFormat:
    id_column: str
    columns: list[str]
    ids: np.ndarray  # str, in the order the competition wants
    probabilities: bool  # one column per class, else one label column


def read_table(path: Path, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: no such {what} file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{path}: not a readable CSV ({reason(exc, limit=None)})") from None
    if frame.shape[1] < 2:
        raise SubmissionError(f"{path}: expected an id column and at least one answer column, "
                              f"found {list(frame.columns)}")
    return frame


def submission_format(sample_path: Path, classes: list[str]) -> SubmissionFormat:
    sample = read_table(sample_path, "sample submission")
    id_column, answer = sample.columns[0], list(sample.columns[1:])
    probabilities = len(answer) > 1
    if probabilities and set(answer) != set(classes):
        raise SubmissionError(f"{sample_path}: its columns {answer} are neither one label column "
                              f"nor one column per class ({', '.join(classes)})")
    return SubmissionFormat(id_column, list(sample.columns), sample[id_column].to_numpy(dtype=str), probabilities)


def make_submission(fmt: SubmissionFormat, test_ids: np.ndarray, probs: np.ndarray, classes: list[str]) -> pd.DataFrame:
    row_of = {id_: i for i, id_ in enumerate(np.asarray(test_ids, dtype=str))}
    missing = [i for i in fmt.ids if i not in row_of]
    if missing or len(row_of) != len(fmt.ids):
        raise SubmissionError(f"the predictions cover {len(row_of)} test ids but the sample submission lists "
                              f"{len(fmt.ids)}" + (f" (e.g. '{missing[0]}' has no prediction)" if missing else ""))
    p = probs[[row_of[i] for i in fmt.ids]]
    frame = pd.DataFrame({fmt.id_column: fmt.ids})
    if fmt.probabilities:
        for j, c in enumerate(classes):
            frame[c] = p[:, j]
        return frame[fmt.columns]
    frame[fmt.columns[1]] = np.asarray(classes, dtype=object)[p.argmax(1)]
    return frame


def write_submission(path: Path, fmt: SubmissionFormat, test_ids, probs, classes) -> Path:
    frame = make_submission(fmt, test_ids, probs, classes)
    validate_frame(frame, fmt, classes, str(path))
    fileio.write_text(path, frame.to_csv(index=False, float_format="%.6f"))
    return Path(path)


def validate_frame(frame: pd.DataFrame, fmt: SubmissionFormat, classes: list[str], source: str) -> None:
    """Columns, ids and their order, label spelling, NaNs: what Kaggle would reject."""
    if list(frame.columns) != fmt.columns:
        raise SubmissionError(f"{source}: columns {list(frame.columns)}, expected {fmt.columns} as in the sample submission")
    ids = frame[fmt.id_column].astype(str).to_numpy()
    if len(ids) != len(fmt.ids):
        raise SubmissionError(f"{source}: {len(ids)} rows, expected {len(fmt.ids)} as in the sample submission")
    if not np.array_equal(ids, fmt.ids):
        row = int(np.flatnonzero(ids != fmt.ids)[0])
        raise SubmissionError(f"{source}: line {row + 2}: id '{ids[row]}', expected '{fmt.ids[row]}' "
                              f"(ids and their order must follow the sample submission)")
    answers = frame[fmt.columns[1:]]
    empty = answers.isna() | (answers.astype(str).apply(lambda c: c.str.strip()) == "")
    if empty.to_numpy().any():
        row, col = np.argwhere(empty.to_numpy())[0]
        raise SubmissionError(f"{source}: line {row + 2}, column '{answers.columns[col]}': empty or NaN")
    if fmt.probabilities:
        values = answers.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 0) | (values > 1)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise SubmissionError(f"{source}: line {row + 2}, column '{answers.columns[col]}': "
                                  f"{answers.iat[row, col]!r} is not a probability from 0 to 1")
    else:
        labels = answers.iloc[:, 0].astype(str).to_numpy()
        unknown = ~np.isin(labels, np.asarray(classes, dtype=str))
        if unknown.any():
            row = int(np.flatnonzero(unknown)[0])
            raise SubmissionError(f"{source}: line {row + 2}: label '{labels[row]}' is not a class of the competition "
                                  f"({', '.join(classes[:12])}{', ...' if len(classes) > 12 else ''})")


def validate_submission(path: Path, sample_path: Path, classes: list[str]) -> SubmissionFormat:
    fmt = submission_format(sample_path, classes)
    validate_frame(read_table(path, "submission"), fmt, classes, str(path))
    return fmt


def score_submission(path: Path, solution_path: Path) -> dict:
    """Score a submission the way the leaderboard would: accuracy and per-class metrics
    (label submissions), or log loss (probability submissions)."""
    from .competition.data import sort_classes
    from .report import classification_metrics

    solution = read_table(solution_path, "solution")
    sub = read_table(path, "submission")
    id_column = solution.columns[0]
    if sub.columns[0] != id_column:
        raise SubmissionError(f"{path}: first column '{sub.columns[0]}', expected the id column '{id_column}'")
    truth = solution.set_index(id_column).iloc[:, 0]
    classes = sort_classes(truth)
    index = {c: i for i, c in enumerate(classes)}
    if sub[id_column].duplicated().any():
        raise SubmissionError(f"{path}: duplicate id '{sub[id_column][sub[id_column].duplicated()].iloc[0]}'")
    missing = truth.index.difference(pd.Index(sub[id_column]))
    extra = pd.Index(sub[id_column]).difference(truth.index)
    if len(missing) or len(extra):
        raise SubmissionError(f"{path}: ids do not match {solution_path}: {len(missing)} missing"
                              + (f" (e.g. '{missing[0]}')" if len(missing) else "")
                              + f", {len(extra)} unknown" + (f" (e.g. '{extra[0]}')" if len(extra) else ""))
    sub = sub.set_index(id_column).loc[truth.index]
    y = truth.map(index).to_numpy()
    if sub.shape[1] == 1:
        labels = sub.iloc[:, 0]
        unknown = ~labels.isin(classes)
        if unknown.any():
            raise SubmissionError(f"{path}: id '{labels.index[unknown.argmax()]}': label '{labels[unknown].iloc[0]}' "
                                  f"is not one of the solution's classes ({', '.join(classes[:12])})")
        probs = np.eye(len(classes))[labels.map(index).to_numpy()]
    else:
        if set(sub.columns) != set(classes):
            raise SubmissionError(f"{path}: probability columns {list(sub.columns)} do not match the classes "
                                  f"{classes}")
        probs = sub[classes].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(probs).all():
            raise SubmissionError(f"{path}: a probability is empty or not a number")
    metrics = classification_metrics(y, probs, classes)
    metrics["kind"] = "probabilities" if sub.shape[1] > 1 else "labels"
    return metrics

