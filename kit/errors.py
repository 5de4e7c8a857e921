"""The library's own exceptions.

The library raises these with a message that names the file, the field, what came and what
was expected (scikit-learn's style). Only the CLI turns them into a red line and exit code 2.
"""

from __future__ import annotations


class KitError(Exception):
    """Base class: a problem with the user's input or the state on disk, not a bug in kit.

    An error about a field ('cv.folds: ...') is raised where the field is checked, which may not
    know the file it came from; the caller that does says so with `raise exc.at(recipe.source)`."""

    where: str | None = None  # the file the error is about, once a caller has said so

    def at(self, where) -> KitError:
        """This error, its message prefixed with `where` ('recipes/x.yaml: cv.folds: ...'), once."""
        if self.where is None:
            self.where = str(where)
            self.args = (f"{where}: {self}",)
        return self


class RecipeError(KitError):
    """A recipe (or competition file) is missing, unreadable or does not fit the schema."""


class DataError(KitError):
    """A competition's files are missing, malformed or inconsistent."""


class StoreError(KitError):
    """The prediction store is missing a model, holds a damaged file, or mixes incompatible members."""


class BlendError(KitError):
    """Members cannot be blended as asked."""


class SubmissionError(KitError):
    """A submission does not match the competition's sample submission or solution."""


class WriteError(KitError):
    """A file kit writes cannot be written (a full disk, no permission, a folder in its place), or is
    one kit must not write (a path inside the store given as an output)."""


def did_you_mean(name: str, known) -> str:
    """' (did you mean 'x'?)' when a close match exists (the same name in another case first), else ''."""
    import difflib

    known = [str(k) for k in known]
    by_lower = {k.lower(): k for k in known}
    if str(name).lower() in by_lower:  # 'horizontalflip', 'VGG_SMALL': difflib alone misses a difference of case
        return f" (did you mean '{by_lower[str(name).lower()]}'?)"
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (third-party messages can span many lines)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def reason(exc: BaseException, limit: int | None = 120) -> str:
    """An exception's whole message on one line (each run of whitespace, newlines too, as one space),
    cut at `limit` characters; its class name when the message is empty. For third-party errors
    (PIL, NumPy, scikit-learn) whose every line may matter but must fit in kit's one-line message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if limit is None else text[:limit]
