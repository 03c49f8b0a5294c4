"""IEM 6.5.1's list webhooks: which URLs a list's event goes to, the payloads, the log row
(iem-webhooks.md). Stand-in written against EVENTS-INTERFACE.md until the php helper's module lands."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ..common.php import serialize
from .db import Tables

EVENT_SUBSCRIBE, EVENT_UNSUBSCRIBE, EVENT_BOUNCE = 1, 2, 3
LIST_WEBHOOK = 1


@dataclass(frozen=True)
class WebhookTarget:
    webhookid: int
    url: str


def webhook_tables_present(cursor, tables: Tables) -> bool:
    """True when IEM has list webhooks (6.5.1 and later): its webhooks and webhook_logs tables exist."""
    cursor.execute(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (%s, %s)",
        (tables.webhooks.strip("`"), tables.webhook_logs.strip("`")),
    )
    return int(cursor.fetchone()[0]) == 2


def list_targets(cursor, tables: Tables, listids: Iterable[int]) -> dict[tuple[int, int], list[WebhookTarget]]:
    """(listid, event) -> the active list webhooks with a URL, by webhookid. One statement."""
    ids = sorted(set(listids))
    if not ids:
        return {}
    cursor.execute(
        f"SELECT id, webhook_event_type_id, webhookid, webhook_url FROM {tables.webhooks} "
        f"WHERE webhook_type_id = 1 AND active = 1 AND webhook_url <> '' AND id IN ({', '.join(['%s'] * len(ids))}) "
        "ORDER BY webhookid",
        ids,
    )
    found: dict[tuple[int, int], list[WebhookTarget]] = defaultdict(list)
    for listid, event, webhookid, url in cursor.fetchall():
        found[(int(listid), int(event))].append(WebhookTarget(int(webhookid), url))
    return dict(found)


def bounce_payload(listname: str, emailaddress: str, bouncedate: int) -> dict:
    return {"event": "Bounce", "listname": listname, "emailaddress": emailaddress, "bounced": 1,
            "bouncedate": bouncedate}


def unsubscribe_payload(listname: str, emailaddress: str, unsubscribedate: int) -> dict:
    return {"event": "Unsubscribe", "listname": listname, "emailaddress": emailaddress, "unsubscribed": 1,
            "unsubscribedate": unsubscribedate}


def subscribe_payload(cursor, tables: Tables, listid: int, subscriberid: int) -> dict:
    cursor.execute(
        f"SELECT l.name, s.emailaddress, s.confirmed, s.confirmdate FROM {tables.subscribers} AS s "
        f"JOIN {tables.lists} AS l ON l.listid = s.listid WHERE s.subscriberid = %s AND s.listid = %s",
        (subscriberid, listid),
    )
    name, email, confirmed, confirmdate = cursor.fetchone()
    payload = {"event": "Subscribe", "listname": name, "emailaddress": email, "confirmed": str(confirmed),
               "confirmdate": str(confirmdate)}
    cursor.execute(
        f"SELECT f.fieldid, f.name FROM {tables.customfield_lists} AS cl JOIN {tables.customfields} AS f "
        "ON f.fieldid = cl.fieldid WHERE cl.listid = %s ORDER BY f.name, f.fieldid",
        (listid,),
    )
    fields = cursor.fetchall()
    if not fields:
        return payload
    cursor.execute(f"SELECT fieldid, data FROM {tables.subscribers_data} WHERE subscriberid = %s", (subscriberid,))
    data = {int(fid): value for fid, value in cursor.fetchall()}
    names = {int(fid): name for fid, name in fields}
    custom: dict = {}
    for fid, value in data.items():
        if fid in names:
            custom[names[fid]] = value or ""
    for fid, name in fields:
        if int(fid) not in data:
            custom[name] = ""
    payload["customfields"] = custom
    return payload


def log_call(cursor, tables: Tables, event: int, url: str, payload: dict, response: str | None,
             logdate: int) -> None:
    """One webhook_logs row as IEM writes it (no answer: '0'; the response cut to 255 characters)."""
    cursor.execute(
        f"INSERT INTO {tables.webhook_logs} (webhook_type_id, webhook_event_type_id, logmsg, webhook_response, "
        "logdate) VALUES (1, %s, %s, %s, %s)",
        (event, serialize({"url": url, "payload": payload}).decode(), "0" if response is None else response[:255],
         logdate),
    )
