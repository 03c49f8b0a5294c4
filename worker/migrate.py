"""`pmtabounce setup`: create or upgrade our own tables (never IEM's), and the RabbitMQ topology."""

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


def setup_broker(settings: Settings) -> None:
    """Declare the exchanges and queues. Idempotent; safe to run while workers run."""
    import pika

    from ..common import broker
    from ..common.topology import Topology

    topology = Topology(settings.queue_prefix, settings.delivery_limit)
    try:
        connection = broker.connect(settings.amqp, "setup")
    except pika.exceptions.AMQPError as exc:
        raise FatalError(
            f"cannot reach RabbitMQ at {broker.safe_url(settings.amqp)}: {exc!r} (check PMTABOUNCE_AMQP_URL)"
        ) from None
    try:
        broker.declare_topology(connection.channel(), topology)
    finally:
        connection.close()
    log.info(
        "broker ready at %s: exchange %s -> quorum queue %s (delivery limit %d), dead letters in %s",
        broker.safe_url(settings.amqp), topology.exchange, topology.queue,
        topology.delivery_limit, topology.dead_queue,
    )
