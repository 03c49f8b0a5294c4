"""Writes sent without waiting for their answers (store/db.py writes_behind), against the real server (issue 20).

A batch's writes go out one after another and their answers are read at the next statement with a result or
at the block's end. What must hold: every answer is read in order (PyMySQL checks each answer's sequence
number), the first error the server answered is the one raised, the connection stays in step for the
ROLLBACK that follows an error, nothing is committed of a block that failed, and a lost connection is said
at once.
"""

from __future__ import annotations

import threading

import pymysql
import pytest
from pmtabounce.store.db import catch_up, writes_behind

TABLE = "pmtabounce_behind_test"


@pytest.fixture
def table(iem_db):
    iem_db.query(f"CREATE TABLE {TABLE} (id int NOT NULL PRIMARY KEY, note varchar(8) NOT NULL) ENGINE=InnoDB")
    return iem_db


def rows(db) -> list[tuple]:
    return db.query(f"SELECT id, note FROM {TABLE} ORDER BY id")


def test_many_writes_are_answered_in_order_and_commit(table):
    connection = table.connect()
    try:
        with connection.cursor() as cursor, writes_behind(cursor):
            for i in range(60):  # each answer's sequence number is checked: a wrong one raises at once
                assert cursor.execute(f"INSERT INTO {TABLE} (id, note) VALUES (%s, %s)", (i, f"n{i}")) == -1
                assert cursor.rowcount == -1  # not known until the answers are read
            cursor.execute(f"UPDATE {TABLE} SET note = 'x' WHERE id < 10")
            cursor.execute(f"DELETE FROM {TABLE} WHERE id >= 50")
        connection.commit()
    finally:
        connection.close()
    assert rows(table) == [(i, "x" if i < 10 else f"n{i}") for i in range(50)]


def test_a_read_in_the_block_sees_the_writes_sent_before_it(table):
    connection = table.connect()
    try:
        with connection.cursor() as cursor, writes_behind(cursor):
            cursor.execute(f"INSERT INTO {TABLE} (id, note) VALUES (1, 'a'), (2, 'b')")
            cursor.execute(f"UPDATE {TABLE} SET note = 'c' WHERE id = 2")
            cursor.execute(f"SELECT note FROM {TABLE} ORDER BY id")
            assert cursor.fetchall() == (("a",), ("c",))
            cursor.execute(f"INSERT INTO {TABLE} (id, note) VALUES (3, 'd')")
            catch_up(cursor)
            cursor.execute(f"SELECT COUNT(*) FROM {TABLE}")
            assert cursor.fetchone() == (3,)
        connection.rollback()
    finally:
        connection.close()
    assert rows(table) == []


def test_the_first_error_is_raised_after_every_answer_is_read_and_nothing_commits(table):
    table.query(f"INSERT INTO {TABLE} (id, note) VALUES (1, 'kept')")
    connection = table.connect()
    try:
        with connection.cursor() as cursor:
            with pytest.raises(pymysql.err.IntegrityError) as raised, writes_behind(cursor):
                cursor.execute(f"INSERT INTO {TABLE} (id, note) VALUES (2, 'a')")
                cursor.execute(f"INSERT INTO {TABLE} (id, note) VALUES (1, 'dup')")  # the first error: 1062
                cursor.execute(f"INSERT INTO {TABLE} (id, note) VALUES (3, 'too long a note')")  # 1406 after it
                cursor.execute(f"INSERT INTO {TABLE} (id, note) VALUES (4, 'b')")  # executed meanwhile
            assert raised.value.args[0] == 1062
            connection.rollback()  # in step: ROLLBACK reads its own answer, not one owed
            cursor.execute("SELECT 42")
            assert cursor.fetchone() == (42,)
    finally:
        connection.close()
    assert rows(table) == [(1, "kept")]


def test_an_error_of_ours_in_the_block_reads_what_is_owed_before_it_is_raised(table):
    connection = table.connect()
    try:
        with connection.cursor() as cursor:
            with pytest.raises(ZeroDivisionError), writes_behind(cursor):
                cursor.execute(f"INSERT INTO {TABLE} (id, note) VALUES (1, 'a')")
                cursor.execute(f"INSERT INTO {TABLE} (id, note) VALUES (1, 'dup')")  # its error is not ours
                1 / 0  # noqa: B018
            connection.rollback()
            cursor.execute(f"SELECT COUNT(*) FROM {TABLE}")
            assert cursor.fetchone() == (0,)
    finally:
        connection.close()


def test_a_connection_killed_while_writes_are_owed_is_said_at_once(table):
    other = table.connect()
    connection = table.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            (ident,) = cursor.fetchone()
            # the third write waits for a lock the other connection holds; it is killed while it waits
            with other.cursor() as held:
                held.execute(f"INSERT INTO {TABLE} (id, note) VALUES (7, 'other')")
            killer = threading.Timer(0.5, lambda: table.query("KILL %s", (ident,)))
            killer.start()
            try:
                with pytest.raises(pymysql.err.OperationalError), writes_behind(cursor):
                    cursor.execute(f"INSERT INTO {TABLE} (id, note) VALUES (1, 'a')")
                    cursor.execute(f"INSERT INTO {TABLE} (id, note) VALUES (2, 'b')")
                    cursor.execute(f"INSERT INTO {TABLE} (id, note) VALUES (7, 'waits')")
                    cursor.execute(f"INSERT INTO {TABLE} (id, note) VALUES (8, 'c')")
            finally:
                killer.join()
            assert not connection.open  # closed: the next transaction connects again
    finally:
        other.rollback()
        other.close()
        connection.close()
    assert rows(table) == []


def test_a_block_inside_a_block_is_one_block(table):
    connection = table.connect()
    try:
        with connection.cursor() as cursor, writes_behind(cursor):
            cursor.execute(f"INSERT INTO {TABLE} (id, note) VALUES (1, 'a')")
            with writes_behind(cursor):
                cursor.execute(f"INSERT INTO {TABLE} (id, note) VALUES (2, 'b')")
            assert cursor.behind is not None and len(cursor.behind) == 2  # the inner block read nothing
        connection.commit()
    finally:
        connection.close()
    assert rows(table) == [(1, "a"), (2, "b")]
