"""The subscriber lookup's short answer and the statement text, against the real server (issue 20).

The lookup reads its rows as one GROUP_CONCAT answer and locks them with a COUNT; both have a slower
path (a cut answer, a row changed meanwhile) that must give the same rows. Our own binding of values
(store/db.py) must store every awkward value as it is, in both of the server's escaping modes.
"""

from __future__ import annotations

import pytest
from iem_seed import AWKWARD, Seed
from pmtabounce.store import iem
from pmtabounce.store.db import insert_rows

ADDRESSES = [f"user{i}@example.com" for i in range(60)]


@pytest.fixture
def seeded(iem_db):
    seed = Seed(iem_db)
    seed.lists(3, 4, 5)
    for i, email in enumerate(ADDRESSES):
        for listid in (3, 4, 5):
            if (i + listid) % 4:
                seed.subscriber(email, listid, bounced=1 if (i * listid) % 7 == 0 else 0)
    return iem_db


def lookup(db, emails, list_ids, *, concat_max: int | None = None):
    connection = db.connect()
    try:
        with connection.cursor() as cursor:
            if concat_max is not None:
                cursor.execute("SET SESSION group_concat_max_len = %s", (concat_max,))
            lookups = iem.find_lookups(cursor, db.tables)
            return iem.find_active_subscribers(cursor, db.tables, emails, list_ids, lookups)
    finally:
        connection.rollback()
        connection.close()


def expected(db, emails, list_ids):
    rows = db.query("SELECT emailaddress, subscriberid, listid FROM {t.subscribers} WHERE bounced = 0 "
                    "AND unsubscribed = 0 ORDER BY subscriberid")
    wanted = {e.lower(): e for e in emails}
    return [(wanted[e.lower()], sid, listid) for e, sid, listid in rows
            if e.lower() in wanted and (list_ids is None or listid in list_ids)]


@pytest.mark.parametrize("list_ids", [None, [3, 5]])
def test_a_cut_group_concat_answer_is_asked_again_row_by_row(seeded, list_ids):
    emails = sorted(e.upper() if i % 3 == 0 else e for i, e in enumerate(ADDRESSES))  # IEM's collation
    want = expected(seeded, emails, list_ids)
    assert len(want) > 50
    for concat_max in (None, 4, 64, 500):  # ours (1 MB), then cut after 4, 64, 500 bytes: mid-number too
        found = lookup(seeded, emails, list_ids, concat_max=concat_max)
        assert [(c.email, c.subscriberid, c.listid) for c in found] == want, concat_max


