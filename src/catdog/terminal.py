"""What long commands show a person: one progress-bar style and one summary-table style."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

# Progress and summaries go to stderr so that stdout stays machine-readable (JSON, CSV).
console = Console(stderr=True)


def progress() -> Progress:
    """A progress bar with count, elapsed and remaining time; hidden when not on a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


def summary_table(title: str, rows: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
    """Print a two-column key/value table: the short summary every long command ends with."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    items = rows.items() if isinstance(rows, Mapping) else rows
    for key, value in items:
        table.add_row(str(key), f"{value:,.4f}" if isinstance(value, float) else f"{value}")
    console.print(table)
