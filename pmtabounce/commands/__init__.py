"""One module per `pmtabounce` command, each exposing a click command that cli.py registers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timezone
from typing import TypeVar

import click

from ..common.config import Settings
from ..common.errors import FatalError, GaveUp
from ..common.record import iso_time
from ..store.database import Database, OneShot, WaitItOut
from ..store.db import Tables

T = TypeVar("T")


OPERATOR_GRANTS = "deploy/mysql/grants-operator.sql"
# Said with a statement the server denied (1142, 1143): what an operator's account needs beyond the worker's.
OPERATOR_DENIED = f"an operator's account needs {OPERATOR_GRANTS} on top of grants.sql"


def one_shot(settings: Settings) -> Database:
    """The database of an operator's command: the first failure is fatal (store/database.py OneShot), a denied
    statement naming the operator's grants."""
    return Database(settings.mysql, Tables(settings.table_prefix), OneShot(denied_hint=OPERATOR_DENIED))


MID_RUN_SECONDS = 120.0  # once reached, a database outage is waited out this long (each wait logged), then exit 1
INTERRUPTED = 130  # README "Exit codes": stopped on SIGTERM/SIGINT between batches, as `dlq replay`


def batches_database(settings: Settings, stop: threading.Event | None = None,
                     log: logging.Logger | None = None) -> Database:
    """The database of a command that acts in many batches (`undo`, `guard release`), for its reads, batches
    and audit alike: an unreachable one fails at once; once reached, an outage is waited out (logged) up to
    MID_RUN_SECONDS, a stop request ending the wait (store/database.py WaitItOut)."""
    policy = WaitItOut(max_wait=settings.retry_max_wait, give_up_after=MID_RUN_SECONDS, stop=stop,
                       reach_at_once=True, denied_hint=OPERATOR_DENIED)
    return Database(settings.mysql, Tables(settings.table_prefix), policy, log=log or logging.getLogger("pmtabounce"))


def gave_up(exc: GaveUp, database: Database, kept: str) -> FatalError:
    """The FatalError of a batches_database run that lost the database for good; `kept`: what stays done."""
    return FatalError(f"gave up after {exc.waited:.0f} s without the database at {database.describe()} ({exc}); "
                      f"{kept}: run the same command again to go on")


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
    """Unix seconds, or an ISO 8601 time (`2020-12-14T10:00:00Z`, PowerMTA's `2020-12-14 02:00:00-0800`; without
    an offset it is UTC), read by common.record.iso_time as the accounting files are. Raises click.BadParameter."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        return int(text)
    moment = iso_time(text)
    if moment is None:
        raise click.BadParameter(f"{text!r} is neither Unix seconds nor an ISO time (2020-12-14T10:00:00Z, "
                                 "or as PowerMTA writes it: 2020-12-14 02:00:00-0800)")
    return int((moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp())
