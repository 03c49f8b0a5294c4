"""Administering MariaDB from a test: SQL as its root (rabbitmqctl is in throwaway.py)."""

from __future__ import annotations

import pymysql
from pmtabounce.common.config import parse_mysql_url
from throwaway import MYSQL_URL


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
