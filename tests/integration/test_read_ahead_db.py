"""`process` reads each batch's lock-free part ahead, on the reader thread (worker/apply.py Ahead, issue 20).

What was read ahead may be stale by the batches committed in between: their ledger rows and the rows
they disabled. These tests read a batch ahead, commit the batch before it, and show the batch then
applies exactly as a batch that read everything in its own transaction, without a retry.
"""

from __future__ import annotations

import pytest
from iem_seed import T0, Seed, bounce, complaint
from pmtabounce.common.config import parse_mysql_url
from pmtabounce.common.policy import Policy
from pmtabounce.store import ledger
from pmtabounce.worker import apply as apply_module
from pmtabounce.worker.apply import BatchApplier, ReadsAhead


@pytest.fixture
def world(iem_db):
    seed = Seed(iem_db)
    seed.lists(3, 4)
    seed.newsletter(42)
    seed.autoresponder(43)
    for email in ("ann@example.com", "bob@example.com", "cy@example.com"):
        seed.subscriber(email, 3)
        seed.subscriber(email, 4)
    return iem_db


@pytest.fixture
def applier(world):
    applier = BatchApplier(world.target, world.tables, Policy(), retry_max_wait=0.5, give_up_after=30)
    yield applier
    applier.close()


@pytest.fixture
def ahead(applier):
    reader = ReadsAhead(applier)
    yield reader
    reader.close()


@pytest.fixture
def own_reads(monkeypatch):
    """How often the applier read the ledger for itself (a retry, or no Ahead, does)."""
    calls = []
    real = ledger.known

    def known(cursor, t, records):
        calls.append(len(records))
        return real(cursor, t, records)

    monkeypatch.setattr(apply_module.ledger, "known", known)
    return calls


def outcomes(result):
    assert result.failed == []
    return [(o.outcome, o.record.rcpt, o.subscriberid, o.listid) for o in result.outcomes]


def test_a_record_the_batch_before_committed_is_a_repeat_without_a_retry(world, applier, ahead, own_reads):
    first = [bounce("soft", "ann@example.com", lists=(3,), time=T0)]
    second = [first[0], bounce("soft", "bob@example.com", lists=(3,), time=T0 + 1)]
    read = ahead.read(second)  # before the first batch commits: the ledger does not hold ann's record yet
    assert read is not None and read.known == frozenset()
    own_reads.clear()
    applier.apply(first)
    result = applier.apply(second, ahead=read)
    assert [o[0] for o in outcomes(result)] == ["duplicate", "applied"]
    assert own_reads == [1]  # the first batch's own read; the second took the Ahead and was not retried
    assert applier.ahead_used == 1 and applier.ahead_refused == 0
    assert world.query("SELECT seen_count FROM {t.ledger} WHERE email = 'ann@example.com'") == [(2,)]


def test_a_row_the_batch_before_disabled_is_left_out(world, applier, ahead):
    first = [bounce("hard", "ann@example.com", lists=(3, 4), time=T0)]
    second = [bounce("hard", "ann@example.com", lists=(3, 4), time=T0 + 60, statid=43),
              complaint("bob@example.com", lists=(3,), time=T0 + 61)]
    read = ahead.read(second)
    assert {c.email for c in read.candidates} == {"ann@example.com"} and len(read.candidates) == 2
    assert read.stats_tables == {42: "newsletters", 43: "autoresponders"}
    assert [o[:4] for o in outcomes(applier.apply(first))] == [("disabled", "ann@example.com", 1, 3)]
    result = applier.apply(second, ahead=read)
    # ann's row on list 3 was found ahead, then disabled by the first batch: the bounce takes her row on list 4
    assert outcomes(result) == [("disabled", "ann@example.com", 2, 4), ("unsubscribed", "bob@example.com", 3, 3)]
    # exactly what the same batches give with every read made in the transaction
    expected = world.query("SELECT subscriberid, bounced, unsubscribed FROM {t.subscribers} ORDER BY subscriberid")
    counts = world.query("SELECT listid, subscribecount, bouncecount, unsubscribecount FROM {t.lists} ORDER BY listid")
    bounces = world.query("SELECT subscriberid, statid, listid, bouncetype FROM {t.bounces} ORDER BY bounceid")
    world.query("DELETE FROM {t.ledger}")
    world.query("DELETE FROM {t.bounces}")
    world.query("DELETE FROM {t.unsubscribes}")
    world.query("UPDATE {t.subscribers} SET bounced = 0, unsubscribed = 0, unsubscribeconfirmed = '0'")
    world.query("UPDATE {t.lists} SET subscribecount = 100, bouncecount = 0, unsubscribecount = 7")
    applier.apply(first)
    assert outcomes(applier.apply(second)) == outcomes(result)
    assert world.query("SELECT subscriberid, bounced, unsubscribed FROM {t.subscribers} "
                       "ORDER BY subscriberid") == expected
    assert world.query("SELECT listid, subscribecount, bouncecount, unsubscribecount FROM {t.lists} "
                       "ORDER BY listid") == counts
    assert world.query("SELECT subscriberid, statid, listid, bouncetype FROM {t.bounces} ORDER BY bounceid") == bounces


