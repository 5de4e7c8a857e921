"""Everything rich: the CLI's progress bars and tables. The library itself never imports this."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

# the cell format lives with Reporter, rich-free, so that kit.report's markdown tables share it;
# re-exported here, where the terminal's tables use it
from .progress import SECONDS_COLUMNS, Reporter, fmt  # noqa: F401

console = Console()
err_console = Console(stderr=True)


def make_table(title: str | None, columns: list[str], rows: list[list], highlight: int | None = None) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for i, c in enumerate(columns):
        first_is_name = i == 0 and rows and isinstance(rows[0][0], str)
        table.add_column(c, justify="left" if first_is_name else "right", no_wrap=bool(first_is_name))
    for i, row in enumerate(rows):
        table.add_row(*[fmt(v, c) for v, c in zip(row, columns)], style="bold green" if i == highlight else None)
    return table


class RichReporter(Reporter):
    """Progress bars with ETA for long work; tables and messages printed above them."""

    def __init__(self, out: Console = console):
        self.console = out
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=out, transient=True)
        self.tasks: dict[str, int] = {}

    def start(self, key, description, total):
        if not self.tasks:
            self.progress.start()
        self.tasks[key] = self.progress.add_task(description, total=total)

    def advance(self, key, steps=1, description=None):
        if key in self.tasks:
            self.progress.update(self.tasks[key], advance=steps,
                                 **({"description": description} if description else {}))

    def finish(self, key):
        task = self.tasks.pop(key, None)
        if task is not None:
            self.progress.remove_task(task)
        if not self.tasks:
            self.progress.stop()

    def table(self, title, columns, rows, highlight=None):
        self.console.print(make_table(title, columns, rows, highlight))

    def message(self, text):
        self.console.print(text, style="dim", highlight=False)


def error(text: str) -> None:
    """One red line on stderr: what the CLI prints for a KitError instead of a traceback."""
    # the text is plain: brackets in it ("pip install 'kit[tensorboard]'") are not rich markup
    err_console.print(f"[bold red]error:[/bold red] {escape(text)}", highlight=False, soft_wrap=True)


def is_interactive() -> bool:
    return sys.stdout.isatty()
