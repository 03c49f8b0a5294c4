"""store/database.py's policies against a real server behind a proxy this test cuts: an outage after the
database was reached is waited out, each wait logged, until the give-up time or a stop request."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from pmtabounce.common.config import parse_mysql_url
from pmtabounce.common.errors import FatalError, GaveUp, StopRequested
from pmtabounce.store.database import ONE_SHOT, Database, WaitItOut
from tcp_proxy import TcpProxy


def count_ledger(session) -> int:
    session.cursor.execute(f"SELECT COUNT(*) FROM {session.tables.ledger}")
    return session.cursor.fetchone()[0]


@pytest.fixture
def proxy():
    proxy = TcpProxy("127.0.0.1", 3306)
    yield proxy
    proxy.close()


def through(proxy, iem_db, policy) -> Database:
    return Database(parse_mysql_url(proxy.url_for(iem_db.url)), iem_db.tables, policy,
                    log=logging.getLogger("pmtabounce.test"))


def test_a_mid_run_outage_is_waited_out_logged_and_bounded(iem_db, proxy, caplog):
    caplog.set_level(logging.INFO, logger="pmtabounce.test")
    database = through(proxy, iem_db, WaitItOut(max_wait=0.5, give_up_after=3.0, reach_at_once=True))
    assert database.run(count_ledger) == 0
    proxy.cut()
    started = time.monotonic()
    with pytest.raises(GaveUp):
        database.run(count_ledger)
    assert 3.0 <= time.monotonic() - started < 15
    assert any("database not available" in r.getMessage() for r in caplog.records)
    database.close()


def test_an_outage_ends_when_the_database_answers_again(iem_db, proxy):
    database = through(proxy, iem_db, WaitItOut(max_wait=0.5, give_up_after=60.0, reach_at_once=True))
    assert database.run(count_ledger) == 0
    proxy.cut()
    threading.Timer(2.0, proxy.restore).start()
    assert database.run(count_ledger) == 0
    database.close()


def test_a_stop_request_ends_the_wait(iem_db, proxy):
    stop = threading.Event()
    database = through(proxy, iem_db, WaitItOut(max_wait=0.5, stop=stop, reach_at_once=True))
    assert database.run(count_ledger) == 0
    proxy.cut()
    threading.Timer(1.0, stop.set).start()
    started = time.monotonic()
    with pytest.raises(StopRequested):
        database.run(count_ledger)
    assert time.monotonic() - started < 10
    database.close()


def test_reach_at_once_is_fatal_before_the_first_connection(iem_db, proxy):
    proxy.black_hole()
    database = through(proxy, iem_db, WaitItOut(give_up_after=600, reach_at_once=True))
    started = time.monotonic()
    with pytest.raises(FatalError, match="PMTABOUNCE_MYSQL_URL"):
        database.run(count_ledger)
    assert time.monotonic() - started < 15


def test_one_shot_is_fatal_on_the_first_failure_mid_run(iem_db, proxy):
    database = through(proxy, iem_db, ONE_SHOT)
    assert database.run(count_ledger) == 0
    proxy.cut()
    with pytest.raises(FatalError, match="PMTABOUNCE_MYSQL_URL"):
        database.run(count_ledger)