def test_a_known_records_rows_are_not_locked_or_read(world, applier, ahead, monkeypatch):
    """The Ahead looked up every bounce's address; the batch locks only the rows of the records not known."""
    applier.apply([bounce("soft", "cy@example.com", lists=(4,), time=T0)])
    batch = [bounce("soft", "cy@example.com", lists=(4,), time=T0), bounce("soft", "bob@example.com", lists=(3,))]
    read = ahead.read(batch)
    assert {c.email for c in read.candidates} == {"cy@example.com", "bob@example.com"}
    locked = []
    real = apply_module.iem.lock_active

    def lock_active(cursor, t, found):
        locked.append([(c.email, c.listid) for c in found])
        return real(cursor, t, found)

    monkeypatch.setattr(apply_module.iem, "lock_active", lock_active)
    result = applier.apply(batch, ahead=read)
    assert [o[0] for o in outcomes(result)] == ["duplicate", "applied"]
    assert [rows for rows in locked if rows] == [[("bob@example.com", 3)]]  # then the complaints' (none)


def test_an_ahead_of_other_records_or_too_old_is_refused(world, applier, ahead, own_reads):
    read = ahead.read([bounce("soft", "ann@example.com")])
    result = applier.apply([bounce("soft", "bob@example.com")], ahead=read)
    assert [o[0] for o in outcomes(result)] == ["applied"]
    assert applier.ahead_refused == 1 and applier.ahead_used == 0
    old = ahead.read([bounce("soft", "cy@example.com", time=T0 + 5)])
    for i in range(apply_module.AHEAD_KEPT + 1):  # more batches than are remembered
        applier.apply([bounce("soft", "ann@example.com", time=T0 + 10 + i)])
    own_reads.clear()
    applier.apply([bounce("soft", "cy@example.com", time=T0 + 5)], ahead=old)
    assert applier.ahead_refused == 2 and own_reads == [1]


def test_a_database_that_does_not_answer_pauses_the_reading_ahead(world, applier, caplog, monkeypatch):
    silent = BatchApplier(parse_mysql_url("mysql://root@127.0.0.1:9/test"), world.tables, Policy())
    reader = ReadsAhead(silent)
    tries = []
    real = reader.database.transaction
    monkeypatch.setattr(reader.database, "transaction", lambda **kw: tries.append(1) or real(**kw))
    try:
        with caplog.at_level("INFO", logger="pmtabounce.worker"):
            assert reader.read([bounce("soft")]) is None
        assert "for 30 s each batch reads for itself: slower, as exact" in caplog.text
        assert "PMTABOUNCE_MYSQL_URL" not in caplog.text  # the URL works for the batches: not the thing to check
        assert reader.read([bounce("soft")]) is None and tries == [1]  # paused: no second try meanwhile
        reader.paused_until = 0.0  # the pause is over
        assert reader.read([bounce("soft")]) is None and tries == [1, 1]
    finally:
        reader.close()



def test_a_row_given_another_address_after_it_was_found_is_left_out(world, applier, ahead):
    batch = [bounce("hard", "ann@example.com", lists=(3,))]
    read = ahead.read(batch)
    world.query("UPDATE {t.subscribers} SET emailaddress = 'zed@example.com' WHERE emailaddress = 'ann@example.com'")
    assert [o[:3] for o in outcomes(applier.apply(batch, ahead=read))] == [("not_found", "ann@example.com", None)]
    assert world.query("SELECT COUNT(*) FROM {t.subscribers} WHERE emailaddress = 'zed@example.com' "
                       "AND bounced = 0") == [(2,)]


def test_a_row_found_by_another_case_of_its_address_is_kept(world, applier, ahead):
    batch = [bounce("hard", "ANN@Example.com", lists=(3,))]
    read = ahead.read(batch)
    world.query("UPDATE {t.subscribers} SET bounced = 9 WHERE emailaddress = 'bob@example.com'")  # a change elsewhere
    assert [o[:4] for o in outcomes(applier.apply(batch, ahead=read))] == [("disabled", "ANN@Example.com", 1, 3)]


def test_an_ahead_read_too_long_ago_is_refused(world, applier, ahead, own_reads, monkeypatch):
    batch = [bounce("soft", "bob@example.com")]
    read = ahead.read(batch)
    monkeypatch.setattr(apply_module, "AHEAD_SECONDS", 0.0)
    own_reads.clear()
    assert [o[0] for o in outcomes(applier.apply(batch, ahead=read))] == ["applied"]
    assert applier.ahead_refused == 1 and own_reads == [1]


def test_a_batch_whose_commit_answer_was_lost_is_still_remembered(world, applier, ahead, own_reads):
    """The commit went through but its answer was lost: the retry finds every record in the ledger. The
    batch after, read ahead before it, must count those records as known, not find them by a duplicate key."""
    import pymysql

    applier.apply([bounce("soft", "cy@example.com", time=T0 - 100)])  # connects
    connection = applier.database._connection
    real_commit, lost = connection.commit, []

    def commit():
        real_commit()
        if not lost:
            lost.append(1)
            raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")

    connection.commit = commit
    first = [bounce("soft", "ann@example.com", time=T0)]
    second = [first[0], bounce("soft", "bob@example.com", time=T0 + 1)]
    read = ahead.read(second)
    assert [o[0] for o in outcomes(applier.apply(first))] == ["duplicate"]  # the retry met its own commit
    own_reads.clear()
    assert [o[0] for o in outcomes(applier.apply(second, ahead=read))] == ["duplicate", "applied"]
    assert own_reads == []  # the Ahead served, no retry
