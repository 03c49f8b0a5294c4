"""IEM's tables as a fixture, and the demo's own database: for tests, the demo and the benchmark, never a real
install."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from importlib import resources

from ..common.config import MySQLTarget
from ..common.errors import FatalError
from .database import ONE_SHOT, Cursor, Database
from .db import Tables

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


def insert_fixture_rows(cursor: Cursor, table: str, columns: tuple[str, ...], rows: list) -> None:
    """Insert `rows` (tuples in `columns` order) into `table` (a Tables name) in the caller's transaction.

    Every value is a parameter: the driver turns executemany into multi-row INSERTs only then (a literal in
    VALUES makes it one round trip per row)."""
    if rows:
        marks = ", ".join(["%s"] * len(columns))
        cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


def reset_marked_database(target: MySQLTarget, mark_table: str) -> None:
    """DROP and CREATE `target.database` and mark it with `mark_table`; FatalError, dropping nothing, if it
    exists without that mark (pmtabounce/demo/reset.py says why).

    `target.database` is checked by the caller (letters, digits and _), so it may be quoted into DDL.
    """
    name = target.database
    server = Database(replace(target, database=""), Tables(), ONE_SHOT)  # the server, no database chosen
    try:
        with server.transaction() as session:
            cursor = session.cursor
            if _database_exists(cursor, name) and not _database_marked(cursor, name, mark_table):
                raise FatalError(
                    f"database {name} exists and was not made by `pmtabounce demo` (it has no table {mark_table}); "
                    "the demo drops only databases it made: choose another --database, or drop this one yourself "
                    "if it is an old demo database")
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            cursor.execute(f"CREATE TABLE `{name}`.`{mark_table}` (made_at INT NOT NULL)")
            cursor.execute(f"INSERT INTO `{name}`.`{mark_table}` (made_at) VALUES (%s)", (int(time.time()),))
    finally:
        server.close()


def _database_exists(cursor: Cursor, name: str) -> bool:
    cursor.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
    return cursor.fetchone()[0] > 0


def _database_marked(cursor: Cursor, name: str, mark_table: str) -> bool:
    cursor.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                   (name, mark_table))
    return cursor.fetchone()[0] > 0
