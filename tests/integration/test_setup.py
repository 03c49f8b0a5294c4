"""`pmtabounce setup`: creates or upgrades only our own tables, any number of times."""

from __future__ import annotations

import os
import subprocess
import sys

from iem_seed import Seed, bounce, ledger_rows
from pmtabounce.common.policy import Policy
from pmtabounce.store import ledger
from pmtabounce.store.db import Tables
from pmtabounce.store.fixture import create_iem_tables
from pmtabounce.store.ledger import migrations
from pmtabounce.worker.apply import BatchApplier

OURS = ("pmtabounce_ledger", "pmtabounce_meta", "pmtabounce_guard_domains", "pmtabounce_guard_windows",
        "pmtabounce_audit", "pmtabounce_outbox_attempts", "pmtabounce_outbox")
LATEST = str(migrations(Tables())[-1][0])


def setup(db, *args: str, **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMTABOUNCE_")}
    env["PMTABOUNCE_MYSQL_URL"] = db.url
    env.update({f"PMTABOUNCE_{k.upper()}": v for k, v in settings.items()})
    return subprocess.run([sys.executable, "-m", "pmtabounce", "setup", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def schema(db) -> dict[str, str]:
    """SHOW CREATE TABLE of every table in the database."""
    names = [row[0] for row in db.query("SHOW TABLES")]
    return {name: db.query(f"SHOW CREATE TABLE `{name}`")[0][1] for name in names}


def iem_part(tables: dict[str, str]) -> dict[str, str]:
    return {name: sql for name, sql in tables.items() if not name.endswith(OURS)}


def test_setup_creates_our_tables_and_is_idempotent(iem_db):
    Seed(iem_db).lists(3)
    for name in OURS:
        iem_db.query(f"DROP TABLE `email_{name}`")
    before = schema(iem_db)
    lists_before = iem_db.query("SELECT * FROM {t.lists}")
    for _ in range(3):
        result = setup(iem_db)
        assert result.returncode == 0, result.stderr
    after = schema(iem_db)
    assert set(after) - set(before) == {f"email_{name}" for name in OURS}
    assert iem_part(after) == before  # IEM's tables: not one column, key or option changed
    assert iem_db.query("SELECT * FROM {t.lists}") == lists_before
    assert iem_db.query("SELECT name, value FROM {t.meta}") == [("schema_version", LATEST)]
    assert "UNIQUE KEY `pmtabounce_ledger_record` (`time_logged`,`fingerprint`)" in after["email_pmtabounce_ledger"]
    assert "pmtabounce_ledger_fingerprint" not in after["email_pmtabounce_ledger"]


def as_version_3(db) -> None:
    """The ledger's unique key as schema versions 1 to 3 had it (version 3 here): the fingerprint alone."""
    db.query("ALTER TABLE {t.ledger} DROP KEY pmtabounce_ledger_record, "
             "ADD UNIQUE KEY pmtabounce_ledger_fingerprint (fingerprint)")
    db.query("UPDATE {t.meta} SET value = '3' WHERE name = 'schema_version'")


def test_the_time_first_key_migration_keeps_the_ledger_and_its_duplicates(iem_db):
    """A ledger keyed on the fingerprint alone, upgraded by setup: every row stays, and a record met again is
    still a duplicate, found through the new key."""
    seed = Seed(iem_db)
    seed.lists(3)
    seed.subscriber("ann@example.com", 3)
    seed.subscriber("bob@example.com", 3)
    applier = BatchApplier(iem_db.target, iem_db.tables, Policy())
    try:
        assert [o.outcome for o in applier.apply([bounce("hard")]).outcomes] == ["disabled"]
        as_version_3(iem_db)
        before = ledger_rows(iem_db)
        result = setup(iem_db)
        assert result.returncode == 0, result.stderr
        assert ledger_rows(iem_db) == before
        outcomes = applier.apply([bounce("hard"), bounce("hard", "bob@example.com")]).outcomes
    finally:
        applier.close()
    assert [o.outcome for o in outcomes] == ["duplicate", "disabled"]
    assert iem_db.query("SELECT email, seen_count FROM {t.ledger} ORDER BY id") == [("ann@example.com", 2),
                                                                                 ("bob@example.com", 1)]
    assert "`pmtabounce_ledger_record` (`time_logged`,`fingerprint`)" in schema(iem_db)["email_pmtabounce_ledger"]


def test_setup_to_version_7_drops_the_time_index_the_unique_key_repeats(iem_db):
    """Schema version 7: a version 6 ledger's `pmtabounce_ledger_time` (time_logged) goes, its rows stay; a
    second run finds it done."""
    one_bounce_applied(iem_db)
    iem_db.query("ALTER TABLE {t.ledger} ADD KEY pmtabounce_ledger_time (time_logged)")
    iem_db.query("UPDATE {t.meta} SET value = '6' WHERE name = 'schema_version'")
    before = ledger_rows(iem_db)
    for _ in range(2):
        result = setup(iem_db)
        assert result.returncode == 0, result.stderr
    assert ledger_rows(iem_db) == before
    assert iem_db.query("SELECT value FROM {t.meta} WHERE name = 'schema_version'") == [(LATEST,)]
    after = schema(iem_db)
    assert "pmtabounce_ledger_time" not in after["email_pmtabounce_ledger"]


def one_bounce_applied(db) -> None:
    """A list, a subscriber on it, and a hard bounce of theirs applied: one ledger row."""
    seed = Seed(db)
    seed.lists(3)
    seed.subscriber("ann@example.com", 3)
    applier = BatchApplier(db.target, db.tables, Policy())
    applier.apply([bounce("hard")])
    applier.close()


def test_setup_again_keeps_the_ledger(iem_db):
    one_bounce_applied(iem_db)
    before = ledger_rows(iem_db)
    tables_before = schema(iem_db)
    result = setup(iem_db)
    assert result.returncode == 0, result.stderr
    assert ledger_rows(iem_db) == before and len(before) == 1
    assert schema(iem_db) == tables_before


def test_setup_under_another_prefix(iem_db):
    other = Tables("iem2_")
    connection = iem_db.connect()
    create_iem_tables(connection.cursor(), other)  # a second IEM in the same database
    connection.commit()
    connection.close()
    result = setup(iem_db, table_prefix="iem2_")
    assert result.returncode == 0, result.stderr
    names = set(schema(iem_db))
    assert {"iem2_pmtabounce_ledger", "iem2_pmtabounce_meta"} <= names
    assert iem_db.query(f"SELECT COUNT(*) FROM {other.ledger}") == [(0,)]


def test_setup_without_the_database_part_touches_nothing(iem_db):
    iem_db.query("DROP TABLE {t.ledger}")
    before = schema(iem_db)
    result = setup(iem_db, "--no-database")
    assert result.returncode == 0, result.stderr
    assert schema(iem_db) == before


def test_setup_with_a_bad_prefix_or_no_database_url_names_it(iem_db):
    result = setup(iem_db, table_prefix="x`; DROP TABLE email_lists; --")
    assert result.returncode == 2 and "PMTABOUNCE_TABLE_PREFIX" in result.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMTABOUNCE_")}
    result = subprocess.run([sys.executable, "-m", "pmtabounce", "setup"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and "PMTABOUNCE_MYSQL_URL" in result.stderr
    assert "email_lists" in [row[0] for row in iem_db.query("SHOW TABLES")]


COMPLAINT_COLUMNS = ("feedback_type", "feedback_format", "user_agent", "reporting_mta", "list_unsubscribe", "effects")


def columns(db) -> list[str]:
    return [row[0] for row in db.query("SHOW COLUMNS FROM {t.ledger}")]


def as_version_1(db) -> None:
    """The ledger as schema version 1 left it (before complaints)."""
    db.query("ALTER TABLE {t.ledger} " + ", ".join(f"DROP COLUMN {c}" for c in COMPLAINT_COLUMNS))
    db.query("UPDATE {t.meta} SET value = '1' WHERE name = 'schema_version'")


def test_setup_upgrades_a_version_1_ledger_in_place_keeping_its_rows(iem_db):
    seed = Seed(iem_db)
    seed.lists(3)
    seed.subscriber("ann@example.com", 3)
    as_version_1(iem_db)
    iem_db.query("INSERT INTO {t.ledger} (fingerprint, record_type, time_logged, email, dsn_diag, decision, "
                 "outcome) VALUES ('f' , 'b', 1, 'ann@example.com', 'gone', 'hard', 'disabled')")
    result = setup(iem_db)
    assert result.returncode == 0, result.stderr
    assert columns(iem_db)[-len(COMPLAINT_COLUMNS):] == list(COMPLAINT_COLUMNS)
    assert iem_db.query("SELECT outcome, feedback_type, list_unsubscribe, effects FROM {t.ledger}") == [
        ("disabled", "", "", None)]
    assert iem_db.query("SELECT value FROM {t.meta}") == [(str(ledger.SCHEMA_VERSION),)]


def test_setup_finishes_a_migration_a_crash_left_half_done(iem_db):
    """The columns are there but the version was never recorded: setup runs it again and records it."""
    iem_db.query("UPDATE {t.meta} SET value = '1' WHERE name = 'schema_version'")
    before = schema(iem_db)
    result = setup(iem_db)
    assert result.returncode == 0, result.stderr
    assert schema(iem_db) == before
    assert iem_db.query("SELECT value FROM {t.meta}") == [(str(ledger.SCHEMA_VERSION),)]


def test_a_change_the_server_cannot_make_in_place_is_made_its_own_way(iem_db, caplog):
    """ALGORITHM=INSTANT is asked for first, then INPLACE: an index (never instant) is built in place, quietly;
    a column's type change (a copy) falls back to the server's way with a warning, rather than failing setup."""
    from pmtabounce.store.migrate import _execute_ddl

    connection = iem_db.connect()
    try:
        with connection.cursor() as cursor:
            _execute_ddl(cursor, f"ALTER TABLE {iem_db.tables.ledger} ADD KEY test_outcome_idx (outcome)")
            assert "cannot change" not in caplog.text
            _execute_ddl(cursor, f"ALTER TABLE {iem_db.tables.ledger} MODIFY source_line bigint NOT NULL DEFAULT 0")
    finally:
        connection.close()
    ledger_table = schema(iem_db)["email_pmtabounce_ledger"]
    assert "test_outcome_idx" in ledger_table and "`source_line` bigint(20) NOT NULL" in ledger_table
    assert "cannot change `email_pmtabounce_ledger` in place" in caplog.text


def test_setup_finishes_a_migration_whose_alter_ran_but_whose_version_was_not_recorded(iem_db):
    """DDL commits on its own: a setup stopped between the key swap and writing the version, run again,
    goes on."""
    iem_db.query("UPDATE {t.meta} SET value = '2' WHERE name = 'schema_version'")  # the key is swapped already
    result = setup(iem_db)
    assert result.returncode == 0, result.stderr
    assert iem_db.query("SELECT value FROM {t.meta} WHERE name = 'schema_version'") == [(str(ledger.SCHEMA_VERSION),)]


def test_setup_wait_changes_nothing_and_returns_once_this_releases_setup_ran(iem_db):
    """What a worker's initContainer runs (deploy/k8s/worker.yaml): the workers start after the setup Job."""
    for name in OURS:
        iem_db.query(f"DROP TABLE `email_{name}`")
    refused = setup(iem_db, "--wait", "1")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"schema version 0 in {iem_db.target.safe_url()}, this version needs {LATEST}" in refused.stderr
    assert "run this release's `pmtabounce setup`" in refused.stderr
    assert not iem_db.query("SHOW TABLES LIKE 'email\\_pmtabounce%%'")  # it changed nothing
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMTABOUNCE_")}
    env["PMTABOUNCE_MYSQL_URL"] = iem_db.url
    waiting = subprocess.Popen([sys.executable, "-m", "pmtabounce", "setup", "--wait", "60"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert waiting.wait(timeout=3) is None
    except subprocess.TimeoutExpired:
        pass  # still waiting, as it should
    assert setup(iem_db).returncode == 0
    assert waiting.wait(timeout=30) == 0, waiting.stdout.read()
    iem_db.query("UPDATE {t.meta} SET value = %s WHERE name = 'schema_version'", (str(int(LATEST) - 1),))
    assert setup(iem_db, "--wait", "0").returncode == 1  # an older release's schema is not enough


def test_setup_behind_an_open_transaction_lets_the_batches_through(iem_db):
    # store/migrate.py: an ALTER waits for the table's metadata lock behind an open transaction (a dump), and
    # every batch waits behind the ALTER. setup asks for the lock DDL_LOCK_SECONDS (5 s) at a time, so a batch
    # waits at most about that long, not until the dump ends (15 s here); setup finishes once it has.
    import threading
    import time

    one_bounce_applied(iem_db)
    Seed(iem_db).subscriber("bob@example.com", 3)
    iem_db.query("ALTER TABLE {t.ledger} ADD KEY pmtabounce_ledger_time (time_logged)")
    iem_db.query("UPDATE {t.meta} SET value = '6' WHERE name = 'schema_version'")
    dump = iem_db.connect()
    with dump.cursor() as cursor:
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        cursor.execute(f"SELECT COUNT(*) FROM {iem_db.tables.ledger}")
    done: list = []
    upgrade = threading.Thread(target=lambda: done.append(setup(iem_db)))
    dump_ends = threading.Timer(15, dump.commit)
    dump_ends.start()
    upgrade.start()
    try:
        time.sleep(1.5)  # setup is waiting for the lock
        applier = BatchApplier(iem_db.target, iem_db.tables, Policy())
        started = time.monotonic()
        outcomes = applier.apply([bounce("hard", "bob@example.com")]).outcomes
        took = time.monotonic() - started
        applier.close()
    finally:
        dump_ends.join()
        dump.close()
        upgrade.join(120)
    assert [o.outcome for o in outcomes] == ["disabled"]
    assert took < 8, took
    assert done[0].returncode == 0, done[0].stderr
    assert "in use by an open transaction" in done[0].stderr
    assert iem_db.query("SELECT value FROM {t.meta} WHERE name = 'schema_version'") == [(LATEST,)]
    assert "pmtabounce_ledger_time" not in schema(iem_db)["email_pmtabounce_ledger"]
