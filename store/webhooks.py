"""IEM 6.5.1's list webhooks: which URLs an event goes to, the payloads IEM sends, the log row IEM writes.

Spec: iem-webhooks.md. IEM's tables are read, and its log written, never altered. Sending is not here
(worker/webhook_http.py); neither is deciding which events a batch causes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pymysql

from ..common.php import serialize
from .db import Cursor, Tables, error_number

# IEM's webhook_event_types ids (the only ones a list webhook fires on).
EVENT_SUBSCRIBE = 1
EVENT_UNSUBSCRIBE = 2
EVENT_BOUNCE = 3
WEBHOOK_TYPE_LIST = 1  # IEM's webhook_types: 1 List, 2 Campaign
RESPONSE_LENGTH = 255  # webhook_logs.webhook_response is varchar(255)
NO_ANSWER = "0"  # what IEM logs when curl_exec returned false: Quote(false) gives 0


@dataclass(frozen=True)
class WebhookTarget:
    """One row of `<prefix>webhooks` to post to: its id and URL (as stored)."""

    webhookid: int
    url: str


def webhook_tables_present(cursor: Cursor, tables: Tables) -> bool:
    """Whether this IEM has webhooks (6.5.1 on): both `<prefix>webhooks` and `<prefix>webhook_logs` exist.

    An IEM before 6.5.1 has neither: then there is nothing to send (spec, first section). Read from
    information_schema, which shows a table to a user with any grant on it."""
    wanted = [name.strip("`") for name in (tables.webhooks, tables.webhook_logs)]
    cursor.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name IN (%s, %s)",
        wanted,
    )
    found = {row[0].lower() for row in cursor.fetchall()}
    return all(name.lower() in found for name in wanted)


def list_targets(cursor: Cursor, tables: Tables,
                 listids: Iterable[int]) -> dict[tuple[int, int], list[WebhookTarget]]:
    """The list webhooks of `listids`, keyed (listid, event), each list in webhookid order; one statement.

    IEM's selection (spec "Which URLs": `id` = the list, `webhook_type_id` 1, by webhookid) with our two
    documented deviations: a row with `active` 0 is left out (IEM posts to it), and a row with an
    empty URL is skipped while the later rows are still called (IEM stops at it). Lists without any
    webhook are absent from the result."""
    wanted = sorted(set(listids))
    if not wanted:
        return {}
    cursor.execute(
        f"SELECT webhookid, id, webhook_event_type_id, webhook_url FROM {tables.webhooks} "
        "WHERE webhook_type_id = %s AND active = 1 AND webhook_url <> '' "
        f"AND id IN ({', '.join(['%s'] * len(wanted))}) ORDER BY webhookid",
        [WEBHOOK_TYPE_LIST, *wanted],
    )
    targets: dict[tuple[int, int], list[WebhookTarget]] = {}
    for webhookid, listid, event, url in cursor.fetchall():
        targets.setdefault((listid, event), []).append(WebhookTarget(webhookid, url))
    return targets


def bounce_payload(listname: str, emailaddress: str, bouncedate: int) -> dict:
    """The Bounce event's payload, keys in IEM's order; `bouncedate` is the time written to `bounced`."""
    return {"event": "Bounce", "listname": listname, "emailaddress": emailaddress, "bounced": 1,
            "bouncedate": bouncedate}


def unsubscribe_payload(listname: str, emailaddress: str, unsubscribedate: int) -> dict:
    """The Unsubscribe event's payload, keys in IEM's order; `unsubscribedate` is the unsubscribe time written."""
    return {"event": "Unsubscribe", "listname": listname, "emailaddress": emailaddress, "unsubscribed": 1,
            "unsubscribedate": unsubscribedate}


def subscribe_payload(cursor: Cursor, tables: Tables, listid: int, subscriberid: int) -> dict:
    """The Subscribe event's payload for subscriber `subscriberid` on list `listid`, read now (two statements).

    `confirmed` and `confirmdate` are strings, as PHP's MySQL driver returns every column (NULL stays
    None: JSON null). `customfields` follows IEM's LoadSubscriberCustomFields (spec "The request"):
    the fields mapped to the list, first those with a `<prefix>subscribers_data` row for the subscriber
    (its data, by fieldid), then the rest as "" in IEM's field order (name, fieldid); a later field of
    the same name overwrites an earlier one's value, the key keeping its first place. The key is absent
    when the list has no custom fields.
    Raises LookupError when the subscriber is not on that list (IEM then sends nothing)."""
    cursor.execute(
        f"SELECT l.name, s.emailaddress, s.confirmed, s.confirmdate FROM {tables.subscribers} s "
        f"JOIN {tables.lists} l ON l.listid = s.listid WHERE s.subscriberid = %s AND s.listid = %s",
        (subscriberid, listid),
    )
    row = cursor.fetchone()
    if row is None:
        raise LookupError(f"subscriber {subscriberid} is not on IEM list {listid}")
    listname, emailaddress, confirmed, confirmdate = row
    payload: dict = {"event": "Subscribe", "listname": listname, "emailaddress": emailaddress,
               "confirmed": _php_string(confirmed), "confirmdate": _php_string(confirmdate)}
    fields = _list_fields(cursor, tables, listid, subscriberid)
    if fields:
        payload["customfields"] = fields
    return payload


def _list_fields(cursor: Cursor, tables: Tables, listid: int, subscriberid: int) -> dict:
    cursor.execute(
        f"SELECT f.fieldid, f.name, d.fieldid IS NOT NULL, d.data FROM {tables.customfield_lists} cl "
        f"JOIN {tables.customfields} f ON f.fieldid = cl.fieldid "
        f"LEFT JOIN {tables.subscribers_data} d ON d.fieldid = f.fieldid AND d.subscriberid = %s "
        "WHERE cl.listid = %s ORDER BY f.name, f.fieldid",
        (subscriberid, listid),
    )
    # A field mapped twice to the list comes twice, with the same name and value: no change to the result.
    rows = cursor.fetchall()
    with_data = sorted((row for row in rows if row[2]), key=lambda row: row[0])  # subscribers_data's order
    fields: dict = {}
    for _, name, has_data, data in with_data + [row for row in rows if not row[2]]:
        fields["" if name is None else name] = data if has_data else ""  # PHP makes a null key ""
    return fields


def _php_string(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class LoggedCall:
    """One call tried, for its `<prefix>webhook_logs` row: `event` EVENT_*; `response` the answer's body whatever
    the status ("" for an empty one), None when no answer came (IEM writes '0'); `logdate` the time of the call
    (Unix seconds)."""

    event: int
    url: str
    payload: dict
    response: str | None
    logdate: int


def log_calls(cursor: Cursor, tables: Tables, calls: Sequence[LoggedCall]) -> None:
    """Write the `<prefix>webhook_logs` row of each call tried, as IEM 6.5.1 writes it (spec "The log row"), in one
    multi-row INSERT (PyMySQL's executemany): the relay logs a chunk of calls at once.

    The response is cut to 255 characters, where IEM's INSERT would fail under a strict sql_mode and lose the
    row. `logmsg` is PHP's serialize() of ["url" => url, "payload" => payload]. Raises what PyMySQL raises."""
    if not calls:
        return
    statement = (f"INSERT INTO {tables.webhook_logs} (webhook_type_id, webhook_event_type_id, logmsg, "
                 "webhook_response, logdate) VALUES (%s, %s, %s, %s, %s)")
    rows = [(WEBHOOK_TYPE_LIST, c.event, serialize({"url": c.url, "payload": c.payload}).decode("utf-8"),
             NO_ANSWER if c.response is None else c.response[:RESPONSE_LENGTH], c.logdate) for c in calls]
    try:
        cursor.executemany(statement, rows)
    except pymysql.err.MySQLError as exc:
        # IEM's own webhook_logs is often utf8 (3 bytes a character): a receiver's answer with a character
        # beyond (an emoji) is refused under a strict sql_mode, and the chunk's answers with it. Logged with
        # '?' for such a character, as MySQL itself stores it under a lax sql_mode.
        if error_number(exc) != _INCORRECT_STRING:
            raise
        cursor.executemany(statement, [(*row[:2], _bmp(row[2]), _bmp(row[3]), row[4]) for row in rows])


_INCORRECT_STRING = 1366


def _bmp(text: str) -> str:
    """`text` with every character beyond the Basic Multilingual Plane (4 bytes in UTF-8) as '?'."""
    return "".join(char if ord(char) <= 0xFFFF else "?" for char in text)
