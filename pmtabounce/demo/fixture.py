"""IEM's tables as a fixture: for tests, the demo and the benchmark, never a real install."""

from __future__ import annotations

import re
from importlib import resources

from ..store.database import Cursor
from ..store.db import Tables

# Where the fixture names a table (the index names keep IEM's own `email_`).
_TABLE_NAME = re.compile(r"\b(TABLE IF NOT EXISTS|INSERT IGNORE INTO) email_")
# The four tables IEM 6.5.1 added (database version 20220908); older installations have none of them.
_WEBHOOK_TABLE = re.compile(r"\b(TABLE IF NOT EXISTS|INSERT IGNORE INTO) email_webhook")


def iem_schema(tables: Tables, *, webhooks: bool = True) -> list[str]:
    """The statements that build the fixture under the configured prefix (CREATE TABLE, and the
    INSERTs of IEM's fixed webhook type rows); `webhooks=False` leaves out IEM 6.5.1's four webhook
    tables, for an IEM before 6.5.1."""
    text = resources.files(__package__).joinpath("iem_fixture.sql").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    statements = [statement.strip() for statement in body.split(";") if statement.strip()]
    return [
        _TABLE_NAME.sub(lambda match: f"{match.group(1)} {tables.prefix}", statement)
        for statement in statements
        if webhooks or not _WEBHOOK_TABLE.search(statement)
    ]


def create_iem_tables(cursor: Cursor, tables: Tables, *, webhooks: bool = True) -> None:
    """Create the fixture (see iem_schema) in the caller's transaction; the caller commits (the INSERTs)."""
    for statement in iem_schema(tables, webhooks=webhooks):
        cursor.execute(statement)