def test_a_row_disabled_between_the_lookup_and_its_lock_is_left_out(seeded):
    emails = sorted(ADDRESSES)
    want = expected(seeded, emails, None)
    victim = want[len(want) // 2][1]
    connection = seeded.connect()
    try:
        with connection.cursor() as cursor:
            lookups = iem.find_lookups(cursor, seeded.tables)
            execute = cursor.execute

            def execute_after_another_commit(query, args=None):
                if query.startswith("SELECT COUNT(*)"):  # the lock: another connection disables a row first
                    seeded.query("UPDATE {t.subscribers} SET bounced = 5 WHERE subscriberid = %s", (victim,))
                return execute(query, args)

            cursor.execute = execute_after_another_commit
            found = iem.find_active_subscribers(cursor, seeded.tables, emails, None, lookups)
    finally:
        connection.rollback()
        connection.close()
    assert [c.subscriberid for c in found] == [sid for _, sid, _ in want if sid != victim]


@pytest.mark.parametrize("sql_mode", ["", "NO_BACKSLASH_ESCAPES"])
def test_awkward_values_are_stored_as_they_are(iem_db, sql_mode):
    connection = iem_db.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = %s", (sql_mode,))
            cursor.execute("CREATE TEMPORARY TABLE awkward (n int, a text, b text) CHARSET utf8mb4")
            rows = [(i, value, None if i % 2 else value + "'") for i, value in enumerate(AWKWARD)]
            insert_rows(cursor, "INSERT INTO awkward (n, a, b) VALUES ", rows)
            cursor.execute("SELECT n, a, b FROM awkward ORDER BY n")
            assert [tuple(row) for row in cursor.fetchall()] == rows
            cursor.execute("SELECT n FROM awkward WHERE (a, n) IN (" + ", ".join(["(%s, %s)"] * len(rows)) + ")",
                           [v for n, a, _ in rows for v in (a, n)])
            assert sorted(row[0] for row in cursor.fetchall()) == list(range(len(rows)))
    finally:
        connection.rollback()
        connection.close()


def test_a_row_that_group_concat_would_skip_is_still_found(seeded):
    """GROUP_CONCAT leaves out a row with a NULL: the count says so, and the rows are read one by one."""
    seeded.query("ALTER TABLE {t.subscribers} MODIFY listid int(11) DEFAULT NULL")
    seeded.query("INSERT INTO {t.subscribers} (listid, emailaddress, domainname, format, confirmed, subscribedate, "
                 "bounced, unsubscribed) VALUES (NULL, 'user1@example.com', 'example.com', 'h', '1', 1, 0, 0)")
    found = lookup(seeded, ["user1@example.com"], None)
    assert None in [c.listid for c in found]
    assert len(found) == len(expected(seeded, ["user1@example.com"], None))


def test_the_guards_windows_read_in_one_row_per_domain_or_row_by_row_alike(iem_db):
    from pmtabounce.store import guard_store

    windows = {"a.example": {1000: 3, 1600: 7, 2200: 1}, "b.example": {}, "c.example": {1600: 12}}
    for domain, counts in windows.items():
        iem_db.query("INSERT INTO {t.guard_domains} (domain, tripped_at) VALUES (%s, %s)",
                     (domain, 5 if domain == "c.example" else None))
        for start, count in counts.items():
            iem_db.query("INSERT INTO {t.guard_windows} (domain, window_start, hard_count, tripped) "
                         "VALUES (%s, %s, %s, %s)", (domain, start, count, int(count > 10)))
    results = []
    for concat_max in (None, 5, 12):  # ours, then cut inside a domain's numbers
        connection = iem_db.connect()
        try:
            with connection.cursor() as cursor:
                if concat_max is not None:
                    cursor.execute("SET SESSION group_concat_max_len = %s", (concat_max,))
                states = guard_store.read_states(cursor, iem_db.tables, sorted(windows) + ["d.example"], 1600, 2200,
                                                 history=False)
        finally:
            connection.close()
        results.append({d: (s.tripped, dict(s.counts), sorted(s.tripped_windows)) for d, s in states.items()})
    assert results[0] == {
        "a.example": (False, {1600: 7, 2200: 1}, []),
        "b.example": (False, {}, []),
        "c.example": (True, {1600: 12}, [1600]),
        "d.example": (False, {}, []),  # no row at all
    }
    assert results[1] == results[0] and results[2] == results[0]


@pytest.mark.parametrize("concat_max", [None, 6])
def test_bounce_rows_and_campaign_tables_read_in_one_row_or_row_by_row_alike(iem_db, concat_max):
    seed = Seed(iem_db)
    seed.newsletter(42)
    seed.newsletter(43)
    seed.autoresponder(43)  # in both: IEM looks in the autoresponders first
    seed.autoresponder(44)
    for sid, statid, listid in [(7, 42, 3), (7, 42, 3), (7, 43, 3), (8, 44, 4), (9, 42, 3)]:
        seed.bounce_row(sid, statid, listid)
    iem_db.query("INSERT INTO {t.bounces} (subscriberid, statid, listid, bouncetime) VALUES (8, NULL, 4, 1)")
    connection = iem_db.connect()
    try:
        with connection.cursor() as cursor:
            if concat_max is not None:
                cursor.execute("SET SESSION group_concat_max_len = %s", (concat_max,))
            rows = iem.existing_bounces(cursor, iem_db.tables, [8, 7, 99])
            tables = iem.stats_tables(cursor, iem_db.tables, [42, 43, 44, 45, 0])
    finally:
        connection.close()
    assert sorted(rows, key=repr) == sorted([(7, 42, 3, 2), (7, 43, 3, 1), (8, 44, 4, 1), (8, None, 4, 1)], key=repr)
    assert tables == {42: "newsletters", 43: "autoresponders", 44: "autoresponders"}
