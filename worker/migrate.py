"""`pmtabounce setup`, its MySQL half: create or upgrade our own tables (never IEM's).

The migrations themselves are ledger.migrations(); the RabbitMQ half is common.broker.setup_broker.
"""

from __future__ import annotations

import logging

import pymysql

from ..common.config import Settings
from ..common.errors import FatalError
from . import ledger
from .db import Tables, connect

log = logging.getLogger("pmtabounce.setup")


def setup_database(settings: Settings) -> int:
    """Run the ledger migrations not yet applied; returns the schema version now in place."""
    tables = Tables(settings.table_prefix)
    try:
        return _migrate(settings, tables)
    except pymysql.err.MySQLError as exc:
        reason = exc.args[-1] if exc.args else exc
        raise FatalError(
            f"database setup failed at {settings.mysql.safe_url()}: {reason} "
            "(check PMTABOUNCE_MYSQL_URL and its grants)"
        ) from None


def _migrate(settings: Settings, tables: Tables) -> int:
    connection = connect(settings.mysql)
    try:
        with connection.cursor() as cursor:
            cursor.execute(ledger.meta_table_sql(tables))
            cursor.execute(f"SELECT value FROM {tables.meta} WHERE name = 'schema_version'")
            row = cursor.fetchone()
            current = int(row[0]) if row else 0
            for version, statements in ledger.migrations(tables):
                if version <= current:
                    continue
                for statement in statements:
                    cursor.execute(statement)
                cursor.execute(
                    f"INSERT INTO {tables.meta} (name, value) VALUES ('schema_version', %s) "
                    "ON DUPLICATE KEY UPDATE value = VALUES(value)",
                    (str(version),),
                )
                log.info("database: applied schema version %d (%s)", version, tables.ledger)
                current = version
        connection.commit()
    finally:
        connection.close()
    log.info("database ready: schema version %d in %s", current, settings.mysql.safe_url())
    return current
