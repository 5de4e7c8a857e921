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
