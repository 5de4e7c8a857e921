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
from .progress import counted
from .store import Store, read_header


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
    unusable = ~np.isfinite(p).all(1)
    if unusable.any():  # argmax would make a NaN row the first class without a word
        raise SubmissionError(f"the predictions for test id '{fmt.ids[int(np.flatnonzero(unusable)[0])]}' are NaN or "
                              f"infinite; no submission written")
    frame = pd.DataFrame({fmt.id_column: fmt.ids})
    if fmt.probabilities:
        for j, c in enumerate(classes):
            frame[c] = p[:, j]
        return frame[fmt.columns]
    frame[fmt.columns[1]] = np.asarray(classes, dtype=object)[p.argmax(1)]
    return frame


def submission_text(fmt: SubmissionFormat, test_ids, probs, classes, source: str = "the submission") -> str:
    """The CSV kit writes for these predictions, validated, as text (kit export compares it with a blend's file)."""
    frame = make_submission(fmt, test_ids, probs, classes)
    validate_frame(frame, fmt, classes, source)
    return frame.to_csv(index=False, float_format="%.6f")


def write_submission(path: Path, fmt: SubmissionFormat, test_ids, probs, classes) -> Path:
    fileio.write_text(path, submission_text(fmt, test_ids, probs, classes, str(path)))
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


def named_competition(store: Store, competition: str | None):
    """The CompetitionSpec `--competition` names when it is a competition file or a built-in competition
    the store does not hold (so only its own files can answer); None when the store answers."""
    from .competition import BUILTIN, resolve_competition

    if not competition or competition in store.competitions():
        return None
    if competition in BUILTIN or competition.endswith((".yaml", ".yml")):
        spec = resolve_competition(competition, "--competition")
        return None if spec.name in store.competitions() else spec
    return None


def check_against_sample(store: Store, submission: Path, competition: str | None = None) -> tuple[str, Path, SubmissionFormat]:
    """`kit validate`: the submission against its competition's sample submission. The competition is
    the one named (in the store, built in, or a competition file), else the store's only one, else the
    only one whose sample submission has the submission's columns. -> (competition, sample, format)."""
    spec = named_competition(store, competition)
    if spec is not None:
        from .competition import load_competition

        data = load_competition(spec)
        name, sample, classes = spec.name, data.sample_submission, data.classes
    else:
        name = store.pick_competition(competition, columns=read_header(submission))
        sample, classes = store.sample_submission(name), store.classes(name)
    return name, sample, validate_submission(submission, sample, classes)


def find_solution(store: Store, submission: Path, competition: str | None = None) -> tuple[str, Path]:
    """`kit score` without --solution: the competition (found as `check_against_sample` finds it) and
    the file its `solution:` field names -> (competition, solution path)."""
    from .competition import BUILTIN, load_competition, resolve_competition

    spec = named_competition(store, competition)
    if spec is None:
        name = store.pick_competition(competition, columns=read_header(submission))
        spec = resolve_competition(name) if name in BUILTIN else store.competition_spec(name)
    if spec.solution is None:
        raise SubmissionError(f"competition '{spec.name}' ({spec.root}): no solution: field, so there is nothing to "
                              f"score against; add solution: FILE to its competition file, or pass --solution")
    if spec.name in BUILTIN:
        return spec.name, load_competition(spec).solution  # a built-in one writes its files on first use
    return spec.name, spec.path(spec.solution)


def score_submission(path: Path, solution_path: Path, competition: str | None = None) -> dict:
    """Score a submission the way the leaderboard would: accuracy and per-class metrics
    (label submissions), or log loss (probability submissions). Messages name `competition`."""
    from .competition.data import sort_classes
    from .report import classification_metrics

    whose = f"the solution of competition '{competition}'" if competition else "the solution"
    against = f"{whose} ({solution_path})"
    if not Path(solution_path).is_file():
        raise SubmissionError(f"{solution_path}: no such file ({whose})")
    solution = read_table(solution_path, "solution")
    sub = read_table(path, "submission")
    id_column = solution.columns[0]
    if sub.columns[0] != id_column:
        raise SubmissionError(f"{path}: first column '{sub.columns[0]}', expected the id column '{id_column}' "
                              f"of {against}")
    truth = solution.set_index(id_column).iloc[:, 0]
    classes = sort_classes(truth)
    index = {c: i for i, c in enumerate(classes)}
    if sub[id_column].duplicated().any():
        raise SubmissionError(f"{path}: duplicate id '{sub[id_column][sub[id_column].duplicated()].iloc[0]}' "
                              f"(scored against {against})")
    missing = truth.index.difference(pd.Index(sub[id_column]))
    extra = pd.Index(sub[id_column]).difference(truth.index)
    if len(missing) or len(extra):
        raise SubmissionError(f"{path}: ids do not match {against}: {len(missing)} missing"
                              + (f" (e.g. '{missing[0]}')" if len(missing) else "")
                              + f", {len(extra)} unknown" + (f" (e.g. '{extra[0]}')" if len(extra) else ""))
    sub = sub.set_index(id_column).loc[truth.index]
    y = truth.map(index).to_numpy()
    if sub.shape[1] == 1:
        labels = sub.iloc[:, 0]
        unknown = ~labels.isin(classes)
        if unknown.any():
            raise SubmissionError(f"{path}: id '{labels.index[unknown.argmax()]}': label '{labels[unknown].iloc[0]}' "
                                  f"is not one of the classes of {against} ({', '.join(classes[:12])})")
        probs = np.eye(len(classes))[labels.map(index).to_numpy()]
    else:
        if set(sub.columns) != set(classes):
            raise SubmissionError(f"{path}: probability columns {list(sub.columns)} do not match the classes "
                                  f"{classes} of {against}")
        probs = sub[classes].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(probs).all():
            raise SubmissionError(f"{path}: a probability is empty or not a number (scored against {against})")
    metrics = classification_metrics(y, probs, classes)
    metrics["kind"] = "probabilities" if sub.shape[1] > 1 else "labels"
    return metrics



