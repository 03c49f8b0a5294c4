"""One module per `pmtabounce` command, each exposing a click command that cli.py registers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import TypeVar

import click

from ..common.config import Settings
from ..store.database import ONE_SHOT, Database
from ..store.db import Tables

T = TypeVar("T")


def one_shot(settings: Settings) -> Database:
    """The database of an operator's command: the first failure is fatal (store/database.py ONE_SHOT)."""
    return Database(settings.mysql, Tables(settings.table_prefix), ONE_SHOT)


def in_transaction(settings: Settings, work: Callable[..., T]) -> T:
    """Run `work(cursor, tables)` in one transaction on a connection of its own; commit and return its result.

    An exception rolls back (the connection is closed without a commit). A database error is raised as a
    FatalError naming what to check (store/database.py ONE_SHOT): a missing table (setup not run), a grant,
    an unreachable or silent server (within a few seconds) — a one-shot command reports it and exits 1.
    """
    database = one_shot(settings)
    try:
        with database.transaction() as session:
            return work(session.cursor, session.tables)
    finally:
        database.close()


def parse_when(text: str) -> int:
    """Unix seconds, or an ISO 8601 time (`2020-12-14T10:00:00Z`; without an offset it is UTC)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither Unix seconds nor an ISO time (2020-12-14T10:00:00Z)") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp())
