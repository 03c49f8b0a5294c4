"""Printing summaries for people (a rich table) or for scripts (JSON)."""

from __future__ import annotations

import orjson
from rich.console import Console
from rich.table import Table

from .summary import Summary


def print_summary(summary: Summary, *, as_json: bool = False, title: str = "pmtabounce process") -> None:
    if as_json:
        print(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=title)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in summary.rows():
        table.add_row(name, str(value))
    Console().print(table)
