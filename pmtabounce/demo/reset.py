"""What `pmtabounce demo` may wipe: only a database and a directory it made itself, each marked when made.

`--database X` drops and makes X anew and `--directory D` empties D's bounce
and log folders: pointed at a real IEM database or a real PowerMTA folder by
mistake, that would lose a customer's data. So the demo marks what it makes (a
table in the database, a file in the directory) and refuses anything unmarked.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from ..common.config import MySQLTarget
from ..common.errors import FatalError
from ..store.database import ONE_SHOT, Cursor, Database
from ..store.db import Tables

MARK_TABLE = "pmtabounce_demo_made_this"
MARK_FILE = ".pmtabounce-demo"


def reset_database(target: MySQLTarget) -> None:
    """DROP and CREATE the demo database and mark it; FatalError, dropping nothing, if it exists unmarked.

    `target.database` is checked by the caller (letters, digits and _), so it may be quoted into DDL.
    """
    name = target.database
    server = Database(replace(target, database=""), Tables(), ONE_SHOT)  # the server, no database chosen
    try:
        with server.transaction() as session:
            cursor = session.cursor
            if _database_exists(cursor, name) and not _database_marked(cursor, name):
                raise FatalError(
                    f"database {name} exists and was not made by `pmtabounce demo` (it has no table {MARK_TABLE}); "
                    "the demo drops only databases it made: choose another --database, or drop this one yourself "
                    "if it is an old demo database")
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            cursor.execute(f"CREATE TABLE `{name}`.`{MARK_TABLE}` (made_at INT NOT NULL)")
            cursor.execute(f"INSERT INTO `{name}`.`{MARK_TABLE}` (made_at) VALUES (%s)", (int(time.time()),))
    finally:
        server.close()


def _database_exists(cursor: Cursor, name: str) -> bool:
    cursor.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
    return cursor.fetchone()[0] > 0


def _database_marked(cursor: Cursor, name: str) -> bool:
    cursor.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                   (name, MARK_TABLE))
    return cursor.fetchone()[0] > 0


def claim_directory(directory: Path) -> None:
    """Make `directory` the demo's (marked), or accept it if it is already; FatalError if it holds anything else."""
    mark = directory / MARK_FILE
    if directory.is_dir() and not mark.exists() and any(directory.iterdir()):
        raise FatalError(
            f"{directory} is not empty and was not made by `pmtabounce demo` (no {MARK_FILE} file in it); the demo "
            "empties only folders it made: choose another --directory, or remove this one yourself if it is an "
            "old demo folder")
    directory.mkdir(parents=True, exist_ok=True)
    mark.touch()