#: how far a row of an outside probability CSV may sum from 1: public notebooks often write rounded
#: probabilities (10 classes at 3 decimals can be 0.005 off); the rows are renormalised after the check
OUTSIDE_SUM_TOLERANCE = 0.01


def read_outside_submission(path: Path, fmt: SubmissionFormat, classes: list[str]) -> tuple[np.ndarray, str]:
    """A submission made elsewhere (a public notebook's output), as test probabilities in the sample
    submission's id order -> (probabilities (ids, classes), "probabilities" or "labels").

    It is either a probability CSV (the id column, then one column per class in any order) or a label
    CSV (the id column and one label column, whatever its name): labels become one-hot probabilities.
    Its ids are those of the sample submission, each once, in any order. Anything else is a
    SubmissionError naming the file, the field and what was expected."""
    frame = read_table(path, "outside submission")
    columns = list(frame.columns)
    if columns[0] != fmt.id_column:
        raise SubmissionError(f"{path}: first column '{columns[0]}', expected the id column '{fmt.id_column}' "
                              f"as in the sample submission")
    labels = len(columns) == 2
    if not labels and sorted(columns[1:]) != sorted(classes):
        # pandas renames a repeated column 'x' to 'x.1', so a repeat shows here as an unknown column
        unknown = [c for c in columns[1:] if c not in classes]
        missing = [c for c in classes if c not in columns[1:]]
        raise SubmissionError(f"{path}: columns {columns[1:]}: expected one label column or one column per class "
                              f"({', '.join(classes)})" + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                              + (f"; missing: {', '.join(missing)}" if missing else ""))
    ids = frame[fmt.id_column].to_numpy(dtype=str)
    repeated = pd.Series(ids).duplicated(keep=False).to_numpy()
    if repeated.any():
        lines = np.flatnonzero(ids == ids[repeated][0])[:2] + 2
        raise SubmissionError(f"{path}: column '{fmt.id_column}': id '{ids[repeated][0]}' appears twice "
                              f"(lines {lines[0]} and {lines[1]}); expected each id of the sample submission once")
    unknown_ids = ~np.isin(ids, fmt.ids)
    if unknown_ids.any():
        row = int(np.flatnonzero(unknown_ids)[0])
        raise SubmissionError(f"{path}: line {row + 2}, column '{fmt.id_column}': id '{ids[row]}' is not in the "
                              f"sample submission ({counted(int(unknown_ids.sum()), 'id')} not in it); expected "
                              f"its {len(fmt.ids)} ids")
    missing_ids = fmt.ids[~np.isin(fmt.ids, ids)]
    if len(missing_ids):
        raise SubmissionError(f"{path}: column '{fmt.id_column}': {len(missing_ids)} of the sample submission's ids "
                              f"missing (e.g. '{missing_ids[0]}'); expected all {len(fmt.ids)}")
    frame = frame.set_index(fmt.id_column).loc[fmt.ids]  # the sample submission's order
    line = {id_: i + 2 for i, id_ in enumerate(ids)}  # ids were unique: each row's line in the file
    if labels:
        column = columns[1]
        values = frame[column].to_numpy(dtype=str)
        index = {c: i for i, c in enumerate(classes)}
        unknown = [i for i, v in enumerate(values) if v not in index]
        if unknown:
            row = unknown[0]
            raise SubmissionError(f"{path}: line {line[fmt.ids[row]]}, column '{column}': '{values[row]}' is not a "
                                  f"class of the competition; expected one of {', '.join(classes[:12])}"
                                  f"{', ...' if len(classes) > 12 else ''}")
        return np.eye(len(classes))[[index[v] for v in values]], "labels"
    text = frame[classes]
    probs = text.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(probs) | (probs < 0) | (probs > 1)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise SubmissionError(f"{path}: line {line[fmt.ids[row]]}, column '{classes[col]}': {text.iat[row, col]!r}; "
                              f"expected a probability from 0 to 1")
    sums = probs.sum(1)
    off = np.abs(sums - 1) > OUTSIDE_SUM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise SubmissionError(f"{path}: line {line[fmt.ids[row]]}: the probabilities sum to {sums[row]:.4g}; "
                              f"expected 1 (within {OUTSIDE_SUM_TOLERANCE})")
    return probs / sums[:, None], "probabilities"
