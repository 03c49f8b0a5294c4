"""`pmtabounce setup`: creates or upgrades only our own tables, any number of times."""

from __future__ import annotations

import os
import subprocess
import sys

from iem_seed import Seed, bounce, ledger_rows
from pmtabounce.common.policy import Policy
from pmtabounce.worker.apply import BatchApplier
from pmtabounce.worker.db import Tables
from pmtabounce.worker.ledger import migrations

OURS = ("pmtabounce_ledger", "pmtabounce_meta", "pmtabounce_guard_domains", "pmtabounce_guard_windows",
        "pmtabounce_audit")
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
    assert "UNIQUE KEY `pmtabounce_ledger_fingerprint` (`fingerprint`)" in after["email_pmtabounce_ledger"]


def test_setup_again_keeps_the_ledger(iem_db):
    seed = Seed(iem_db)
    seed.lists(3)
    seed.subscriber("ann@example.com", 3)
    applier = BatchApplier(iem_db.target, iem_db.tables, Policy())
    applier.apply([bounce("hard")])
    applier.close()
    before = ledger_rows(iem_db)
    tables_before = schema(iem_db)
    result = setup(iem_db)
    assert result.returncode == 0, result.stderr
    assert ledger_rows(iem_db) == before and len(before) == 1
    assert schema(iem_db) == tables_before


def test_setup_under_another_prefix(iem_db):
    other = Tables("iem2_")
    result = setup(iem_db, table_prefix="iem2_")
    assert result.returncode == 0, result.stderr
    names = set(schema(iem_db))
    assert {"iem2_pmtabounce_ledger", "iem2_pmtabounce_meta"} <= names
    assert not any(name.startswith("iem2_") and not name.endswith(OURS) for name in names)  # IEM's: never created
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
