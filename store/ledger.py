"""The project's own ledger: one row per bounce or complaint record ever applied, keyed by its fingerprint.

Written in the same transaction as the IEM changes, so a record that is
delivered again finds its row and changes nothing the second time. Its
`effects` column says what each record wrote to IEM (effects.py), for `undo`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..common.complaint import ComplaintRecord
from . import outbox
from .db import Cursor, Tables, case_of, insert_rows
from .effects import to_json
from .rows import Outcome, Record


@dataclass(frozen=True)
class Migration:
    """One schema version: its statements, with our table names as `{t.ledger}`, `{t.audit}`... (db.Tables).

    A table here may be large and live: columns are added with defaults MariaDB
    and MySQL 8 can add in place (`setup` asks for ALGORITHM=INSTANT on every
    ALTER TABLE), all of one table in one statement, which a re-run after a
    crash finds done (duplicate column). A new version is one more entry at the end of MIGRATIONS.
    """

    version: int
    statements: tuple[str, ...] | Callable[[Tables], Sequence[str]]  # templates, or made by a table's module


MIGRATIONS = (
    Migration(1, (
        """CREATE TABLE IF NOT EXISTS {t.ledger} (
  id bigint unsigned NOT NULL AUTO_INCREMENT,
  fingerprint char(32) CHARACTER SET ascii NOT NULL,
  source_file varchar(255) NOT NULL DEFAULT '',
  source_line int unsigned NOT NULL DEFAULT 0,
  record_type varchar(4) NOT NULL,
  time_logged int NOT NULL,
  email varchar(255) NOT NULL,
  list_ids varchar(1024) NOT NULL DEFAULT '',
  statid int NOT NULL DEFAULT 0,
  category varchar(255) NOT NULL DEFAULT '',
  dsn_status varchar(1024) NOT NULL DEFAULT '',
  dsn_diag mediumtext NOT NULL,
  decision varchar(8) NOT NULL,
  outcome varchar(16) NOT NULL,
  subscriberid int DEFAULT NULL,
  listid int DEFAULT NULL,
  seen_count int unsigned NOT NULL DEFAULT 1,
  applied_at timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  UNIQUE KEY pmtabounce_ledger_fingerprint (fingerprint),
  KEY pmtabounce_ledger_applied (applied_at, outcome),
  KEY pmtabounce_ledger_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    )),
    Migration(2, (  # complaints: their ARF fields; and what each record wrote (effects), for undo
        """ALTER TABLE {t.ledger}
  ADD COLUMN feedback_type varchar(32) NOT NULL DEFAULT '',
  ADD COLUMN feedback_format varchar(64) NOT NULL DEFAULT '',
  ADD COLUMN user_agent varchar(255) NOT NULL DEFAULT '',
  ADD COLUMN reporting_mta varchar(255) NOT NULL DEFAULT '',
  ADD COLUMN list_unsubscribe varchar(2048) NOT NULL DEFAULT '',
  ADD COLUMN effects mediumtext DEFAULT NULL""",
    )),
    Migration(3, (  # issue 12: undo marks, the domain guard's state, the audit of operator actions
        "ALTER TABLE {t.ledger} ADD COLUMN undo_run bigint unsigned DEFAULT NULL, "
        "ADD KEY pmtabounce_ledger_time (time_logged), ADD KEY pmtabounce_ledger_outcome (outcome, id)",
        """CREATE TABLE IF NOT EXISTS {t.guard_domains} (
  domain varchar(255) NOT NULL,
  tripped_at int DEFAULT NULL,
  tripped_by varchar(255) NOT NULL DEFAULT '',
  trip_window int DEFAULT NULL,
  trip_count int unsigned NOT NULL DEFAULT 0,
  trip_threshold int unsigned NOT NULL DEFAULT 0,
  held int unsigned NOT NULL DEFAULT 0,
  trips int unsigned NOT NULL DEFAULT 0,
  PRIMARY KEY (domain),
  KEY pmtabounce_guard_tripped (tripped_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        """CREATE TABLE IF NOT EXISTS {t.guard_windows} (
  domain varchar(255) NOT NULL,
  window_start int NOT NULL,
  hard_count int unsigned NOT NULL DEFAULT 0,
  tripped tinyint NOT NULL DEFAULT 0,
  PRIMARY KEY (domain, window_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        """CREATE TABLE IF NOT EXISTS {t.audit} (
  id bigint unsigned NOT NULL AUTO_INCREMENT,
  started_at timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  finished_at timestamp(6) NULL DEFAULT NULL,
  operator varchar(255) NOT NULL,
  action varchar(32) NOT NULL,
  target text NOT NULL,
  counts mediumtext NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    )),
    # The unique key leads with the record's time: new records are recent, so their key entries
    # (the duplicate check of every insert and every lookup) sit together at its end and stay in
    # the buffer pool; a key on the hash alone spread them over the whole index, one random page
    # read each once the ledger outgrew the pool. The time is part of the fingerprint's content
    # (bounces and complaints alike), so the pair is unique exactly when the fingerprint is.
    # One online ALTER (InnoDB builds the index while writes go on): under 2 minutes on 20 M rows here.
    Migration(4, (
        "ALTER TABLE {t.ledger} DROP KEY pmtabounce_ledger_fingerprint, "
        "ADD UNIQUE KEY pmtabounce_ledger_record (time_logged, fingerprint)",
    )),
    # issue 16: the audit run (`guard release` or `discard`) that ended a record's hold, for `explain`;
    # who and why of an operator action: the MySQL account (CURRENT_USER()) and the operator's reason.
    Migration(5, (
        "ALTER TABLE {t.ledger} ADD COLUMN guard_run bigint unsigned DEFAULT NULL",
        "ALTER TABLE {t.audit} ADD COLUMN account varchar(255) NOT NULL DEFAULT '', "
        "ADD COLUMN reason text DEFAULT NULL",
    )),
    Migration(6, outbox.migration),  # issue 18: the events' outbox (two new tables, nothing altered)
    # issue 20: the time index of version 3 repeats the first column of the unique key of version 4, which
    # serves every lookup by time as well; each ledger INSERT kept both up to date. Dropping a secondary
    # index changes only metadata (in place, no copy); a re-run finds it gone (error 1091, taken as done).
    Migration(7, ("ALTER TABLE {t.ledger} DROP KEY pmtabounce_ledger_time",)),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def migrations(t: Tables) -> list[tuple[int, list[str]]]:
    """(version, statements) in order, with `t`'s table names; `setup` runs those above the recorded version."""
    return [(m.version, list(m.statements(t)) if callable(m.statements)
             else [statement.format(t=t) for statement in m.statements]) for m in MIGRATIONS]


def meta_table_sql(t: Tables) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {t.meta} ("
        "name varchar(64) NOT NULL, value varchar(255) NOT NULL, PRIMARY KEY (name)"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )


def known(cursor: Cursor, t: Tables, records: Iterable[Record]) -> set[str]:
    """Fingerprints of these records that the ledger already holds (looked up by time and fingerprint)."""
    wanted = sorted({(r.time_logged, r.fingerprint) for r in records})
    if not wanted:
        return set()
    where, params = by_record(wanted)
    cursor.execute(f"SELECT fingerprint FROM {t.ledger} WHERE {where}", params)
    return {row[0] for row in cursor.fetchall()}


def by_record(keys: Sequence[tuple[int, str]]) -> tuple[str, list]:
    """A WHERE clause matching these (time_logged, fingerprint) pairs: one index range each.

    A row constructor IN list, not ORed pairs: the same ranges on the (time_logged, fingerprint)
    key, but MariaDB 10.11 plans 500 of them in a quarter of the time (issue 20).
    """
    params = [item for key in keys for item in key]
    return f"(time_logged, fingerprint) IN ({', '.join(['(%s, %s)'] * len(keys))})", params


def record(cursor: Cursor, t: Tables, outcomes: Sequence[Outcome]) -> None:
    """One ledger row per new record. A concurrent worker inserting the same fingerprint
    makes this fail with a duplicate key, and the whole batch is retried (it then sees it)."""
    if not outcomes:
        return
    insert_rows(
        cursor,
        f"INSERT INTO {t.ledger} (fingerprint, source_file, source_line, record_type, time_logged, "
        "email, list_ids, statid, category, dsn_status, dsn_diag, decision, outcome, "
        "subscriberid, listid, feedback_type, feedback_format, user_agent, reporting_mta, list_unsubscribe, "
        "effects) VALUES ",
        [_row(o) for o in outcomes],
    )


def count_repeats(cursor: Cursor, t: Tables, repeats: Counter, times: Mapping[str, int]) -> None:
    """Evidence that a record was met again (redelivery, a file copied back); `times`: fingerprint ->
    time_logged, the leading column of the key that finds the rows."""
    if not repeats:
        return
    case, params = case_of("fingerprint", repeats)
    where, keys = by_record(sorted((times[f], f) for f in repeats))
    cursor.execute(f"UPDATE {t.ledger} SET seen_count = seen_count + {case} WHERE {where}", params + keys)


def _row(o: Outcome) -> tuple:
    r = o.record
    if isinstance(r, ComplaintRecord):
        bounce = ("", "", "")
        complaint = (r.feedback_type[:32], r.format[:64], r.user_agent[:255], r.reporting_mta[:255],
                     r.list_unsubscribe[:2048])
    else:
        bounce = (r.category[:255], r.dsn_status[:1024], r.dsn_diag)
        complaint = ("", "", "", "", "")
    return (
        r.fingerprint,
        r.source_file[:255],
        max(0, r.source_line),
        r.type,
        r.time_logged,
        (o.email or r.rcpt)[:255],
        ",".join(map(str, r.list_ids))[:1024],
        r.statid,
        *bounce,
        o.decision,
        o.outcome,
        o.subscriberid,
        o.listid,
        *complaint,
        to_json(o.effects),
    )


def outcomes_since(cursor: Cursor, t: Tables, seconds: int | None = None, *,
                   complaints: bool = False) -> dict[str, int]:
    """Ledger rows by outcome applied in the last `seconds` (all of them when None), by the server's clock:
    of bounces (`b`, `rb`), or of complaints (`f`) when `complaints`."""
    where, params = _window(seconds, complaints)
    cursor.execute(f"SELECT outcome, COUNT(*) FROM {t.ledger} WHERE {where} GROUP BY outcome", params)
    return {outcome: int(count) for outcome, count in cursor.fetchall()}


def repeats_since(cursor: Cursor, t: Tables, seconds: int | None = None, *, complaints: bool = False) -> int:
    """Records met again (the `duplicate` outcome) among the ledger rows `outcomes_since` counts.

    A repeat only adds to its first row's seen_count, so repeats are counted by
    when the record was first applied, not when it was met again.
    """
    where, params = _window(seconds, complaints)
    cursor.execute(f"SELECT COALESCE(SUM(seen_count - 1), 0) FROM {t.ledger} WHERE {where}", params)
    return int(cursor.fetchone()[0])


def _window(seconds: int | None, complaints: bool) -> tuple[str, tuple]:
    kind = "record_type = 'f'" if complaints else "record_type <> 'f'"
    if seconds is None:
        return kind, ()
    return f"applied_at >= NOW(6) - INTERVAL %s SECOND AND {kind}", (seconds,)


def last_applied(cursor: Cursor, t: Tables) -> float | None:
    """Unix time of the newest ledger row: the last batch that committed something new."""
    cursor.execute(f"SELECT UNIX_TIMESTAMP(MAX(applied_at)) FROM {t.ledger}")
    value = cursor.fetchone()[0]
    return float(value) if value is not None else None


def records_seen(cursor: Cursor, t: Tables) -> int:
    """Every record the ledger has met, repeats included (each row's seen_count)."""
    cursor.execute(f"SELECT COALESCE(SUM(seen_count), 0) FROM {t.ledger}")
    return int(cursor.fetchone()[0])


HISTORY_COLUMNS = ("id", "time_logged", "source_file", "source_line", "record_type", "category", "dsn_status",
                   "dsn_diag", "decision", "outcome", "subscriberid", "listid", "statid", "list_ids", "seen_count",
                   "undo_run", "guard_run", "feedback_type", "feedback_format", "user_agent", "reporting_mta",
                   "effects", "fingerprint")


def history(cursor: Cursor, t: Tables, email: str) -> list[dict]:
    """Every ledger row of an address (case-insensitive), in bounce-time order, with its undo run if undone and
    the run that ended its hold if the domain guard held it.

    Each is a dict of HISTORY_COLUMNS plus `undone_at` and `undone_by` (None unless undone) and `hold_ended_at`,
    `hold_ended_by`, `hold_ended_action` (None unless a `guard release` or `discard` ended a hold). For `explain`.
    """
    columns = ", ".join(f"l.{name}" for name in HISTORY_COLUMNS)
    cursor.execute(
        f"SELECT {columns}, UNIX_TIMESTAMP(a.started_at), a.operator, UNIX_TIMESTAMP(g.started_at), g.operator, "
        f"g.action FROM {t.ledger} AS l LEFT JOIN {t.audit} AS a ON a.id = l.undo_run "
        f"LEFT JOIN {t.audit} AS g ON g.id = l.guard_run WHERE l.email = %s ORDER BY l.time_logged, l.id",
        (email.strip(),),
    )
    rows = []
    for row in cursor.fetchall():
        entry = dict(zip(HISTORY_COLUMNS, row, strict=False))
        undone_at, undone_by, ended_at, ended_by, ended_action = row[len(HISTORY_COLUMNS):]
        entry["undone_at"] = float(undone_at) if undone_at is not None else None
        entry["undone_by"] = undone_by
        entry["hold_ended_at"] = float(ended_at) if ended_at is not None else None
        entry["hold_ended_by"] = ended_by
        entry["hold_ended_action"] = ended_action
        rows.append(entry)
    return rows
@dataclass(frozen=True)
class Extent:
    """How big the ledger is: `rows` is InnoDB's estimate (information_schema.TABLES.TABLE_ROWS, which can be
    off by tens of percent, but costs nothing where COUNT(*) would read 20 M rows); `oldest` a Unix time."""

    rows: int
    oldest: float | None


def extent(cursor: Cursor, t: Tables) -> Extent:
    """The ledger's estimated row count and its oldest row's applied_at (one dive into the applied index)."""
    cursor.execute(
        "SELECT COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = %s",
        (t.ledger.strip("`"),),
    )
    row = cursor.fetchone()
    cursor.execute(f"SELECT UNIX_TIMESTAMP(MIN(applied_at)) FROM {t.ledger}")
    oldest = cursor.fetchone()[0]
    return Extent(int(row[0]) if row else 0, float(oldest) if oldest is not None else None)


def server_time_before(cursor: Cursor, seconds: float) -> datetime:
    """The server's clock minus `seconds` (the ledger's applied_at is the server's time, not ours)."""
    cursor.execute("SELECT NOW(6) - INTERVAL %s MICROSECOND", (int(seconds * 1_000_000),))
    return cursor.fetchone()[0]


# Held records are evidence waiting for an operator's `guard release` or `discard` (issue 12): never pruned.
KEPT_BY_PRUNE = "outcome <> 'held'"


def older_than(cursor: Cursor, t: Tables, cutoff: datetime) -> tuple[Counter, datetime | None, datetime | None]:
    """What rows applied before `cutoff` hold: (count by outcome, oldest applied_at, newest applied_at)."""
    cursor.execute(
        f"SELECT outcome, COUNT(*), MIN(applied_at), MAX(applied_at) FROM {t.ledger} "
        f"WHERE applied_at < %s AND {KEPT_BY_PRUNE} GROUP BY outcome",
        (cutoff,),
    )
    counts: Counter = Counter()
    oldest = newest = None
    for outcome, count, first, last in cursor.fetchall():
        counts[outcome] += int(count)
        oldest = first if oldest is None or first < oldest else oldest
        newest = last if newest is None or last > newest else newest
    return counts, oldest, newest


def delete_older(cursor: Cursor, t: Tables, cutoff: datetime, limit: int) -> Counter:
    """Delete up to `limit` of the oldest rows applied before `cutoff`; their count by outcome.

    The rows are found with a plain read along the applied_at index and deleted
    by primary key, so the transaction locks exactly the rows it removes (old
    ones, which a worker only touches when a record comes back) and no gap.
    """
    cursor.execute(
        f"SELECT id, outcome FROM {t.ledger} WHERE applied_at < %s AND {KEPT_BY_PRUNE} "
        "ORDER BY applied_at LIMIT %s",
        (cutoff, limit),
    )
    rows = cursor.fetchall()
    if not rows:
        return Counter()
    ids = [row[0] for row in rows]
    cursor.execute(f"DELETE FROM {t.ledger} WHERE id IN ({', '.join(['%s'] * len(ids))})", ids)
    return Counter(row[1] for row in rows)
