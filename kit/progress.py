"""How long work reports progress without knowing who is watching.

The library calls a Reporter; the CLI passes one that draws rich progress bars and tables, a
notebook can pass its own, and the default does nothing. Keeping rich out of the training and
blending code keeps them importable and testable on their own.
"""

from __future__ import annotations


class Reporter:
    """Receives progress events. Every method is optional to override; the defaults do nothing."""

    def start(self, key: str, description: str, total: float | None) -> None:
        """A unit of work called `key` begins, with `total` steps (None: unknown)."""

    def advance(self, key: str, steps: float = 1, description: str | None = None) -> None:
        """`steps` more steps of `key` are done; `description` replaces its label."""

    def finish(self, key: str) -> None:
        """`key` is over (finished or abandoned); its bar can go."""

    def table(self, title: str, columns: list[str], rows: list[list], highlight: int | None = None) -> None:
        """A small result table (a fold's epochs, a model's folds); `highlight` marks one row."""

    def message(self, text: str) -> None:
        """A line of news (a fold skipped, a file written)."""


SILENT = Reporter()

#: table columns holding seconds, shown to two decimals
SECONDS_COLUMNS = {"seconds", "fit s", "cv s"}


def counted(n: int, noun: str) -> str:
    """'1 member', '3 members': a count with its noun, for the lines kit prints and writes."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def fmt(value, column: str = "") -> str:
    """A table cell as text, alike in the terminal (kit.console) and in summary.md (kit.report):
    seconds to two decimals, other floats to four, tiny ones in scientific notation."""
    if isinstance(value, float):
        if column in SECONDS_COLUMNS:
            return f"{value:.2f}"
        return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)
