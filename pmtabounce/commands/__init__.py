"""One module per `pmtabounce` command, each exposing a click command that cli.py registers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..common.config import Settings
from ..worker.db import Tables, connect

T = TypeVar("T")


def in_transaction(settings: Settings, work: Callable[..., T]) -> T:
    """Run `work(cursor, tables)` in one transaction on a connection of its own; commit and return its result.

    An exception rolls back (the connection is closed without a commit) and propagates.
    """
    connection = connect(settings.mysql)
    try:
        with connection.cursor() as cursor:
            result = work(cursor, Tables(settings.table_prefix))
        connection.commit()
        return result
    finally:
        connection.close()
