"""One module per `pmtabounce` command, each exposing a click command that cli.py registers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import TypeVar

import click
import pymysql

from ..common.config import Settings
from ..common.errors import FatalError
from ..store.db import Tables, connect, setting_to_check, translate

T = TypeVar("T")


def in_transaction(settings: Settings, work: Callable[..., T]) -> T:
    """Run `work(cursor, tables)` in one transaction on a connection of its own; commit and return its result.

    An exception rolls back (the connection is closed without a commit). A database error is raised as a
    FatalError naming what to check (store/db.py translate, setting_to_check): a missing table (setup not
    run), a grant, an unreachable server — a one-shot command reports it and exits 1 instead of waiting.
    """
    try:
        connection = connect(settings.mysql)
        try:
            with connection.cursor() as cursor:
                result = work(cursor, Tables(settings.table_prefix))
            connection.commit()
            return result
        finally:
            connection.close()
    except (pymysql.err.MySQLError, ConnectionError, TimeoutError) as exc:
        error = translate(exc)
        hint = setting_to_check(exc, settings.mysql, settings.table_prefix)
        raise FatalError(f"{error} ({hint})") from exc


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
