"""What a transaction's decisions send: the outbox rows for the decision stream and IEM's list webhooks.

Called with the transaction's own cursor (the batch's, undo's, the guard
command's), so the rows commit or roll back with the change they report
(docs/events.md). Webhook bodies are built here, in the transaction: the
subscriber's address as the row holds it after the change, the list's name
as it is now (iem-webhooks.md "Which URLs"). Set-based: one statement per
batch finds the webhooks of the batch's lists, and one more reads the names
only when some list has one; an IEM without webhook tables (before 6.5.1) is
asked once per connection and then left alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ..common.complaint import ComplaintRecord
from ..common.events import bounce_key, envelope, event_id
from ..common.guard import Trip, domain_of
from ..common.php import json_encode
from . import outbox, webhooks
from .db import Cursor, Tables
from .outbox import Delivery
from .rows import Outcome

# IEM's webhook event names, as the outbox and `explain` show them.
WEBHOOK_EVENTS = {webhooks.EVENT_SUBSCRIBE: "Subscribe", webhooks.EVENT_UNSUBSCRIBE: "Unsubscribe",
                  webhooks.EVENT_BOUNCE: "Bounce"}


@dataclass(frozen=True)
class Change:
    """A subscriber row whose state IEM would announce: (event, subscriberid, listid, event date)."""

    event: int
    subscriberid: int
    listid: int
    when: int
    fingerprint: str


@dataclass(frozen=True)
class CallReads:
    """What a batch's webhook calls read: `targets`, (listid, event) -> the list's webhooks
    (webhooks.list_targets); `names`, subscriberid -> (list name, emailaddress) (subscriber_names)."""

    targets: dict[tuple[int, int], list[webhooks.WebhookTarget]]
    names: dict[int, tuple[str, str]]


def _decided(outcomes: Sequence[Outcome]) -> Iterator[tuple[Outcome, str, list[Change]]]:
    """(outcome, its stream routing key, the rows it changed as IEM would announce them) for each outcome
    that changed IEM or the guard: a complaint's unsubscribes, a bounce's key (bounce_key) and its disable."""
    for o in outcomes:
        r = o.record
        if isinstance(r, ComplaintRecord):
            if o.outcome == "unsubscribed":
                yield o, "complaint.unsubscribed", [
                    Change(webhooks.EVENT_UNSUBSCRIBE, u.subscriberid, u.listid, u.unsubscribetime, r.fingerprint)
                    for u in o.unsubscribed]
            continue
        key = bounce_key(o.decision, o.outcome)
        if key is None:
            continue
        disabled = o.effects.disabled if o.effects else None
        yield o, key, ([Change(webhooks.EVENT_BOUNCE, disabled[0], disabled[1], disabled[2], r.fingerprint)]
                       if disabled else [])


class Events:
    """Writes a transaction's outbox rows. One per connection (it remembers whether IEM has webhooks).

    `stream`: PMTABOUNCE_EVENT_STREAM (decision stream rows); `webhooks`: PMTABOUNCE_WEBHOOKS.
    """

    def __init__(self, tables: Tables, *, stream: bool, webhooks: bool) -> None:
        self.tables = tables
        self.stream = stream
        self.webhooks = webhooks
        self._has_webhooks: bool | None = None

    @property
    def enabled(self) -> bool:
        return self.stream or self.webhooks

    def forget(self) -> None:
        """A new connection may reach an upgraded IEM: ask again whether it has webhook tables."""
        self._has_webhooks = None

    def for_outcomes(self, cursor, outcomes: Sequence[Outcome], looked_up: CallReads | None = None) -> None:
        """The events of a batch's new outcomes: one stream event per decision that changed IEM or the
        guard, one webhook call per (changed row, list webhook of its event). `looked_up`: what `look_up`
        read for these outcomes, or None to read it here."""
        if not self.enabled:
            return
        rows: list[Delivery] = []
        changes: list[Change] = []
        now = time.time()
        for o, key, changed in _decided(outcomes):
            changes += changed
            r = o.record
            if self.stream:
                rows.append(Delivery(event_id(r.fingerprint, key), "stream", key,
                                     envelope(key, event_id(r.fingerprint, key), record_data(o), now,
                                              o.email or r.rcpt).decode(), r.fingerprint))
        if self.webhooks and changes:
            rows += self._calls(cursor, changes, looked_up=looked_up)
        outbox.add(cursor, self.tables, rows)

    def look_up(self, cursor, outcomes: Sequence[Outcome]) -> CallReads | None:
        """What `for_outcomes` reads for these outcomes' webhook calls (the lists' webhooks, the rows'
        addresses and list names), read now: a batch asks it before sending its writes behind
        (store/db.py writes_behind), where a read would wait for every write sent before it. The rows are
        locked by the batch and its writes change neither address nor list name: the bodies are the same.
        None without webhooks."""
        if not self.webhooks:
            return None
        return self._read_for(cursor, [change for _, _, changed in _decided(outcomes) for change in changed])

    def for_trips(self, cursor, trips: Iterable[Trip]) -> None:
        """A `guard.tripped` event per domain the batch tripped."""
        self.decision(cursor, "guard.tripped", [
            ({"domain": trip.domain, "window_start": trip.window_start, "count": trip.count,
              "threshold": trip.threshold, "by": "worker", "record": {"fingerprint": trip.record.fingerprint,
              "source_file": trip.record.source_file, "source_line": trip.record.source_line}},
             (trip.domain, trip.window_start), trip.domain) for trip in trips])

    def decision(self, cursor, key: str, items: Iterable[tuple[dict, tuple, str]], fingerprint: str = "") -> None:
        """Stream events for operator decisions (`guard.released`, `undo.reverted`…): (data, parts that make
        its id unique, subject) each."""
        if not self.stream:
            return
        now = time.time()
        rows = []
        for data, parts, subject in items:
            ident = event_id(key, *parts)
            rows.append(Delivery(ident, "stream", key, envelope(key, ident, data, now, subject).decode(),
                                 data.get("fingerprint", fingerprint)))
        outbox.add(cursor, self.tables, rows)

    def for_reactivations(self, cursor, reactivated: Sequence[tuple[int, int, str]], run: int) -> None:
        """IEM's re-activation webhook (Subscribe, with customfields) for rows `undo` made active again:
        (subscriberid, listid, the undone record's fingerprint) each, read after the change."""
        if not (self.webhooks and reactivated):
            return
        now = int(time.time())
        changes = [Change(webhooks.EVENT_SUBSCRIBE, sid, listid, now, f"{fingerprint}") for sid, listid, fingerprint
                   in reactivated]
        outbox.add(cursor, self.tables, self._calls(cursor, changes, salt=run))

    def for_undo(self, cursor, rows: Sequence[dict], effects: Sequence, reactivate: dict[int, int],
                 resubscribe: dict[int, int], run: int) -> None:
        """`undo` run `run` reverted these ledger rows (store/undo.py `Effect`s): an `undo.reverted` event each,
        and IEM's Subscribe webhook for each row it made active again (`reactivate`, `resubscribe`:
        subscriberid -> listid)."""
        if not self.enabled:
            return
        fingerprints = {row["id"]: row.get("fingerprint", "") for row in rows}
        made_active: list[tuple[int, int, str]] = []
        items = []
        for e in effects:
            fingerprint = fingerprints.get(e.ledger_id, "")
            reenabled = [[e.disabled[0], e.disabled[1]]] if e.disabled and e.disabled[0] in reactivate else []
            resubscribed = [[u.subscriberid, u.listid] for u in e.unsubscribed if resubscribe.get(u.subscriberid)
                            == u.listid]
            made_active += [(sid, listid, fingerprint) for sid, listid in reenabled + resubscribed]
            items.append(({"fingerprint": fingerprint, "ledger_id": e.ledger_id, "email": e.email, "run": run,
                           "reenabled": reenabled, "resubscribed": resubscribed,
                           "bounce_row_removed": bool(e.bounce_row)}, (e.ledger_id, run), e.email))
        self.decision(cursor, "undo.reverted", items)
        self.for_reactivations(cursor, made_active, run)

    def _read_for(self, cursor, changes: Sequence[Change]) -> CallReads:
        """The webhooks of these changes' lists and their rows' names: nothing read beyond one statement
        unless a list has a webhook, nothing at all without webhook tables or changes."""
        if not changes:
            return CallReads({}, {})
        if self._has_webhooks is None:
            self._has_webhooks = webhooks.webhook_tables_present(cursor, self.tables)
        if not self._has_webhooks:
            return CallReads({}, {})
        targets = webhooks.list_targets(cursor, self.tables, {c.listid for c in changes})
        named = {c.subscriberid for c in changes if targets.get((c.listid, c.event))
                 and c.event != webhooks.EVENT_SUBSCRIBE}
        return CallReads(targets, subscriber_names(cursor, self.tables, named) if named else {})

    def _calls(self, cursor, changes: Sequence[Change], salt: object = "",
               looked_up: CallReads | None = None) -> list[Delivery]:
        """The webhook calls of these changes (`looked_up`: `_read_for`'s answer for them, else read here)."""
        reads = self._read_for(cursor, changes) if looked_up is None else looked_up
        targets, names = reads.targets, reads.names
        wanted = [c for c in changes if targets.get((c.listid, c.event))]
        if not wanted:
            return []
        calls = []
        for c in wanted:
            if c.event == webhooks.EVENT_SUBSCRIBE:
                payload = webhooks.subscribe_payload(cursor, self.tables, c.listid, c.subscriberid)
            elif c.event == webhooks.EVENT_BOUNCE:
                payload = webhooks.bounce_payload(*names[c.subscriberid], c.when)
            else:
                payload = webhooks.unsubscribe_payload(*names[c.subscriberid], c.when)
            body = json_encode(payload).decode("ascii")
            for target in targets[(c.listid, c.event)]:
                ident = event_id(c.fingerprint, "webhook", c.event, c.subscriberid, c.listid, target.webhookid, salt)
                calls.append(Delivery(ident, "webhook", WEBHOOK_EVENTS[c.event], body, c.fingerprint,
                                      target.webhookid, c.event, target.url))
        return calls


def subscriber_names(cursor: Cursor, t: Tables, subscriberids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """subscriberid -> (its list's name, its emailaddress as stored), read in the caller's transaction."""
    ids = sorted(subscriberids)
    if not ids:
        return {}
    # The subscribers by primary key, then each one's list: left to itself, on statistics from before a bulk
    # import, MariaDB read the few lists first and every subscriber of each through its listid index (3.9 ms
    # for 112 rows on 31k subscribers; by key 1.0 ms, the round trip included).
    cursor.execute(
        f"SELECT STRAIGHT_JOIN s.subscriberid, l.name, s.emailaddress FROM {t.subscribers} AS s FORCE INDEX (PRIMARY) "
        f"JOIN {t.lists} AS l ON l.listid = s.listid WHERE s.subscriberid IN ({', '.join(['%s'] * len(ids))})",
        ids,
    )
    return {int(sid): (name or "", email or "") for sid, name, email in cursor.fetchall()}


def record_data(o: Outcome) -> dict:
    """The stream event's `data` for one record's decision (docs/events.md, "What a consumer gets")."""
    r = o.record
    data: dict = {"fingerprint": r.fingerprint, "email": o.email or r.rcpt, "domain": domain_of(o.email or r.rcpt),
                  "time_logged": r.time_logged, "source_file": r.source_file, "source_line": r.source_line,
                  "list_ids": list(r.list_ids), "statid": r.statid, "outcome": o.outcome, "decision": o.decision}
    if isinstance(r, ComplaintRecord):
        data.update(record_type="f", feedback_type=r.feedback_type, feedback_format=r.format,
                    user_agent=r.user_agent, reporting_mta=r.reporting_mta,
                    unsubscribed=[{"subscriberid": u.subscriberid, "listid": u.listid,
                                   "unsubscribetime": u.unsubscribetime} for u in o.unsubscribed])
    else:
        data.update(record_type=r.type, category=r.category, dsn_status=r.dsn_status, dsn_diag=r.dsn_diag,
                    subscriberid=o.subscriberid, listid=o.listid)
    return data


def from_settings(settings, tables: Tables) -> Events:
    """The Events of PMTABOUNCE_EVENT_STREAM and PMTABOUNCE_WEBHOOKS (a common.config.Settings)."""
    return Events(tables, stream=settings.event_stream, webhooks=settings.webhooks)
