"""An expected-state model of the IEM bounce and complaint contracts, written from the specs alone.

It does not import the worker's planner or SQL: it is a second, deliberately
naive reading of iem-bounces.md's five steps and iem-complaints.md (default
policy: abuse and empty act, scope `all`), one record at a time, in file and
line order, over plain dicts, so that a full run of the real code can be
checked against it table by table. Only the accounting-file parser (with its
reading of IEM's List-Unsubscribe link) is shared.

    expected = IemState.from_database(connection, tables)
    outcomes = BounceModel(expected).apply_directory(directory)   # before the run renames the files
    ... run pmtabounce ...
    assert not differences(expected, IemState.from_database(connection, tables))
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pmtabounce.common.accounting import AccountingFile, RejectedRow
from pmtabounce.common.complaint import ComplaintRecord
from pmtabounce.common.record import BounceRecord

HARD = frozenset({"bad-mailbox", "inactive-mailbox", "bad-domain"})
SOFT = frozenset({"quota-issues", "no-answer-from-host", "relaying-issues", "routing-errors"})
STAT_COLUMN = {"hard": 1, "soft": 0, "ignore": 2}  # index into (soft, hard, unknown, unsubscribecount)
UNSUBSCRIBES = 3


@dataclass
class Subscriber:
    listid: int
    emailaddress: str
    confirmed: str
    bounced: int
    unsubscribed: int
    unsubscribeconfirmed: str = "0"
    confirmcode: str = ""


@dataclass
class LedgerEntry:
    """What the ledger must say about the first occurrence of a record."""

    outcome: str
    decision: str
    subscriberid: int | None
    listid: int | None
    email: str
    statid: int
    category: str
    time_logged: int
    dsn_status: str
    dsn_diag: str


@dataclass
class IemState:
    """The rows of IEM's tables that bounces touch, and our ledger, as plain data."""

    subscribers: dict[int, Subscriber] = field(default_factory=dict)
    # (subscriberid, statid, listid, bouncetime, bouncetype, bouncerule, bouncemessage) -> how many such rows
    bounces: Counter = field(default_factory=Counter)
    # listid -> [subscribecount, unsubscribecount, bouncecount]
    lists: dict[int, list[int]] = field(default_factory=dict)
    newsletters: dict[int, list[int]] = field(default_factory=dict)  # statid -> [soft, hard, unknown, unsubscribes]
    autoresponders: dict[int, list[int]] = field(default_factory=dict)
    # email_list_subscribers_unsubscribe: (subscriberid, listid) -> its rows in insertion order, each
    # (unsubscribetime, unsubscribeip, unsubscriberequesttime, unsubscriberequestip, statid, unsubscribearea)
    unsubscribes: dict[tuple[int, int], list[tuple]] = field(default_factory=dict)
    ledger: dict[tuple[str, int], LedgerEntry] = field(default_factory=dict)  # (file, line) -> entry
    seen: dict[tuple[str, int], int] = field(default_factory=dict)  # (file, line) -> times met

    @classmethod
    def from_database(cls, connection, tables) -> IemState:
        """Read every row that matters (`tables`: worker.db.Tables, for the names only)."""
        state = cls()
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT subscriberid, listid, emailaddress, confirmed, bounced, unsubscribed, "
                           f"unsubscribeconfirmed, COALESCE(confirmcode, '') FROM {tables.subscribers}")
            state.subscribers = {row[0]: Subscriber(*row[1:]) for row in cursor.fetchall()}
            cursor.execute(f"SELECT subscriberid, statid, listid, bouncetime, bouncetype, bouncerule, bouncemessage "
                           f"FROM {tables.bounces}")
            state.bounces = Counter(tuple(row) for row in cursor.fetchall())
            cursor.execute(f"SELECT listid, subscribecount, unsubscribecount, bouncecount FROM {tables.lists}")
            state.lists = {row[0]: list(row[1:]) for row in cursor.fetchall()}
            for name, table in (("newsletters", tables.stats_newsletters),
                                ("autoresponders", tables.stats_autoresponders)):
                cursor.execute(f"SELECT statid, bouncecount_soft, bouncecount_hard, bouncecount_unknown, "
                               f"unsubscribecount FROM {table}")
                setattr(state, name, {row[0]: list(row[1:]) for row in cursor.fetchall()})
            # No key of its own: the (subscriberid, listid) index gives equal keys in insertion order.
            cursor.execute(f"SELECT subscriberid, listid, unsubscribetime, unsubscribeip, unsubscriberequesttime, "
                           f"unsubscriberequestip, statid, unsubscribearea FROM {tables.unsubscribes} "
                           "ORDER BY subscriberid, listid")
            for row in cursor.fetchall():
                state.unsubscribes.setdefault((row[0], row[1]), []).append(tuple(row[2:]))
            cursor.execute(f"SELECT source_file, source_line, outcome, decision, subscriberid, listid, email, statid, "
                           f"category, time_logged, dsn_status, dsn_diag, seen_count FROM {tables.ledger}")
            for row in cursor.fetchall():
                state.ledger[(row[0], row[1])] = LedgerEntry(*row[2:12])
                state.seen[(row[0], row[1])] = row[12]
        connection.commit()
        return state

    @classmethod
    def from_world(cls, world) -> IemState:
        """The state a pmtabounce.demo.world.World describes, before any file is applied."""
        state = cls()
        state.subscribers = {r.subscriberid: Subscriber(r.listid, r.emailaddress, r.confirmed, r.bounced,
                                                        r.unsubscribed, "1" if r.unsubscribed else "0",
                                                        r.confirmcode) for r in world.subscribers}
        for r in world.subscribers:
            if r.unsubscribed:
                state.unsubscribes.setdefault((r.subscriberid, r.listid), []).append(
                    (r.unsubscribed, None, 0, None, 0, "form"))
        for q in world.requests:
            state.unsubscribes.setdefault((q.subscriberid, q.listid), []).append(
                (0, None, q.requesttime, q.requestip, 0, None))
        state.bounces = Counter((b.subscriberid, b.statid, b.listid, b.bouncetime, b.bouncetype, b.bouncerule, "")
                                for b in world.bounces)
        state.lists = {r.listid: [r.subscribecount, r.unsubscribecount, r.bouncecount] for r in world.lists}
        for kind, target in (("newsletter", state.newsletters), ("autoresponder", state.autoresponders)):
            for c in world.campaigns:
                if c.kind == kind:
                    target[c.statid] = [c.bouncecount_soft, c.bouncecount_hard, c.bouncecount_unknown, 0]
        return state


