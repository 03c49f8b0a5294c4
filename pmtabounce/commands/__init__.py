"""One module per `pmtabounce` command, each exposing a click command that cli.py registers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timezone
from typing import TypeVar

import click
import pymysql

from ..common.config import Settings
from ..common.errors import FatalError
from ..common.record import iso_time
from ..store.db import Tables, connect, error_number, setting_to_check, translate

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
        raise database_failure(exc, settings) from exc


OPERATOR_GRANTS = "deploy/mysql/grants-operator.sql"


def database_failure(exc: BaseException, settings: Settings) -> FatalError:
    """A one-shot command's database error as one line: what went wrong and what to check (store/db.py
    setting_to_check: the URL without its password, the prefix), and for a refused statement the grants an
    operator's account needs beyond the worker's."""
    hint = setting_to_check(exc, settings.mysql, settings.table_prefix)
    if error_number(exc) in (1142, 1143):  # command or column denied
        hint += f"; an operator's account needs {OPERATOR_GRANTS} on top of grants.sql"
    return FatalError(f"{translate(exc)} ({hint})")


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
