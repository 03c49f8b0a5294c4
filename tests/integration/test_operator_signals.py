"""SIGTERM during `undo` or `guard release` (issue 16 item 10): as `dlq replay` does, the batch in hand
commits, the run stops before the next, the audit row and the audit file get the counts so far with
`completed: false`, and the exit status is 130. Before, the process died with 143, no audit line and an
audit row without counts."""

from __future__ import annotations

import json
import signal
import subprocess

import orjson
from iem_seed import Seed, bounce
from pmtabounce.common.guard import GuardSettings
from pmtabounce.common.policy import Policy
from pmtabounce.worker.apply import BatchApplier
from storm_world import command, pmtabounce
from worker_fleet import wait_for

EMAILS = [f"a{n}@example.com" for n in range(6)]


def seeded(db, guard: GuardSettings) -> list[int]:
    """Six subscribers on list 3, a hard bounce each applied (held when example.com is tripped); their ids."""
    seed = Seed(db)
    seed.lists(3)
    seed.newsletter(42)
    ids = [seed.subscriber(email, 3) for email in EMAILS]
    applier = BatchApplier(db.target, db.tables, Policy(), guard=guard)
    try:
        applier.apply([bounce("hard", email, line=n + 1) for n, email in enumerate(EMAILS)])
    finally:
        applier.close()
    return ids


def signalled_midway(db, args: list[str], locked_subscriber: int, done_so_far, audit_file) -> tuple:
    """Run `pmtabounce ARGS` in batches of one record; once two batches committed (`done_so_far() == 2`) and
    the third waits on the row lock of `locked_subscriber` (held here), send SIGTERM, then let the third go.

    The row is locked only once the run waits on its audit row (an empty audit table's gap is held here
    until then): undo's preview, a dry run, takes the same row locks. Returns (the process, stdout, stderr)."""
    gate, holder = db.connect(), db.connect()
    try:
        with gate.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # gap locks
            cursor.execute(f"SELECT id FROM {db.tables.audit} FOR UPDATE")
        argv, env = command(db, *args, batch_size="1", dlq_audit_file=str(audit_file))
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: _waits_on_a_lock(db), "the run to wait on its audit row")
        with holder.cursor() as cursor:
            cursor.execute(f"SELECT subscriberid FROM {db.tables.subscribers} WHERE subscriberid = %s FOR UPDATE",
                           (locked_subscriber,))
        gate.rollback()
        wait_for(lambda: done_so_far() == 2, "two batches to commit")
        wait_for(lambda: _waits_on_a_lock(db), "the third batch to wait on the held row")
        process.send_signal(signal.SIGTERM)
    finally:
        for connection in (gate, holder):
            connection.rollback()
            connection.close()
    out, err = process.communicate(timeout=120)
    return process, out, err


def _waits_on_a_lock(db) -> bool:
    """A transaction on this test's database waits for a row lock."""
    return bool(db.query("SELECT COUNT(*) FROM information_schema.INNODB_TRX AS t JOIN information_schema.PROCESSLIST "
                         "AS p ON p.ID = t.trx_mysql_thread_id WHERE t.trx_state = 'LOCK WAIT' AND p.DB = %s",
                         (db.name,))[0][0])


def audit_row(db, action: str) -> dict:
    rows = db.query("SELECT counts, finished_at IS NOT NULL FROM {t.audit} WHERE action = %s", (action,))
    assert len(rows) == 1 and rows[0][1], rows
    return orjson.loads(rows[0][0])


def test_sigterm_during_undo_stops_between_batches_audits_the_counts_so_far_and_exits_130(iem_db, tmp_path):
    ids = seeded(iem_db, GuardSettings(enabled=False))
    undone = lambda: iem_db.query("SELECT COUNT(*) FROM {t.ledger} WHERE undo_run IS NOT NULL")[0][0]  # noqa: E731

    process, out, err = signalled_midway(iem_db, ["undo", "--domain", "example.com", "--yes", "--json"], ids[2],
                                         undone, tmp_path / "audit.log")

    assert process.returncode == 130, out + err
    assert "interrupted" in err
    assert json.loads(out)["records"] == 3 == undone()  # the batch in hand committed, no other began
    assert audit_row(iem_db, "undo")["records"] == 3 and audit_row(iem_db, "undo")["completed"] is False
    line = json.loads((tmp_path / "audit.log").read_text().splitlines()[-1])
    assert line["action"] == "undo" and line["counts"]["records"] == 3 and line["counts"]["completed"] is False
    # Running it again finishes the rest.
    again = json.loads(pmtabounce(iem_db, "undo", "--domain", "example.com", "--yes", "--json").stdout)
    assert again["records"] == 3 and undone() == 6


def test_sigterm_during_guard_release_stops_between_batches_audits_the_counts_so_far_and_exits_130(
        iem_db, tmp_path):
    pmtabounce(iem_db, "guard", "trip", "example.com")
    ids = seeded(iem_db, GuardSettings())
    held = lambda: iem_db.query("SELECT COUNT(*) FROM {t.ledger} WHERE outcome = 'held'")[0][0]  # noqa: E731
    assert held() == 6

    process, out, err = signalled_midway(iem_db, ["guard", "release", "example.com", "--json"], ids[2],
                                         lambda: 6 - held(), tmp_path / "audit.log")

    assert process.returncode == 130, out + err
    assert "interrupted" in err
    assert json.loads(out)["applied"] == 3 and held() == 3
    counts = audit_row(iem_db, "guard release")
    assert counts["applied"] == 3 and counts["completed"] is False
    line = json.loads((tmp_path / "audit.log").read_text().splitlines()[-1])
    assert line["action"] == "guard release" and line["counts"]["applied"] == 3
    assert line["counts"]["completed"] is False
    assert iem_db.query("SELECT tripped_at IS NOT NULL FROM {t.guard_domains} WHERE domain = 'example.com'") == [
        (1,)]  # still tripped: three are held
    pmtabounce(iem_db, "guard", "release", "example.com")
    assert held() == 0
