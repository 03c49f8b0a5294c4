"""Our outbox: the events a batch causes, written in the batch's own transaction, sent after it commits.

One row per delivery: a `stream` row is one CloudEvent for the RabbitMQ
decision stream, a `webhook` row one call IEM would make (its URL and the
exact body). A rolled-back batch leaves no row; a committed row stays
`waiting` until a relay has sent it (`sent`), or, past the bound, `parked`
until an operator sends it again or drops it (`dropped`, kept for `explain`).

Relays claim due rows with SELECT … FOR UPDATE SKIP LOCKED (MariaDB 10.6+,
MySQL 8.0+) and push their `due_at` past a lease before sending, so several
relays never send one row at once, and a relay killed mid-send leaves rows
that come due again when the lease ends (at-least-once). Times in `due_at`
are the server's (UNIX_TIMESTAMP(NOW(6))), so relays on hosts with different
clocks agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .db import Cursor, Tables, insert_rows, table_exists

TARGETS = ("stream", "webhook")
STATES = ("waiting", "sent", "parked", "dropped")
_NOW = "UNIX_TIMESTAMP(NOW(6))"


def migration(t: Tables) -> list[str]:
    """Schema version 6 (issue 18): the outbox and the attempts of its webhook calls."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {t.outbox} (
  id bigint unsigned NOT NULL AUTO_INCREMENT,
  event_id char(36) CHARACTER SET ascii NOT NULL,
  target varchar(8) CHARACTER SET ascii NOT NULL,
  event varchar(64) CHARACTER SET ascii NOT NULL,
  fingerprint char(32) CHARACTER SET ascii NOT NULL DEFAULT '',
  webhookid int DEFAULT NULL,
  webhook_event int DEFAULT NULL,
  url varchar(2048) NOT NULL DEFAULT '',
  body mediumtext NOT NULL,
  state varchar(8) CHARACTER SET ascii NOT NULL DEFAULT 'waiting',
  attempts int unsigned NOT NULL DEFAULT 0,
  due_at double NOT NULL DEFAULT 0,
  last_answer varchar(255) NOT NULL DEFAULT '',
  created_at timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  sent_at timestamp(6) NULL DEFAULT NULL,
  PRIMARY KEY (id),
  KEY pmtabounce_outbox_due (state, target, due_at),
  KEY pmtabounce_outbox_record (fingerprint)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        f"""CREATE TABLE IF NOT EXISTS {t.outbox_attempts} (
  outbox_id bigint unsigned NOT NULL,
  attempt int unsigned NOT NULL,
  tried_at timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  status int DEFAULT NULL,
  answer varchar(255) NOT NULL DEFAULT '',
  seconds double NOT NULL DEFAULT 0,
  PRIMARY KEY (outbox_id, attempt)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    ]


@dataclass(frozen=True)
class Delivery:
    """One row to add: a stream event (`event` its routing key) or a webhook call (`event` IEM's name)."""

    event_id: str
    target: str  # 'stream' | 'webhook'
    event: str
    body: str  # the exact bytes to send, as text (IEM's json_encode writes ASCII only)
    fingerprint: str = ""  # the record it came from ('' for operator actions)
    webhookid: int | None = None
    webhook_event: int | None = None  # IEM's webhook_event_types id
    url: str = ""


@dataclass(frozen=True)
class Claimed:
    """A row a relay holds for one try."""

    id: int
    event_id: str
    target: str
    event: str
    body: str
    attempts: int  # tries before this one
    webhookid: int | None
    webhook_event: int | None
    url: str


def add(cursor: Cursor, t: Tables, deliveries: Sequence[Delivery]) -> None:
    """Add rows in the caller's transaction (due at once): one multi-row INSERT."""
    if not deliveries:
        return
    insert_rows(
        cursor,
        f"INSERT INTO {t.outbox} (event_id, target, event, fingerprint, webhookid, webhook_event, url, body) VALUES ",
        [(d.event_id, d.target, d.event, d.fingerprint, d.webhookid, d.webhook_event, d.url, d.body)
         for d in deliveries],
    )


def claim(cursor: Cursor, t: Tables, targets: Iterable[str], limit: int, lease: float) -> list[Claimed]:
    """Take up to `limit` due waiting rows of `targets` (oldest first) that no other relay holds, and push
    their due time `lease` seconds ahead; the caller commits at once, then sends.

    Earliest due first, then oldest: a new row is due at 0, so new rows go in the order they were written,
    before the retries that have come due. That is the order of pmtabounce_outbox_due (state, target,
    due_at; InnoDB appends the id), so for one target the scan reads the due rows in order and stops at
    `limit`, whether many rows are due or many wait for a retry later (ORDER BY id alone read and sorted
    every due row: 627,500 index reads to claim 5,000 calls 20 at a time, now 4,750)."""
    kinds = [k for k in targets if k in TARGETS]
    if not kinds:
        return []
    cursor.execute(
        f"SELECT id, event_id, target, event, body, attempts, webhookid, webhook_event, url FROM {t.outbox} "
        f"WHERE state = 'waiting' AND target IN ({', '.join(['%s'] * len(kinds))}) AND due_at <= {_NOW} "
        "ORDER BY due_at, id LIMIT %s FOR UPDATE SKIP LOCKED",
        [*kinds, limit],
    )
    rows = [Claimed(*row) for row in cursor.fetchall()]
    if rows:
        cursor.execute(
            f"UPDATE {t.outbox} SET due_at = {_NOW} + %s WHERE id IN ({', '.join(['%s'] * len(rows))})",
            [lease, *(r.id for r in rows)],
        )
    return rows


def sent(cursor: Cursor, t: Tables, ids: Sequence[int], answer: str = "") -> None:
    """These rows reached their target."""
    if ids:
        cursor.execute(
            f"UPDATE {t.outbox} SET state = 'sent', attempts = attempts + 1, sent_at = NOW(6), last_answer = %s "
            f"WHERE id IN ({', '.join(['%s'] * len(ids))})",
            [answer[:255], *ids],
        )


def failed(cursor: Cursor, t: Tables, row_id: int, answer: str, delay: float, park: bool) -> None:
    """A try that did not reach the target: due again in `delay` seconds, or parked."""
    cursor.execute(
        f"UPDATE {t.outbox} SET attempts = attempts + 1, last_answer = %s, state = %s, due_at = {_NOW} + %s "
        "WHERE id = %s",
        (answer[:255], "parked" if park else "waiting", delay, row_id),
    )


def put_back(cursor: Cursor, t: Tables, row_id: int, delay: float) -> None:
    """A claimed row not tried (its receiver did not answer the call before it): due again in `delay` seconds,
    its tries unchanged."""
    cursor.execute(f"UPDATE {t.outbox} SET due_at = {_NOW} + %s WHERE id = %s", (delay, row_id))


def hold_url(cursor: Cursor, t: Tables, url: str, delay: float) -> int:
    """A receiver that did not answer: every waiting call to `url` due sooner than `delay` seconds from now is
    due then instead, its tries unchanged, so that the next claims take other receivers' calls rather than
    one timeout per claim on this one's backlog. A call another relay holds (its lease runs further) is left
    alone. Returns the calls held."""
    cursor.execute(f"UPDATE {t.outbox} SET due_at = {_NOW} + %s WHERE state = 'waiting' AND target = 'webhook' "
                   f"AND url = %s AND due_at < {_NOW} + %s", (delay, url, delay))
    return cursor.rowcount


@dataclass(frozen=True)
class Attempt:
    """One webhook call's answer: the HTTP status (None for none), the body or the error, the seconds it took."""

    outbox_id: int
    status: int | None
    answer: str
    seconds: float


def attempts(cursor: Cursor, t: Tables, tried: Sequence[Attempt]) -> None:
    """The answers of several calls, for `explain`, each numbered after its row's tries already kept (`webhooks
    retry` starts the row's count of tries afresh in outbox.attempts; the tries before it stay in the history):
    one read of the numbers so far, one multi-row INSERT. The caller holds the rows (claimed, leased), so no
    other relay numbers their tries meanwhile; a clash on (outbox_id, attempt) would fail the transaction."""
    if not tried:
        return
    ids = sorted({a.outbox_id for a in tried})
    cursor.execute(f"SELECT outbox_id, MAX(attempt) FROM {t.outbox_attempts} "
                   f"WHERE outbox_id IN ({', '.join(['%s'] * len(ids))}) GROUP BY outbox_id", ids)
    kept = {row[0]: row[1] for row in cursor.fetchall()}
    rows = []
    for a in tried:
        kept[a.outbox_id] = number = (kept.get(a.outbox_id) or 0) + 1
        rows.append((a.outbox_id, number, a.status, a.answer[:255], a.seconds))
    cursor.executemany(f"INSERT INTO {t.outbox_attempts} (outbox_id, attempt, status, answer, seconds) "
                       "VALUES (%s, %s, %s, %s, %s)", rows)


def delete_older(cursor: Cursor, t: Tables, cutoff, limit: int) -> int:
    """Remove up to `limit` rows created before `cutoff` (a server datetime) that are done with (`sent` or
    `dropped`), with their attempts, in the caller's transaction; the rows removed. A `waiting` or `parked`
    row is never removed, whatever its age (`pmtabounce prune`)."""
    cursor.execute(f"SELECT id FROM {t.outbox} WHERE state IN ('sent', 'dropped') AND created_at < %s "
                   "ORDER BY id LIMIT %s FOR UPDATE", (cutoff, limit))
    ids = [row[0] for row in cursor.fetchall()]
    if ids:
        marks = ", ".join(["%s"] * len(ids))
        cursor.execute(f"DELETE FROM {t.outbox_attempts} WHERE outbox_id IN ({marks})", ids)
        cursor.execute(f"DELETE FROM {t.outbox} WHERE id IN ({marks})", ids)
    return len(ids)


def counts(cursor: Cursor, t: Tables) -> dict[tuple[str, str], int]:
    """(target, state) -> rows, for the waiting and parked ones (sent rows are history)."""
    cursor.execute(f"SELECT target, state, COUNT(*) FROM {t.outbox} WHERE state IN ('waiting', 'parked') "
                   "GROUP BY target, state")
    return {(target, state): int(n) for target, state, n in cursor.fetchall()}


LIST_COLUMNS = ("id", "event_id", "target", "event", "fingerprint", "webhookid", "url", "state", "attempts",
                "last_answer", "created_at", "body")


def listed(cursor: Cursor, t: Tables, state: str, limit: int, ids: Sequence[int] = ()) -> list[dict]:
    """Rows in `state` (oldest first), or just `ids` of them, as dicts of LIST_COLUMNS."""
    where = "state = %s"
    params: list[object] = [state]
    if ids:
        where += f" AND id IN ({', '.join(['%s'] * len(ids))})"
        params += list(ids)
    cursor.execute(f"SELECT {', '.join(LIST_COLUMNS)} FROM {t.outbox} WHERE {where} ORDER BY id LIMIT %s",
                   [*params, limit])
    return [dict(zip(LIST_COLUMNS, row, strict=True)) for row in cursor.fetchall()]


def move(cursor: Cursor, t: Tables, from_state: str, to_state: str, ids: Sequence[int] = ()) -> int:
    """Parked rows back to `waiting` (due now, attempts from zero) or to `dropped`; all of them when no ids.
    Returns the rows moved."""
    where = "state = %s"
    params: list[object] = [from_state]
    if ids:
        where += f" AND id IN ({', '.join(['%s'] * len(ids))})"
        params += list(ids)
    reset = ", attempts = 0, due_at = 0" if to_state == "waiting" else ""
    cursor.execute(f"UPDATE {t.outbox} SET state = %s{reset} WHERE {where}", [to_state, *params])
    return int(cursor.rowcount)


def of_records(cursor: Cursor, t: Tables, fingerprints: Sequence[str]) -> dict[str, list[dict]]:
    """fingerprint -> its events, each with its webhook call's attempts (for `explain`)."""
    if not fingerprints:
        return {}
    cursor.execute(
        f"SELECT id, fingerprint, target, event, event_id, url, state, attempts, last_answer, "
        f"UNIX_TIMESTAMP(sent_at) FROM {t.outbox} WHERE fingerprint IN ({', '.join(['%s'] * len(fingerprints))}) "
        "ORDER BY id",
        list(fingerprints),
    )
    columns = ("id", "fingerprint", "target", "event", "event_id", "url", "state", "attempts", "last_answer",
               "sent_at")
    events = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    for e in events:
        e["sent_at"] = float(e["sent_at"]) if e["sent_at"] is not None else None
    tries: dict[int, list[dict]] = {}
    ids = [e["id"] for e in events if e["target"] == "webhook"]
    if ids:
        cursor.execute(
            f"SELECT outbox_id, attempt, UNIX_TIMESTAMP(tried_at), status, answer, seconds FROM {t.outbox_attempts} "
            f"WHERE outbox_id IN ({', '.join(['%s'] * len(ids))}) ORDER BY outbox_id, attempt",
            ids,
        )
        for outbox_id, number, at, status, answer, seconds in cursor.fetchall():
            tries.setdefault(outbox_id, []).append({"attempt": number, "at": float(at), "status": status,
                                                     "answer": answer, "seconds": seconds})
    found: dict[str, list[dict]] = {}
    for e in events:
        e["tries"] = tries.get(e["id"], [])
        found.setdefault(e.pop("fingerprint"), []).append(e)
    return found


def present(cursor: Cursor, t: Tables) -> bool:
    """Whether schema version 6 is in place (an installation not yet set up again has no outbox)."""
    return table_exists(cursor, t.outbox)


def summary(cursor: Cursor, t: Tables, seconds: int) -> dict[str, dict[str, int]]:
    """target -> waiting, parked, sent (in the last `seconds`), retried (events created in the last `seconds`
    that needed more than one try, or wait for another after a failed one), for `status`; every target shown."""
    cursor.execute(
        f"SELECT target, SUM(state = 'waiting'), SUM(state = 'parked'), "
        f"SUM(state = 'sent' AND sent_at >= NOW(6) - INTERVAL %s SECOND), "
        f"SUM(created_at >= NOW(6) - INTERVAL %s SECOND AND (attempts > 1 OR (state <> 'sent' AND attempts > 0))) "
        f"FROM {t.outbox} GROUP BY target",
        (seconds, seconds),
    )
    found = {target: {"waiting": 0, "parked": 0, "sent": 0, "retried": 0} for target in TARGETS}
    for target, waiting, parked, sent_, retried in cursor.fetchall():
        found[target] = {"waiting": int(waiting or 0), "parked": int(parked or 0), "sent": int(sent_ or 0),
                         "retried": int(retried or 0)}
    return found


def next_due(cursor: Cursor, t: Tables, targets: Iterable[str]) -> float | None:
    """Seconds until the earliest waiting row of `targets` is due (0 if one is now); None when none waits."""
    kinds = [k for k in targets if k in TARGETS]
    if not kinds:
        return None
    cursor.execute(f"SELECT MIN(due_at) - {_NOW} FROM {t.outbox} WHERE state = 'waiting' "
                   f"AND target IN ({', '.join(['%s'] * len(kinds))})", kinds)
    found = cursor.fetchone()[0]
    return None if found is None else max(0.0, float(found))
