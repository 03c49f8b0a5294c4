"""Administering the real services from a test: SQL as MariaDB's root, and rabbitmqctl."""

from __future__ import annotations

import shutil
import subprocess

import pymysql
from conftest import MYSQL_URL
from pmtabounce.common.config import parse_mysql_url


def as_root(sql: str, params: tuple | None = None, database: str | None = None) -> list[tuple]:
    """One statement as the administrator of PMTABOUNCE_TEST_MYSQL_URL (users, grants, tables); its rows."""
    admin = parse_mysql_url(MYSQL_URL)
    connection = pymysql.connect(host=admin.host, port=admin.port, user=admin.user, password=admin.password,
                                 unix_socket=admin.unix_socket, database=database, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
    finally:
        connection.close()


def rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    tool = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    return subprocess.run([tool, "-q", *args], check=check, capture_output=True, text=True, timeout=120)
