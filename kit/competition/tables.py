"""Reading a competition's CSV files with errors that name the file, the line and the column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, first_line


def read_csv(path: Path, field: str, **kwargs) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: no such file (the competition's '{field}' file)")
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable CSV ({first_line(exc)})") from None


def read_text_table(path: Path, field: str) -> pd.DataFrame:
    """Every cell as the text the file holds: ids and labels keep their spelling ('007', 'NA')."""
    return read_csv(path, field, dtype=str, keep_default_na=False)


def require_column(frame: pd.DataFrame, path: Path, column: str, field: str) -> None:
    if column not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:8])) + (", ..." if len(frame.columns) > 8 else "")
        raise DataError(f"{path}: no column '{column}' (set by {field}); columns are: {shown}")


def first_duplicate(ids: np.ndarray) -> tuple[str, np.ndarray] | None:
    """The smallest id that occurs more than once and the rows of its first two occurrences; None if all differ."""
    values, counts = np.unique(ids, return_counts=True)
    if not (counts > 1).any():
        return None
    dup = values[counts > 1][0]
    return str(dup), np.flatnonzero(ids == dup)[:2]


def check_unique_ids(ids: np.ndarray, path: Path) -> None:
    duplicate = first_duplicate(ids)
    if duplicate is not None:
        dup, rows = duplicate
        rows = rows + 2  # +2: header line, 1-based
        raise DataError(f"{path}: duplicate id '{dup}' (lines {rows[0]} and {rows[1]})")


def text_column(frame: pd.DataFrame, path: Path, column: str, field: str) -> np.ndarray:
    """A column's values as str; an empty cell is an error naming its line."""
    require_column(frame, path, column, field)
    values = frame[column].to_numpy(dtype=str)  # kept as spelled: the submission writes them back
    empty = np.char.strip(values) == ""
    if empty.any():
        raise DataError(f"{path}: line {int(np.flatnonzero(empty)[0]) + 2}: empty '{column}'")
    return values
