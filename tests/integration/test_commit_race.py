"""Two workers committing the same record: the second meets the ledger's unique key (MySQL 1062), says what
happened in an operator's words, applies its batch again and finds the record done."""

from __future__ import annotations

import logging
import threading
import time

from iem_seed import Seed, bounce
from pmtabounce.common.policy import Policy
from pmtabounce.worker.apply import BatchApplier


def holding_commit(applier: BatchApplier, at_commit: threading.Event, release: threading.Event) -> None:
    """Make `applier` stop just before its commit (its row locks and ledger row held) until `release`."""
    connect = applier.database._connect

    def connect_and_hold():
        connection = connect()
        commit = connection.commit

        def held_commit():
            at_commit.set()
            release.wait(30)
            commit()

        connection.commit = held_commit
        return connection

    applier.database._connect = connect_and_hold


def test_the_second_commit_of_one_record_is_named_as_the_race_and_retried(iem_db, caplog):
    seed = Seed(iem_db)
    seed.lists(3)
    seed.subscriber("ann@example.com", 3)
    record = bounce("hard", "ann@example.com", (3,))
    first = BatchApplier(iem_db.target, iem_db.tables, Policy(), retry_max_wait=0.2)
    second = BatchApplier(iem_db.target, iem_db.tables, Policy(), retry_max_wait=0.2)
    at_commit, release = threading.Event(), threading.Event()
    holding_commit(first, at_commit, release)
    results = {}
    threads = [threading.Thread(target=lambda: results.setdefault("first", first.apply([record])))]
    threads[0].start()
    assert at_commit.wait(30)
    # The second reads the ledger (nothing committed yet), then waits on the subscriber's row lock.
    threads.append(threading.Thread(target=lambda: results.setdefault("second", second.apply([record]))))
    caplog.set_level(logging.INFO, logger="pmtabounce.worker")
    threads[1].start()
    time.sleep(1.0)
    release.set()
    for thread in threads:
        thread.join(60)
    first.close()
    second.close()

    assert [o.outcome for o in results["first"].outcomes] == ["disabled"]
    assert [o.outcome for o in results["second"].outcomes] == ["duplicate"]
    said = [r.getMessage() for r in caplog.records]
    assert any("another worker committed the same record first; applying the batch again" in m for m in said)
    assert not any("database not available" in m for m in said)
