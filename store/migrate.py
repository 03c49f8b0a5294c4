"""`pmtabounce setup`, its MySQL half: create or upgrade our own tables (never IEM's).

The migrations themselves are ledger.migrations(); the RabbitMQ half is common.broker.setup_broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pymysql
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_fixed

from ..common.config import Settings
from ..common.errors import FatalError, TransientError
from . import guard_store, iem, ledger
from .database import Cursor, Database, OneShot, Session, WaitItOut
from .db import Tables, error_number, table_exists

log = logging.getLogger("pmtabounce.setup")

# An ALTER of a ledger of tens of millions of rows takes minutes: setup waits for it, up to this long.
MIGRATION_SECONDS = 6 * 3600.0


def setup_database(settings: Settings) -> int:
    """Run the ledger migrations not yet applied; returns the schema version now in place.

    One-shot (store/database.py): even what a worker would retry ends setup with a FatalError and its reason."""
    database = Database(settings.mysql, Tables(settings.table_prefix), OneShot(statement_seconds=MIGRATION_SECONDS))
    try:
        with database.transaction() as session:
            current = _migrate(session, settings.mysql.safe_url())
    except FatalError as exc:
        raise FatalError(f"database setup failed: {exc}") from None
    finally:
        database.close()
    log.info("database ready: schema version %d in %s", current, settings.mysql.safe_url())
    return current


def _migrate(session: Session, where: str) -> int:
    cursor, tables = session.cursor, session.tables
    iem.require_tables(cursor, tables, where)  # never our tables beside nothing
    cursor.execute(ledger.meta_table_sql(tables))
    cursor.execute(f"SELECT value FROM {tables.meta} WHERE name = 'schema_version'")
    row = cursor.fetchone()
    current = int(row[0]) if row else 0
    for version, statements in ledger.migrations(tables):
        if version <= current:
            continue
        log.info("database: applying schema version %d to %s", version, tables.ledger)
        for statement in statements:
            _execute_ddl(cursor, statement)
        cursor.execute(
            f"INSERT INTO {tables.meta} (name, value) VALUES ('schema_version', %s) "
            "ON DUPLICATE KEY UPDATE value = VALUES(value)",
            (str(version),),
        )
        log.info("database: applied schema version %d (%s)", version, tables.ledger)
        current = version
    if current >= 3:  # the guard's tables exist
        for change in guard_store.normalise_domains(cursor, tables):
            log.info("database: domain guard: %s (one domain, its IDNA A-label)", change)
    return current


def wait_for_schema(settings: Settings, seconds: float, poll: float = 2.0,
                    sleep: Callable[[float], None] = time.sleep) -> int:
    """Change nothing: wait up to `seconds` until the database holds this version's schema (what a `setup` of
    this release writes; a newer one too), polling every `poll` seconds; an unreachable database is waited
    for the same way (WaitItOut, bounded by the time left). Returns the schema version found. Raises
    FatalError naming what is missing once the time is up, at once for a refusal (login, grants)."""
    wanted = latest_version()
    tables = Tables(settings.table_prefix)
    deadline = time.monotonic() + seconds
    while True:
        policy = WaitItOut(give_up_after=max(deadline - time.monotonic(), 0.1), connect_seconds=5.0,
                           statement_seconds=10.0)
        database = Database(settings.mysql, tables, policy, log=log)
        try:
            found, why = database.run(_schema_version, commit=False), ""
        except TransientError as exc:  # GaveUp: the database did not answer within the time left
            found, why = 0, f" (the database did not answer: {exc})"
        finally:
            database.close()
        if found >= wanted:
            log.info("database: schema version %d in %s (this version needs %d)", found, tables.meta, wanted)
            return found
        left = deadline - time.monotonic()
        if left <= 0:
            raise FatalError(f"schema version {found} in {settings.mysql.safe_url()}{why}, this version needs "
                             f"{wanted}: run this release's `pmtabounce setup` (on Kubernetes its setup Job)")
        log.info("database: waiting for schema version %d (found %d)%s", wanted, found, why)
        sleep(min(poll, left))


def latest_version() -> int:
    """The schema version this code writes and needs (its last migration)."""
    return ledger.SCHEMA_VERSION


def _schema_version(session: Session) -> int:
    """The schema version recorded in the meta table; 0 when there is none (no table, no row)."""
    cursor, tables = session.cursor, session.tables
    if not table_exists(cursor, tables.meta):  # no meta table yet: setup never ran
        return 0
    cursor.execute(f"SELECT value FROM {tables.meta} WHERE name = 'schema_version'")
    row = cursor.fetchone()
    return int(row[0]) if row else 0


# ALTER TABLE … ALGORITHM=INSTANT (or INPLACE) refused: the server cannot make this change that way.
_NOT_INSTANT = {1845, 1846}
# What a statement says when an earlier run made its change, then stopped before recording the version
# (DDL commits on its own): duplicate column, duplicate key name, no such key to drop (version 4's swap).
_ALREADY_DONE = {1060, 1061, 1091}
# An ALTER waits for the table's metadata lock behind every open transaction that read the table (a
# `mysqldump --single-transaction`, a long report), and every batch waits behind the ALTER: it asks for
# the lock this long at a time, letting the batches through between tries, for at most DDL_LOCK_TRIES.
DDL_LOCK_SECONDS = 5
DDL_LOCK_TRIES = 120
_LOCK_WAIT_TIMEOUT = 1205


def _execute_ddl(cursor: Cursor, statement: str) -> None:
    """Run one migration statement. An ALTER TABLE is tried with ALGORITHM=INSTANT first (no copy of a
    large, live ledger), then INPLACE (no copy: an index dropped or built while writes go on), then as the
    server chooses; columns or keys already as wanted count as done, so a half-applied migration re-runs.
    The table's metadata lock is asked for DDL_LOCK_SECONDS at a time (see above), a second apart (tenacity);
    raises the server's error 1205 after DDL_LOCK_TRIES tries."""
    cursor.execute("SET SESSION lock_wait_timeout = %s", (DDL_LOCK_SECONDS,))
    table = statement.split()[2]

    def said(state: RetryCallState) -> None:
        log.warning("database: %s is in use by an open transaction (a dump, a long query); setup waits for it "
                    "(try %d of %d) and lets the batches through meanwhile", table, state.attempt_number,
                    DDL_LOCK_TRIES)

    Retrying(retry=retry_if_exception(lambda exc: error_number(exc) == _LOCK_WAIT_TIMEOUT),
             stop=stop_after_attempt(DDL_LOCK_TRIES), wait=wait_fixed(1.0), before_sleep=said,
             reraise=True)(_alter, cursor, statement)


def _alter(cursor: Cursor, statement: str) -> None:
    """One try of `statement` (see _execute_ddl)."""
    is_alter = statement.lstrip().upper().startswith("ALTER TABLE")
    ways = (", ALGORITHM=INSTANT", ", ALGORITHM=INPLACE, LOCK=NONE", "") if is_alter else ("",)
    try:
        for n, way in enumerate(ways):
            try:
                cursor.execute(statement + way)
                return
            except pymysql.err.MySQLError as exc:
                if n == len(ways) - 1 or error_number(exc) not in _NOT_INSTANT:
                    raise
                if n == 1:
                    log.warning("database: the server cannot change %s in place; it makes the change its own way "
                                "(it may rebuild the table)", statement.split()[2])
    except pymysql.err.MySQLError as exc:
        if error_number(exc) not in _ALREADY_DONE:
            raise
        log.info("database: %s (done by an earlier run)", exc.args[1] if len(exc.args) > 1 else exc)

