"""PyMySQL's exceptions, built as PyMySQL raises them, translated into our kinds (store/db.py)."""

import struct

import pymysql
import pytest
from pmtabounce.common.errors import CommittedElsewhere, FatalError, PermanentError, TransientError
from pmtabounce.store.db import translate
from pymysql.constants import CR


def server_error(code: int, message: str, sqlstate: str = "HY000") -> pymysql.err.MySQLError:
    """The exception PyMySQL raises for a server's ERR packet (pymysql.err.raise_mysql_exception)."""
    packet = b"\xff" + struct.pack("<h", code) + b"#" + sqlstate.encode() + message.encode()
    try:
        pymysql.err.raise_mysql_exception(packet)
    except pymysql.err.MySQLError as exc:
        return exc
    raise AssertionError("raise_mysql_exception did not raise")


CASES = [
    # (exception as PyMySQL raises it, our kind, words the message must hold)
    (server_error(1213, "Deadlock found when trying to get lock", "40001"), TransientError, "1213"),
    (server_error(1205, "Lock wait timeout exceeded; try restarting transaction"), TransientError, "1205"),
    (server_error(1040, "Too many connections", "08004"), TransientError, "1040"),
    (server_error(1290, "The MariaDB server is running with the --read-only option"), TransientError, "1290"),
    (server_error(1927, "Connection was killed", "70100"), TransientError, "1927"),
    (pymysql.err.OperationalError(CR.CR_CONN_HOST_ERROR, "Can't connect to MySQL server on '10.0.0.1'"),
     TransientError, "2003"),
    (pymysql.err.OperationalError(CR.CR_SERVER_LOST, "Lost connection to MySQL server during query"),
     TransientError, "2013"),
    (pymysql.err.InterfaceError(0, ""), TransientError, "connection lost"),
    (ConnectionResetError(104, "Connection reset by peer"), TransientError, "connection lost"),
    (server_error(1062, "Duplicate entry 'ab12' for key 'pmtabounce_ledger_fingerprint'", "23000"),
     CommittedElsewhere, "1062"),
    (server_error(1062, "Duplicate entry '7' for key 'PRIMARY'", "23000"), PermanentError, "1062"),
    (server_error(1045, "Access denied for user 'iem'@'localhost' (using password: YES)", "28000"),
     FatalError, "1045"),
    (server_error(1049, "Unknown database 'iem'", "42000"), FatalError, "1049"),
    (server_error(1142, "INSERT command denied to user 'iem'@'localhost' for table 'email_x'", "42000"),
     FatalError, "1142"),
    (server_error(1146, "Table 'iem.email_lists' doesn't exist", "42S02"), FatalError, "1146"),
    (server_error(1054, "Unknown column 'x' in 'field list'", "42S22"), FatalError, "1054"),
    (pymysql.err.OperationalError(CR.CR_SSL_CONNECTION_ERROR, "SSL is required but the server doesn't support it"),
     FatalError, "2026"),
    (pymysql.err.OperationalError(CR.CR_CONN_HOST_ERROR, "Can't connect to MySQL server on 'db' ([SSL: "
                                  "CERTIFICATE_VERIFY_FAILED] certificate verify failed (_ssl.c:1006))"),
     FatalError, "CERTIFICATE_VERIFY_FAILED"),
    (server_error(1406, "Data too long for column 'email' at row 1", "22001"), PermanentError, "1406"),
    (server_error(1366, "Incorrect string value: '\\xF0\\x9F' for column 'email'", "22007"), PermanentError, "1366"),
]


@pytest.mark.parametrize("raised, kind, words", CASES, ids=[f"{type(c[0]).__name__}-{c[2]}" for c in CASES])
def test_pymysql_errors_become_our_kinds(raised, kind, words):
    error = translate(raised)
    assert type(error) is kind
    assert words in str(error)


def test_the_ledger_race_is_still_retried():
    race = translate(server_error(1062, "Duplicate entry 'x' for key 'pmtabounce_ledger_fingerprint'", "23000"))
    assert isinstance(race, TransientError)


def test_other_exceptions_pass_through():
    bug = KeyError("plan")
    assert translate(bug) is bug
