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


def test_a_batch_with_webhooks_reads_before_it_sends_its_writes(iem_db, monkeypatch):
    """worker/apply.py: the events' reads (the lists' webhooks, the rows' names) are made before the batch's
    writes go out behind, so that no read waits for the writes. The calls are those a read after the writes
    would have built (the rows are locked; the writes change neither address nor list name).
    The answers owed are read twice: before the shared counters, and at the end."""
    from iem_seed import T0, Seed, bounce
    from pmtabounce.common.guard import GuardSettings
    from pmtabounce.common.policy import Policy
    from pmtabounce.store import db as db_module
    from pmtabounce.store.events import Events
    from pmtabounce.worker.apply import BatchApplier

    seed = Seed(iem_db)
    seed.lists(3, 4)
    seed.newsletter(42)
    for listid in (3, 4):
        seed.webhook(listid, 3, f"http://127.0.0.1:9/bounce-{listid}")
    emails = [f"user{i}@example.com" for i in range(6)]
    for email in emails:
        seed.subscriber(email, 3)
        seed.subscriber(email, 4)
    waits: list[int] = []
    real = db_module.BindingCursor.catch_up

    def catch_up(self):
        if self.behind:
            waits.append(len(self.behind))
        return real(self)

    monkeypatch.setattr(db_module.BindingCursor, "catch_up", catch_up)
    applier = BatchApplier(iem_db.target, iem_db.tables, Policy(), retry_max_wait=0.5, give_up_after=30,
                           guard=GuardSettings(enabled=False), events=Events(iem_db.tables, stream=True, webhooks=True))
    try:
        result = applier.apply([bounce("hard", email, lists=(3, 4), time=T0 + n) for n, email in enumerate(emails)])
    finally:
        applier.close()
    assert [o.outcome for o in result.outcomes] == ["disabled"] * 6
    # the own rows (bounce rows, disable, ledger, outbox) waited for once, then the shared counters at the end
    assert len(waits) == 2 and waits[0] >= 4, waits
    calls = iem_db.query("SELECT url, body FROM {t.outbox} WHERE target = 'webhook' ORDER BY url, body")
    assert [url for url, _ in calls] == ["http://127.0.0.1:9/bounce-3"] * 6  # the lowest list's row is disabled
    assert all(f'"emailaddress":"user{n}@example.com"' in body for n, (_, body) in enumerate(calls))


def test_each_answer_owed_is_read_with_quick_acknowledgements(table, monkeypatch):
    """Through a relay that keeps Nagle's algorithm on, the answers owed came 40 ms apart (each held until
    the one before was acknowledged, and the kernel delays that while we send nothing): batches 3-4 times
    slower through socat or tests/tcp_proxy.py (measured: 8.5 s against 3.2 s before writes behind, 2.0 s
    with this). Linux's TCP_QUICKACK is asked before each answer, on the connection's own socket."""
    import socket

    from pmtabounce.store import db as db_module

    if db_module.QUICKACK is None:
        pytest.skip("TCP_QUICKACK is Linux's")
    asked: list[int] = []
    real = db_module._ack_at_once

    def ack_at_once(sock):
        asked.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))  # a TCP socket: it answers
        real(sock)

    monkeypatch.setattr(db_module, "_ack_at_once", ack_at_once)
    connection = table.connect()
    try:
        with connection.cursor() as cursor, writes_behind(cursor):
            for i in range(5):
                cursor.execute(f"INSERT INTO {TABLE} (id, note) VALUES (%s, 'q')", (i,))
        connection.commit()
    finally:
        connection.close()
    assert len(asked) == 5
    assert len(rows(table)) == 5
