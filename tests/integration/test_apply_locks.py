"""A batch locks its own subscribers only, whatever plan the optimizer picks (issue 13).

The subscriber lookup used to be one locking join. When InnoDB's statistics
lagged the table (measured in the benchmark: a fresh 94k-row world) the
optimizer scanned all of email_list_subscribers for it and locked every row
it passed, so each worker waited for every other one's commit. Here the
lookup is made to scan by taking the email index away.
"""

from __future__ import annotations

import threading

import pytest
from iem_seed import Seed, bounce
from pmtabounce.common.policy import Policy
from pmtabounce.store import iem
from pmtabounce.worker.apply import BatchApplier

ROWS = 3000  # subscribers on list 3, addresses user1..user3000
EMAIL_INDEX = "email_subscribers_email_list_idx"


@pytest.fixture
def crowded(iem_db):
    seed = Seed(iem_db)
    seed.lists(3)
    seed.newsletter(42)
    iem_db.query(
        "INSERT INTO {t.subscribers} (listid, emailaddress, domainname, format, confirmed, subscribedate, "
        f"bounced, unsubscribed) SELECT 3, CONCAT('user', seq, '@example.com'), 'example.com', 'h', '1', 1, 0, 0 "
        f"FROM seq_1_to_{ROWS}"
    )
    return iem_db


def test_the_lookups_name_this_installations_indexes(crowded):
    connection = crowded.connect()
    try:
        with connection.cursor() as cursor:
            found = iem.find_lookups(cursor, crowded.tables)
            cursor.execute(f"ALTER TABLE {crowded.tables.subscribers} DROP INDEX {EMAIL_INDEX}")
            without = iem.find_lookups(cursor, crowded.tables)
    finally:
        connection.close()
    assert found == iem.Lookups(f"FORCE INDEX (`{EMAIL_INDEX}`)",
                                "FORCE INDEX (`email_list_subscriber_bounces_subscriberid_idx`)")
    assert without == iem.Lookups("", found.by_subscriber)


def test_a_batch_does_not_wait_for_a_lock_on_another_subscriber(crowded):
    """Another worker holds the last subscriber's row; a batch for other addresses commits without waiting,
    even though with no email index its lookup must read every row."""
    crowded.query(f"ALTER TABLE {{t.subscribers}} DROP INDEX {EMAIL_INDEX}")
    holder = crowded.connect()
    applier = BatchApplier(crowded.target, crowded.tables, Policy(), give_up_after=30)
    outcome: list = []
    try:
        with holder.cursor() as cursor:
            cursor.execute(f"SELECT subscriberid FROM {crowded.tables.subscribers} "
                           "WHERE emailaddress = 'user3000@example.com' FOR UPDATE")
        batch = [bounce("hard", f"user{n}@example.com", line=n) for n in (1, 500, 1500)]
        worker = threading.Thread(target=lambda: outcome.append(applier.apply(batch)), daemon=True)
        worker.start()
        worker.join(timeout=5)
        waited = worker.is_alive()
    finally:
        holder.rollback()
        holder.close()
    worker.join(timeout=60)
    applier.close()
    assert not waited, "the batch waited for a row lock it has no business taking"
    assert [o.outcome for o in outcome[0].outcomes] == ["disabled"] * 3
