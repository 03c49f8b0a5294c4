"""MySQL connections and table names: the table prefix is applied here, and only here."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pymysql

from ..common.config import MySQLTarget
from ..common.errors import ConfigError

_PREFIX = re.compile(r"[A-Za-z0-9_]{0,32}")  # fullmatch: `$` would let a trailing newline through


@dataclass(frozen=True)
class Tables:
    """Every table name we use, built from the validated prefix (identifiers cannot be parameters)."""

    prefix: str = "email_"

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise ConfigError(f"table prefix {self.prefix!r}: only letters, digits and _ (at most 32)")

    def _name(self, base: str) -> str:
        return f"`{self.prefix}{base}`"

    @property
    def lists(self) -> str:
        return self._name("lists")

    @property
    def subscribers(self) -> str:
        return self._name("list_subscribers")

    @property
    def bounces(self) -> str:
        return self._name("list_subscriber_bounces")

    @property
    def stats_newsletters(self) -> str:
        return self._name("stats_newsletters")

    @property
    def stats_autoresponders(self) -> str:
        return self._name("stats_autoresponders")

    @property
    def ledger(self) -> str:
        return self._name("pmtabounce_ledger")

    @property
    def meta(self) -> str:
        return self._name("pmtabounce_meta")


def connect(target: MySQLTarget, *, timeout: float = 10.0) -> pymysql.connections.Connection:
    """A connection for one thread. READ COMMITTED: once we hold a subscriber's row lock,
    every later read sees the bounce rows other workers committed before they let it go."""
    connection = pymysql.connect(
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        database=target.database,
        unix_socket=target.unix_socket,
        charset="utf8mb4",
        autocommit=False,
        connect_timeout=timeout,
        read_timeout=max(timeout, 60.0),
        write_timeout=max(timeout, 60.0),
    )
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        cursor.execute("SET SESSION innodb_lock_wait_timeout = 20")
    return connection
