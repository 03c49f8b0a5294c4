"""`pmtabounce prune`: removes exactly the ledger rows older than AGE, in small transactions, and what stays
still finds its duplicates."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

from iem_seed import Seed, bounce
from pmtabounce.common.policy import Policy
from pmtabounce.worker.apply import BatchApplier

from pmtabounce.commands.prune import prune_ledger

DAY = 86400


def apply(db, records):
    applier = BatchApplier(db.target, db.tables, Policy(), give_up_after=30)
    try:
        return [o.outcome for o in applier.apply(records).outcomes]
    finally:
        applier.close()


def age_rows(db, days: int, emails: list[str]) -> None:
    """As if these addresses' records had been applied `days` ago."""
    marks = ", ".join(["%s"] * len(emails))
    db.query(f"UPDATE {{t.ledger}} SET applied_at = NOW(6) - INTERVAL %s DAY WHERE email IN ({marks})",
             (days, *emails))


def emails_left(db) -> list[str]:
    return [row[0] for row in db.query("SELECT email FROM {t.ledger} ORDER BY email")]


def world(db):
    """Ten addresses on list 3, each bounced once: 0-6 forty days ago, 7-9 today."""
    seed = Seed(db)
    seed.lists(3)
    seed.newsletter(42)
    records = []
    for n in range(10):
        seed.subscriber(f"u{n}@example.com", 3)
        records.append(bounce("hard", f"u{n}@example.com", line=n + 2))
    assert apply(db, records) == ["disabled"] * 10
    age_rows(db, 40, [f"u{n}@example.com" for n in range(7)])
    return records


def test_prune_removes_exactly_the_old_rows_in_small_transactions(iem_db):
    records = world(iem_db)
    pauses = []
    report = prune_ledger(iem_db.settings(), timedelta(days=30), batch_rows=3, sleep=pauses.append)
    assert emails_left(iem_db) == ["u7@example.com", "u8@example.com", "u9@example.com"]
    assert report.removed == {"disabled": 7}
    assert report.batches == 3 and len(pauses) == 3  # 3 + 3 + 1 rows
    assert report.left.oldest is not None
    # What is kept still makes a record met again a duplicate; a pruned one is new again (its subscriber is
    # disabled already, so it changes nothing in IEM: not_found).
    assert apply(iem_db, [records[8], records[1]]) == ["duplicate", "not_found"]


def test_a_dry_run_counts_and_removes_nothing(iem_db):
    world(iem_db)
    report = prune_ledger(iem_db.settings(), timedelta(days=30), dry_run=True)
    assert report.removed == {"disabled": 7} and report.batches == 0
    assert report.oldest <= report.newest < report.cutoff
    assert len(emails_left(iem_db)) == 10


def test_the_command_reports_what_it_removed(iem_db):
    world(iem_db)
    env = {"PMTABOUNCE_MYSQL_URL": iem_db.url, "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-m", "pmtabounce", "prune", "--older-than", "30d"]
    dry = subprocess.run([*run, "--dry-run", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["removed"] == 7
    done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("removed 7 ledger rows applied before ")
    assert (done.stdout + done.stderr).count("ledger rows applied before") == 1  # the report once, not logged again
    assert "(disabled 7)" in done.stdout and "the ledger now holds about" in done.stdout
    assert len(emails_left(iem_db)) == 3
    bad = subprocess.run([*run[:-1], "thirty days"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "30s, 15m, 1h, 2d or 1w" in bad.stderr
    huge = subprocess.run([*run[:-1], "9999999w"], env=env, capture_output=True, text=True, timeout=60)
    assert huge.returncode == 2 and "more than 100 years" in huge.stderr and "None" not in huge.stdout + huge.stderr


def test_a_refused_prune_says_what_to_check(iem_db):
    env = {"PMTABOUNCE_MYSQL_URL": iem_db.url.replace("root@", "nobody_pmtt:wrong@"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "pmtabounce", "prune", "--older-than", "30d"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "MySQL error 1045" in done.stderr and "prune needs SELECT and DELETE on" in done.stderr
    assert "Traceback" not in done.stderr and "wrong" not in done.stderr


def test_prune_keeps_held_records_whatever_their_age(iem_db):
    """A held record (issue 12) is evidence waiting for `guard release` or `discard`: never pruned."""
    world(iem_db)
    iem_db.query("UPDATE {t.ledger} SET outcome = 'held' WHERE email IN (%s, %s)",
                 ("u0@example.com", "u1@example.com"))
    report = prune_ledger(iem_db.settings(), timedelta(days=30), batch_rows=3, sleep=lambda _: None)
    assert emails_left(iem_db) == ["u0@example.com", "u1@example.com", "u7@example.com", "u8@example.com",
                                   "u9@example.com"]
    assert report.removed == {"disabled": 5}


def test_prune_removes_the_outbox_rows_delivered_or_dropped_before_the_cutoff_and_keeps_the_rest(iem_db):
    # The outbox keeps a row per event sent (history for `explain`): it must not grow for ever either.
    from pmtabounce.store import outbox

    connection = iem_db.connect()
    with connection.cursor() as cursor:
        outbox.add(cursor, iem_db.tables, [outbox.Delivery(f"e{n}", "webhook", "Bounce", "{}", url="http://x/")
                                           for n in range(6)])
        outbox.attempts(cursor, iem_db.tables, [outbox.Attempt(n + 1, 200, "ok", 0.1) for n in range(6)])
    connection.commit()
    connection.close()
    states = ["sent", "dropped", "parked", "waiting", "sent", "sent"]
    for n, state in enumerate(states):
        iem_db.query("UPDATE {t.outbox} SET state = %s, created_at = NOW(6) - INTERVAL %s DAY WHERE id = %s",
                     (state, 40 if n < 5 else 1, n + 1))

    report = prune_ledger(iem_db.settings(), timedelta(days=30), batch_rows=1, sleep=lambda _: None)

    left = iem_db.query("SELECT id, state FROM {t.outbox} ORDER BY id")
    assert left == [(3, "parked"), (4, "waiting"), (6, "sent")]  # never an event not yet delivered or given up
    assert [row[0] for row in iem_db.query("SELECT outbox_id FROM {t.outbox_attempts} ORDER BY outbox_id")] == [3, 4, 6]
    assert report.as_dict()["outbox_removed"] == 3
