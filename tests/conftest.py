"""Shared fixtures. Integration tests talk to the real MariaDB and RabbitMQ on this machine;
if either is down the suite fails loudly (it never skips and passes while testing nothing).

PMTABOUNCE_TEST_MYSQL_URL and PMTABOUNCE_TEST_AMQP_URL point them elsewhere
(defaults: root on 127.0.0.1:3306, guest on 127.0.0.1:5672).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import pika
import pymysql
import pytest
from pmtabounce.common.config import MySQLTarget, Settings, parse_mysql_url
from pmtabounce.common.topology import Topology
from pmtabounce.worker.db import Tables, connect
from pmtabounce.worker.migrate import setup_database

from pmtabounce.demo.fixture import create_iem_tables

DATA = Path(__file__).parent / "data"
SAMPLES = DATA / "samples"
MYSQL_URL = os.environ.get("PMTABOUNCE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
AMQP_URL = os.environ.get("PMTABOUNCE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


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


def _server_url(database: str) -> str:
    base = MYSQL_URL.rsplit("/", 1)[0]
    return f"{base}/{database}"


def make_database(prefix: str = "email_") -> IemDatabase:
    name = f"pmtt_{uuid.uuid4().hex[:12]}"
    admin = parse_mysql_url(MYSQL_URL)
    try:
        server = pymysql.connect(host=admin.host, port=admin.port, user=admin.user, password=admin.password,
                                 unix_socket=admin.unix_socket)
    except pymysql.err.OperationalError as exc:
        pytest.fail(
            f"MariaDB is not reachable at {admin.safe_url()} ({exc}). Start it with: "
            "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
            pytrace=False,
        )
    with server.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    server.close()
    url = _server_url(name)
    db = IemDatabase(name, url, parse_mysql_url(url), Tables(prefix))
    connection = db.connect()
    create_iem_tables(connection, db.tables)
    connection.close()
    setup_database(db.settings())
    return db


def drop_database(db: IemDatabase) -> None:
    admin = parse_mysql_url(MYSQL_URL)
    server = pymysql.connect(host=admin.host, port=admin.port, user=admin.user, password=admin.password,
                             unix_socket=admin.unix_socket)
    with server.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{db.name}`")
    server.close()


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


def _rabbitmqctl(*args: str) -> None:
    tool = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([tool, "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def vhost():
    try:
        pika.BlockingConnection(pika.URLParameters(AMQP_URL)).close()
    except Exception as exc:
        pytest.fail(f"RabbitMQ is not reachable at {AMQP_URL.split('@')[-1]} ({exc!r}). "
                    "Start it with: rabbitmq-server -detached", pytrace=False)
    name = f"pmtt-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    base = AMQP_URL.rsplit("/", 1)[0]
    yield Vhost(name, f"{base}/{name}", Topology())
    _rabbitmqctl("delete_vhost", name)