class BounceModel:
    """Applies records to an IemState exactly as the spec's five steps say, one at a time."""

    def __init__(self, state: IemState, *, soft_threshold: int = 5, hard=HARD, soft=SOFT) -> None:
        self.state = state
        self.threshold = soft_threshold
        self.hard, self.soft = hard, soft
        self.by_email: dict[str, list[int]] = {}
        for subscriberid, row in state.subscribers.items():
            self.by_email.setdefault(row.emailaddress.lower(), []).append(subscriberid)
        self.campaign_bounces = {(key[0], key[1], key[2]) for key in state.bounces}
        self.rows_of = Counter()
        for key, count in state.bounces.items():
            self.rows_of[key[0]] += count
        self.first_seen: dict[tuple, tuple[str, int]] = {}  # record content -> (file, line) of its first meeting
        self.outcomes: Counter = Counter()
        self.complaint_outcomes: Counter = Counter()
        self.rejected = 0

    def apply_directory(self, directory: Path) -> Counter:
        """Every *.csv of `directory` in natural name order; returns the count of each outcome."""
        for path in sorted(Path(directory).glob("*.csv"), key=lambda p: _natural(p.name)):
            self.apply_file(path)
        return self.outcomes

    def apply_file(self, path: Path) -> None:
        for item in AccountingFile(path):
            if isinstance(item, RejectedRow):
                self.rejected += 1
            elif isinstance(item, ComplaintRecord):
                self.complaint_outcomes[self.apply(item)] += 1
            else:
                self.outcomes[self.apply(item)] += 1

    def classify(self, category: str) -> str:
        key = category.strip().lower()
        return "hard" if key in self.hard else "soft" if key in self.soft else "ignore"

    def apply(self, record: BounceRecord | ComplaintRecord) -> str:
        """One record; returns its outcome and records it in the ledger as the spec lists it."""
        if isinstance(record, ComplaintRecord):
            return self.apply_complaint(record)
        content = (record.type, record.time_logged, record.rcpt.lower(), record.dsn_status, record.dsn_diag,
                   record.category, record.list_ids, record.statid)
        where = self._first_meeting(content, record)
        if where is None:
            return "duplicate"
        decision = self.classify(record.category)
        outcome, subscriberid, listid = self._steps(record, decision)
        self.state.ledger[where] = LedgerEntry(outcome, decision, subscriberid, listid, record.rcpt, record.statid,
                                               record.category, record.time_logged, record.dsn_status,
                                               record.dsn_diag)
        return outcome

    def _steps(self, record: BounceRecord, decision: str) -> tuple[str, int | None, int | None]:
        if not record.list_ids:
            return "unroutable", None, None
        # 1. the active row with the lowest listid among the record's lists; confirmed is not checked
        rows = self.state.subscribers
        found = [sid for sid in self.by_email.get(record.rcpt.lower(), ())
                 if rows[sid].listid in record.list_ids and not rows[sid].unsubscribed and not rows[sid].bounced]
        if not found:
            return "not_found", None, None
        subscriberid = min(found, key=lambda sid: rows[sid].listid)
        listid = rows[subscriberid].listid
        # 2. one bounce per (subscriber, campaign, list): a repeat changes nothing, not even statistics
        if (subscriberid, record.statid, listid) in self.campaign_bounces:
            return "already_bounced", subscriberid, listid
        # 3. statistics: autoresponders first, then newsletters; statid 0 names no campaign
        stats = self.state.autoresponders.get(record.statid) or self.state.newsletters.get(record.statid)
        if stats is not None and record.statid > 0:
            stats[STAT_COLUMN[decision]] += 1
        if decision == "ignore":
            return "applied", subscriberid, listid
        # 4. the bounce row (bouncemessage '' as IEM 6.x stores it)
        rule = record.category.strip().lower().replace("-", "_")
        self.state.bounces[(subscriberid, record.statid, listid, record.time_logged, decision, rule, "")] += 1
        self.campaign_bounces.add((subscriberid, record.statid, listid))
        self.rows_of[subscriberid] += 1
        # 5. disable: hard at once, soft when the subscriber has `threshold` rows of any type
        if decision == "hard" or self.rows_of[subscriberid] >= self.threshold:
            rows[subscriberid].bounced = record.time_logged
            counters = self.state.lists[listid]
            counters[0] -= 1
            counters[2] += 1
            return "disabled", subscriberid, listid
        return "applied", subscriberid, listid

    def _first_meeting(self, content: tuple, record) -> tuple[str, int] | None:
        """(file, line) when this content is met for the first time; None (and a repeat counted) after."""
        if content in self.first_seen:
            self.state.seen[self.first_seen[content]] += 1
            return None
        where = (record.source_file, record.source_line)
        self.first_seen[content] = where
        self.state.seen[where] = 1
        return where

    def apply_complaint(self, record: ComplaintRecord) -> str:
        """One complaint, as iem-complaints.md says with the default policy."""
        content = (record.type, record.time_logged, record.rcpt.lower(), record.feedback_type, record.format,
                   record.reporting_mta, record.list_ids, record.statid, record.list_unsubscribe)
        where = self._first_meeting(content, record)
        if where is None:
            return "duplicate"
        if record.feedback_type not in ("abuse", ""):
            outcome, decision, email, first = "ignored", "ignore", record.rcpt, None
        else:
            outcome, email, first = self._unsubscribe(record)
            decision = "all"
        subscriberid, listid = first if first else (None, None)
        self.state.ledger[where] = LedgerEntry(outcome, decision, subscriberid, listid, email, record.statid, "",
                                               record.time_logged, "", "")
        return outcome

    def _unsubscribe(self, record: ComplaintRecord) -> tuple[str, str, tuple[int, int] | None]:
        rows, link = self.state.subscribers, record.link
        # 1. the recipient: rcpt, else the link's row M (whose confirmcode must equal C when there is a C)
        if record.rcpt:
            email = record.rcpt
        elif link is None:
            return "unroutable", "", None
        elif link.subscriberid not in rows or (link.confirmcode is not None and
                                               rows[link.subscriberid].confirmcode != link.confirmcode):
            return "not_found", "", None
        else:
            email = rows[link.subscriberid].emailaddress
        # 2. scope all: every active row of the address, on any list
        found = sorted((rows[sid].listid, sid) for sid in self.by_email.get(email.lower(), ())
                       if not rows[sid].unsubscribed and not rows[sid].bounced)
        if not found:
            return "not_found", email, None
        lists = record.list_ids or ((link.listid,) if link and link.listid else ())
        statid = record.statid or (link.statid if link else 0)
        stats = self.state.autoresponders.get(statid) if statid else None
        area = "a"
        if stats is None and statid:
            stats, area = self.state.newsletters.get(statid), "n"
        for listid, sid in found:
            in_campaign = stats is not None and listid in lists
            counters = self.state.lists[listid]
            counters[0] -= 1
            counters[1] += 1
            rows[sid].unsubscribed, rows[sid].unsubscribeconfirmed = record.time_logged, "1"
            earlier = self.state.unsubscribes.get((sid, listid))
            kept = (earlier[0][2] or 0, earlier[0][3] or "") if earlier else (0, "")
            self.state.unsubscribes[(sid, listid)] = [(record.time_logged, "", *kept,
                                                        statid if in_campaign else 0, area if in_campaign else "f")]
            if in_campaign:
                stats[UNSUBSCRIBES] += 1
        return "unsubscribed", email, (found[0][1], found[0][0])


