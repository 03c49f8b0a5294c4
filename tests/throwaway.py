"""Throwaway MariaDB databases and RabbitMQ virtual hosts, for the tests and for the benchmark (bench/ puts
this folder on sys.path): each made under a random name, each dropped afterwards by whoever made it.

Not product, so not in the wheel. Servers are given as URLs without a database or vhost
(`mysql://root@127.0.0.1:3306`, `amqp://guest:guest@127.0.0.1:5672`); making a vhost needs
rabbitmqctl on this machine, as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import pymysql
from pmtabounce.common.config import Settings, parse_mysql_url
from pmtabounce.store.db import Tables, connect
from pmtabounce.store.fixture import create_iem_tables
from pmtabounce.store.migrate import setup_database

# Where the tests find the services (the Makefile's preflight checks the same ones).
MYSQL_URL = os.environ.get("PMTABOUNCE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
AMQP_URL = os.environ.get("PMTABOUNCE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def server_of(url: str) -> str:
    """A MySQL or AMQP URL without its database or vhost."""
    return url.rstrip("/").rsplit("/", 1)[0] if urlsplit(url).path.strip("/") else url.rstrip("/")


def admin_connection(mysql_server: str) -> pymysql.connections.Connection:
    """An autocommit connection to the server, with no database chosen; pymysql's OperationalError if down."""
    admin = parse_mysql_url(f"{mysql_server}/mysql")
    return pymysql.connect(host=admin.host, port=admin.port, user=admin.user, password=admin.password,
                           unix_socket=admin.unix_socket, autocommit=True)


def create_database(mysql_server: str, name_prefix: str, table_prefix: str = "email_",
                    fill: Callable[[pymysql.connections.Connection, Tables], None] | None = None,
                    *, webhooks: bool = True) -> tuple[str, str]:
    """A new database `<name_prefix><random hex>` holding IEM's fixture tables under `table_prefix`
    (`webhooks=False`: an IEM before 6.5.1, without its webhook tables), filled by
    `fill(connection, tables)` if given, and our ledger (`pmtabounce setup`); (name, URL)."""
    name = f"{name_prefix}{uuid.uuid4().hex[:12]}"
    server = admin_connection(mysql_server)
    try:
        with server.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    finally:
        server.close()
    url = f"{mysql_server}/{name}"
    tables = Tables(table_prefix)
    connection = connect(parse_mysql_url(url))
    try:
        create_iem_tables(connection.cursor(), tables, webhooks=webhooks)
        connection.commit()
        if fill is not None:
            fill(connection, tables)
    finally:
        connection.close()
    setup_database(Settings(mysql_url=url, table_prefix=table_prefix))
    return name, url


def drop_databases(mysql_server: str, names: list[str]) -> None:
    server = admin_connection(mysql_server)
    try:
        with server.cursor() as cursor:
            for name in names:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        server.close()


def rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    tool = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    return subprocess.run([tool, "-q", *args], check=check, capture_output=True, text=True, timeout=120)


def add_vhost(amqp_server: str, name_prefix: str) -> tuple[str, str]:
    """A new vhost `<name_prefix><random hex>` where the server URL's user may do everything; (name, URL)."""
    name = f"{name_prefix}{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, urlsplit(amqp_server).username or "guest", ".*", ".*", ".*")
    return name, f"{amqp_server}/{name}"


def delete_vhost(name: str) -> None:
    rabbitmqctl("delete_vhost", name)
