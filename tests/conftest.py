"""Shared fixtures. Integration tests talk to the real MariaDB and RabbitMQ on this machine;
if either is down the suite fails loudly (it never skips and passes while testing nothing).

PMTABOUNCE_TEST_MYSQL_URL and PMTABOUNCE_TEST_AMQP_URL point them elsewhere
(defaults: root on 127.0.0.1:3306, guest on 127.0.0.1:5672).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import pika
import pymysql
import pytest
from pmtabounce.common.config import MySQLTarget, Settings, parse_mysql_url
from pmtabounce.common.topology import Topology
from pmtabounce.store.db import Tables, connect
from rabbit_management import ensure_management_api
from throwaway import AMQP_URL, MYSQL_URL, add_vhost, create_database, delete_vhost, drop_databases, server_of

DATA = Path(__file__).parent / "data"
SAMPLES = DATA / "samples"


def pytest_configure(config) -> None:
    """Work from an empty folder: `python -m pmtabounce` in subprocesses puts the working directory
    first on sys.path, and in the clone's top folder the source tree's pmtabounce/ (which holds only
    the edge modules) would shadow the installed package."""
    os.chdir(tempfile.mkdtemp(prefix="pmtabounce-tests-"))


@dataclass
class IemDatabase:
    """A fresh database of its own for one test, with IEM's fixture tables and our ledger."""

    name: str
    url: str
    target: MySQLTarget
    tables: Tables

    def connect(self) -> pymysql.connections.Connection:
        return connect(self.target)

    def query(self, sql: str, params=()) -> list[tuple]:
        """Run one statement (table names via {t.xxx}) and return its rows."""
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql.format(t=self.tables), params)
                rows = list(cursor.fetchall())
            connection.commit()
            return rows
        finally:
            connection.close()

    def execute_many(self, sql: str, rows) -> None:
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.executemany(sql.format(t=self.tables), rows)
            connection.commit()
        finally:
            connection.close()

    def settings(self, **changes) -> Settings:
        base = Settings(mysql_url=self.url, table_prefix=self.tables.prefix)
        return replace(base, **changes)


def make_database(prefix: str = "email_", *, webhooks: bool = True) -> IemDatabase:
    """A fresh database of its own (see IemDatabase); `webhooks=False`: an IEM before 6.5.1.
    Drop it with drop_database."""
    try:
        name, url = create_database(server_of(MYSQL_URL), "pmtt_", prefix, webhooks=webhooks)
    except pymysql.err.OperationalError as exc:
        pytest.fail(
            f"MariaDB is not reachable at {parse_mysql_url(MYSQL_URL).safe_url()} ({exc}). Start it with: "
            "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
            pytrace=False,
        )
    return IemDatabase(name, url, parse_mysql_url(url), Tables(prefix))


def drop_database(db: IemDatabase) -> None:
    drop_databases(server_of(MYSQL_URL), [db.name])


@dataclass(frozen=True)
class LinkTarget:
    """A file a symbolic link in `spool` may point at (`victim`, holding "precious"): it must stay untouched."""

    victim: Path
    spool: Path


@pytest.fixture
def link_target(tmp_path) -> LinkTarget:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    spool = tmp_path / "spool"
    spool.mkdir()
    return LinkTarget(victim, spool)


@pytest.fixture
def iem_db():
    db = make_database()
    yield db
    drop_database(db)


@dataclass
class Vhost:
    """A RabbitMQ virtual host of its own for one test."""

    name: str
    url: str
    topology: Topology

    def channel(self):
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        return connection, connection.channel()

    def queue_depth(self, queue: str) -> int:
        connection, channel = self.channel()
        try:
            return channel.queue_declare(queue, passive=True).method.message_count
        finally:
            connection.close()


@pytest.fixture
def vhost():
    try:
        pika.BlockingConnection(pika.URLParameters(AMQP_URL)).close()
    except Exception as exc:
        pytest.fail(f"RabbitMQ is not reachable at {AMQP_URL.split('@')[-1]} ({exc!r}). "
                    "Start it with: rabbitmq-server -detached", pytrace=False)
    ensure_management_api()  # `setup` sets the work queue's policy through it
    name, url = add_vhost(server_of(AMQP_URL), "pmtt-")
    yield Vhost(name, url, Topology())
    delete_vhost(name)