def state_of(db) -> IemState:
    """What an IemDatabase (tests/conftest.py) holds now."""
    connection = db.connect()
    try:
        return IemState.from_database(connection, db.tables)
    finally:
        connection.close()


def load_world(db, world, directory: Path) -> IemState:
    """A pmtabounce.demo.world.World into an IemDatabase and its files into `directory`; the state before any bounce."""
    connection = db.connect()
    try:
        world.create_database(connection.cursor(), db.tables)
        connection.commit()
    finally:
        connection.close()
    world.write_files(directory)
    return state_of(db)


def _natural(name: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def differences(expected: IemState, actual: IemState, *, ledger: bool = True, seen_counts: bool = False,
                limit: int = 8) -> list[str]:
    """Readable lines for every way `actual` differs from `expected` (at most `limit` per table)."""
    found: list[str] = []
    tables = ["subscribers", "lists", "newsletters", "autoresponders", "unsubscribes"]
    tables += ["ledger"] if ledger else []
    tables += ["seen"] if seen_counts else []
    for name in tables:
        found += _table_differences(name, getattr(expected, name), getattr(actual, name), limit)
    missing = expected.bounces - actual.bounces
    extra = actual.bounces - expected.bounces
    for label, rows in (("missing", missing), ("unexpected", extra)):
        for row in sorted(rows)[:limit]:
            found.append(f"bounces: {label} row (subscriberid, statid, listid, time, type, rule, message) = {row}")
        if len(rows) > limit:
            found.append(f"bounces: ... {len(rows) - limit} more {label} rows")
    return found


def _table_differences(name: str, expected: dict, actual: dict, limit: int) -> list[str]:
    lines = []
    for key in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(key), actual.get(key)
        if want != got:
            lines.append(f"{name}[{key}]: expected {want}, found {got}")
    if len(lines) > limit:
        lines = lines[:limit] + [f"{name}: ... {len(lines) - limit} more differences"]
    return lines
