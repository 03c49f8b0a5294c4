"""Our statement text is PyMySQL's, byte for byte (store/db.py: BindingCursor, literals, insert_rows).

They escape a statement's values in one call instead of one per value (issue 20); these tests hold the
result to what PyMySQL's own Cursor and escape_string write, for every kind of value we send, in both
of the server's escaping modes.
"""

from __future__ import annotations

import random

import pymysql
import pytest
from iem_seed import AWKWARD
from pmtabounce.store.db import SEPARATOR, BindingCursor, escape_backslashes, insert_rows, literals, numbers_of
from pymysql.constants import SERVER_STATUS


def connection(no_backslash_escapes: bool) -> pymysql.connections.Connection:
    """A PyMySQL connection that never connects, in the given escaping mode (what the server reports)."""
    conn = pymysql.connections.Connection(defer_connect=True)
    conn.server_status = SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES if no_backslash_escapes else 0
    return conn


def random_values(rng: random.Random, count: int) -> list:
    values: list = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.4:
            values.append(rng.choice(AWKWARD) + "".join(rng.choice("ab'\\\"\0\n\r\x1a%\x01\x02é")
                                                         for _ in range(rng.randrange(4))))
        elif kind < 0.8:
            values.append(rng.randrange(-10**12, 10**12))
        else:
            values.append(None)
    return values


@pytest.mark.parametrize("no_backslash_escapes", [False, True])
@pytest.mark.parametrize("seed", range(40))
def test_a_statements_parameters_are_bound_as_pymysql_binds_them(seed, no_backslash_escapes):
    conn = connection(no_backslash_escapes)
    values = random_values(random.Random(seed), 1 + seed * 5)
    query = "SELECT " + ", ".join(["%s"] * len(values)) + " FROM t WHERE x LIKE 'a%%'"
    ours = BindingCursor(conn).mogrify(query, values)
    assert ours == pymysql.cursors.Cursor(conn).mogrify(query, values)
    assert BindingCursor(conn).mogrify(query, tuple(values)) == ours


@pytest.mark.parametrize("values", [
    [1, 2, 3], ["a", "b"], [None], [0, "0", None, -5, ""], AWKWARD,
])
def test_literals_are_pymysqls_escape_of_each_value(values):
    conn = connection(False)
    texts = literals(values, lambda text: conn._escape_string(text))
    if texts is None:  # a value holds the separator: the caller goes value by value
        assert any(SEPARATOR in v for v in values if isinstance(v, str))
    else:
        assert texts == [conn.escape(v) for v in values]


@pytest.mark.parametrize("odd", [True, 1.5, b"bytes", [1, 2]])
def test_values_of_other_types_are_left_to_pymysql(odd):
    conn = connection(False)
    assert literals([1, odd, "a"], conn._escape_string) is None
    query = "SELECT %s, %s, %s"
    assert BindingCursor(conn).mogrify(query, [1, odd, "a"]) == pymysql.cursors.Cursor(conn).mogrify(
        query, [1, odd, "a"])


def test_a_wrong_number_of_parameters_is_pymysqls_error():
    conn = connection(False)
    with pytest.raises(pymysql.err.ProgrammingError):
        BindingCursor(conn).mogrify("SELECT %s, %s", [1])


class Recording:
    """A cursor that keeps the statements it is given."""

    def __init__(self, conn) -> None:
        self.connection = conn
        self.statements: list[str] = []

    def execute(self, query, args=None):
        assert args is None
        self.statements.append(query)
        return 0


@pytest.mark.parametrize("no_backslash_escapes", [False, True])
@pytest.mark.parametrize("seed", range(20))
def test_insert_rows_writes_pymysqls_executemany_text(seed, no_backslash_escapes):
    conn = connection(no_backslash_escapes)
    rng = random.Random(seed)
    width = rng.randrange(1, 8)
    rows = [random_values(rng, width) for _ in range(rng.randrange(1, 60))]
    cursor = Recording(conn)
    insert_rows(cursor, "INSERT INTO t (a) VALUES ", rows, suffix=" ON DUPLICATE KEY UPDATE a = a")
    expected = "INSERT INTO t (a) VALUES " + ",".join(
        "(" + ",".join(conn.escape(v) for v in row) + ")" for row in rows) + " ON DUPLICATE KEY UPDATE a = a"
    assert cursor.statements == [expected]


def test_insert_rows_splits_a_long_insert_into_statements_each_complete(monkeypatch):
    import pmtabounce.store.db as db

    monkeypatch.setattr(db, "MAX_STATEMENT", 200)
    conn = connection(False)
    rows = [(i, f"row'{i}", None) for i in range(40)]
    cursor = Recording(conn)
    insert_rows(cursor, "INSERT INTO t VALUES ", rows)
    assert len(cursor.statements) > 1
    assert all(len(s) <= 200 for s in cursor.statements)
    values = ",".join(s.removeprefix("INSERT INTO t VALUES ") for s in cursor.statements)
    assert values == ",".join("(" + ",".join(conn.escape(v) for v in row) + ")" for row in rows)


@pytest.mark.parametrize("odd", [True, 2.5, b"x"])
def test_insert_rows_refuses_other_types(odd):
    with pytest.raises(TypeError, match="insert_rows takes str, int and None"):
        insert_rows(Recording(connection(False)), "INSERT INTO t VALUES ", [(1, odd)])


@pytest.mark.parametrize("seed", range(30))
def test_escape_backslashes_is_pymysqls_escape_string(seed):
    from pymysql.converters import escape_string

    rng = random.Random(seed)
    alphabet = "ab \\\0\n\r\x1a\"'%é\U0001F600\x01\x7f"
    text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(200)))
    assert escape_backslashes(text) == escape_string(text)
    assert escape_backslashes("".join(AWKWARD)) == escape_string("".join(AWKWARD))


@pytest.mark.parametrize(("answer", "rows"), [
    ((0, None, None), []),  # no rows
    ((2, 7, "1 2 3 4"), [(1, 2), (3, 4)]),
    ((2, 7, b"1 2 3 4"), [(1, 2), (3, 4)]),  # a server that answers in bytes
    ((2, 7, "1 2 3 "), None),  # cut: shorter than its length
    ((3, 7, "1 2 3 4"), None),  # a row GROUP_CONCAT skipped (a NULL): fewer numbers than rows
    ((1, None, None), None),  # the only row skipped
])
def test_numbers_of_takes_only_a_whole_answer(answer, rows):
    assert numbers_of(answer, 2) == rows
