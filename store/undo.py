"""`undo`: revert exactly what selected ledger records wrote to IEM, nothing else (issue 12).

For each selected record that changed IEM, the inverse of its own writes:
its bounce row removed, its campaign counter back by one, and, if it
disabled the subscriber and that row still has `bounced` = the time it set,
the row active again with its list's `bouncecount - 1, subscribecount + 1`
(IEM's own re-activation moves the counters the same way). A row that
changed since is left alone and reported.

For a complaint (iem-complaints.md "What is written"), each row it
unsubscribed whose `unsubscribed` still equals the time it set: the row
active again (`unsubscribed = 0`, `unsubscribeconfirmed = '0'`), its list's
`unsubscribecount - 1, subscribecount + 1`, the campaign's
`unsubscribecount - 1` when it counted the row, its
email_list_subscribers_unsubscribe row removed and the pending request it
kept (time and IP) put back. A row changed since is left alone entirely,
counters included, and reported. What a record wrote is read from
the ledger: its subscriber, list, statid, time, decision, category and
outcome name the bounce row (subscriber, statid, list, time, type, rule) it
inserted (spec step 2 allows only one per subscriber, campaign and list), the
counter it moved and the row it disabled.

Batches in key order, each one transaction with the same row locks as the
workers; each reverted ledger row is marked with the run's id, so a run cut
short is finished by running it again and a second run changes nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from ..common.errors import TransientError
from ..common.policy import bounce_rule
from . import iem
from .db import Cursor, Tables
from .effects import CAMPAIGN_COLUMN, STATS_TABLE_OF_AREA, Unsubscribed
from .events import Events


@dataclass(frozen=True)
class Effect:
    """What one ledger record wrote to IEM (None: it did not write that part)."""

    ledger_id: int
    email: str
    bounce_row: tuple[int, int, int, int, str, str] | None  # (subscriberid, statid, listid, time, type, rule)
    campaign: tuple[int, str, str | None] | None  # (statid, counter column, stats table key if recorded)
    disabled: tuple[int, int, int] | None  # (subscriberid, listid, bounced time it set)
    unsubscribed: tuple[Unsubscribed, ...] = ()  # a complaint's rows


def effect_of(row: dict) -> Effect:
    """The writes of a ledger row of outcome applied or disabled (see undo_candidates).

    From its `effects` column when the ledger has one and the row recorded them (store/effects.py's
    shape); else, for rows applied before effects were recorded, from its own columns.
    """
    if row["outcome"] == "unsubscribed":
        return Effect(row["id"], row["email"], None, None, None, unsubscribed_rows(row.get("effects")))
    if row.get("effects"):
        recorded = orjson.loads(row["effects"])
        campaign = recorded.get("campaign")  # [stats table key, statid, column]
        return Effect(row["id"], row["email"], _tuple(recorded.get("bounce_row")),
                      (campaign[1], campaign[2], campaign[0]) if campaign else None, _tuple(recorded.get("disabled")))
    sid, listid, decision = row["subscriberid"], row["listid"], row["decision"]
    bounce_row = None
    if decision in ("hard", "soft"):
        bounce_row = (sid, row["statid"], listid, row["time_logged"], decision, bounce_rule(row["category"]))
    campaign = (row["statid"], CAMPAIGN_COLUMN[decision], None) if row["statid"] > 0 else None
    disabled = (sid, listid, row["time_logged"]) if row["outcome"] == "disabled" else None
    return Effect(row["id"], row["email"], bounce_row, campaign, disabled)


def unsubscribed_rows(effects: str | None) -> tuple[Unsubscribed, ...]:
    """The rows a complaint's `effects` text (store/effects.py) says it unsubscribed, with the stats table of
    each counted one (from its unsubscribearea)."""
    rows = (orjson.loads(effects) or {}).get("unsubscribed", []) if effects else []
    return tuple(Unsubscribed(sid, listid, when, statid, area, kept_time, kept_ip, bool(counted),
                              STATS_TABLE_OF_AREA.get(area) if counted else None)
                 for sid, listid, when, statid, area, kept_time, kept_ip, counted in rows)


def _tuple(value: list | None) -> tuple | None:
    return tuple(value) if value else None


@dataclass
class UndoCounts:
    """What an undo did (or, dry, would do)."""

    records: int = 0
    bounce_rows_removed: int = 0
    reenabled: Counter = field(default_factory=Counter)  # listid -> subscribers re-enabled (bounces)
    resubscribed: Counter = field(default_factory=Counter)  # listid -> rows active again (complaints)
    unsubscribe_rows_removed: int = 0
    requests_restored: int = 0  # pending unsubscribe requests put back
    campaigns: dict = field(default_factory=lambda: defaultdict(Counter))  # statid -> {column: -n}
    skipped: list[dict] = field(default_factory=list)  # {ledger_id, email, what, why}

    def add(self, other: UndoCounts) -> None:
        self.records += other.records
        self.bounce_rows_removed += other.bounce_rows_removed
        self.reenabled.update(other.reenabled)
        self.resubscribed.update(other.resubscribed)
        self.unsubscribe_rows_removed += other.unsubscribe_rows_removed
        self.requests_restored += other.requests_restored
        for statid, counts in other.campaigns.items():
            self.campaigns[statid].update(counts)
        self.skipped += other.skipped

    def as_dict(self) -> dict:
        return {
            "records": self.records,
            "bounce_rows_removed": self.bounce_rows_removed,
            "subscribers_reenabled": sum(self.reenabled.values()),
            "reenabled_per_list": {str(k): v for k, v in sorted(self.reenabled.items())},
            "subscribers_resubscribed": sum(self.resubscribed.values()),
            "resubscribed_per_list": {str(k): v for k, v in sorted(self.resubscribed.items())},
            "unsubscribe_rows_removed": self.unsubscribe_rows_removed,
            "unsubscribe_requests_restored": self.requests_restored,
            "campaign_counters": {str(s): dict(sorted(c.items())) for s, c in sorted(self.campaigns.items())},
            "skipped": self.skipped,
        }


def undo_batch(cursor: Cursor, t: Tables, rows: list[dict], run: int, events: Events | None = None) -> UndoCounts:
    """Revert these ledger rows' writes in the caller's transaction and mark them with `run`; with `events`,
    write their outbox rows too (an `undo.reverted` per record, IEM's Subscribe webhook per row made active).

    Raises AlreadyUndone if another run marked one of them meanwhile (roll back and read again).
    """
    effects = [effect_of(row) for row in rows]
    counts = UndoCounts(records=len(effects))
    # The workers' lock: a subscriber's row before its bounce and unsubscribe rows.
    current = iem.lock_subscribers(cursor, t, sorted({e.bounce_row[0] for e in effects if e.bounce_row}
                                                     | {e.disabled[0] for e in effects if e.disabled}
                                                     | {u.subscriberid for e in effects for u in e.unsubscribed}))
    mark_undone(cursor, t, [e.ledger_id for e in effects], run)
    keys = [e.bounce_row for e in effects if e.bounce_row]
    removed = iem.delete_bounce_rows(cursor, t, keys)
    counts.bounce_rows_removed = len(removed)
    tables = iem.stats_tables(cursor, t, (e.campaign[0] for e in effects if e.campaign))
    moves: dict = defaultdict(Counter)
    reactivate: dict[int, int] = {}
    for e in effects:
        if e.bounce_row and e.bounce_row not in removed:
            counts.skipped.append(_skip(e, "bounce row", "no longer there"))
        if e.campaign and e.campaign[0] in tables:  # a campaign deleted since has no counter to move back
            moves[(e.campaign[2] or tables[e.campaign[0]], e.campaign[0])][e.campaign[1]] -= 1
            counts.campaigns[e.campaign[0]][e.campaign[1]] -= 1
        if e.disabled:
            why = _changed_since(e.disabled, current.get(e.disabled[0]))
            if why:
                counts.skipped.append(_skip(e, "subscriber", why))
            else:
                reactivate[e.disabled[0]] = e.disabled[1]
                counts.reenabled[e.disabled[1]] += 1
    resubscribe = _undo_unsubscribes(cursor, t, effects, current, moves, counts)
    iem.add_campaign_counts(cursor, t, moves)
    iem.reactivate_subscribers(cursor, t, reactivate, resubscribe)
    if events is not None:
        events.for_undo(cursor, rows, effects, reactivate, resubscribe, run)
    return counts


def _undo_unsubscribes(cursor: Cursor, t: Tables, effects: list[Effect], current: dict, moves: dict,
                       counts: UndoCounts) -> dict[int, int]:
    """The complaints' rows still as they left them: their unsubscribe rows removed, the kept requests put back,
    their campaign counters queued in `moves`; returns subscriberid -> listid of the rows to make active again."""
    unchanged = []
    for e in effects:
        for row in e.unsubscribed:
            why = _unsubscribed_since(row, current.get(row.subscriberid))
            if why:
                counts.skipped.append(_skip(e, f"subscriber {row.subscriberid} on list {row.listid}", why))
            else:
                unchanged.append((e, row))
    keys = [(r.subscriberid, r.listid, r.unsubscribetime, r.statid, r.area) for _, r in unchanged]
    removed = iem.delete_unsubscribe_rows(cursor, t, keys)
    counts.unsubscribe_rows_removed = len(removed)
    tables = iem.stats_tables(cursor, t, (r.statid for _, r in unchanged if r.campaign_counted))
    requests = [(r.subscriberid, r.listid, r.kept_request_time, r.kept_request_ip) for _, r in unchanged
                if r.kept_request_time or r.kept_request_ip]
    iem.restore_unsubscribe_requests(cursor, t, requests)
    counts.requests_restored = len(requests)
    for e, r in unchanged:
        if (r.subscriberid, r.listid, r.unsubscribetime, r.statid, r.area) not in removed:
            counts.skipped.append(_skip(e, "unsubscribe row", "no longer there"))
        if r.campaign_counted and r.statid in tables:  # a campaign deleted since has no counter to move back
            moves[(r.stats_table or tables[r.statid], r.statid)]["unsubscribecount"] -= 1
            counts.campaigns[r.statid]["unsubscribecount"] -= 1
        counts.resubscribed[r.listid] += 1
    return {r.subscriberid: r.listid for _, r in unchanged}


def _unsubscribed_since(row: Unsubscribed, now: tuple[int, int, int] | None) -> str | None:
    """Why a row a complaint unsubscribed may not be made active again, or None if it is as the complaint left it."""
    if now is None:
        return "deleted since"
    listid, bounced, unsubscribed = now
    if unsubscribed == 0:
        return "re-subscribed since"
    if bounced:
        return "bounced since"
    if unsubscribed != row.unsubscribetime or listid != row.listid:
        return "unsubscribed again since"
    return None


def _changed_since(disabled: tuple[int, int, int], now: tuple[int, int, int] | None) -> str | None:
    """Why a row this record disabled may not be re-enabled, or None if it is as the record left it."""
    if now is None:
        return "deleted since"
    listid, bounced, unsubscribed = now
    if unsubscribed:
        return "unsubscribed since"
    if bounced == 0:
        return "re-activated since"
    if bounced != disabled[2] or listid != disabled[1]:
        return "bounced again since"
    return None


def _skip(effect: Effect, what: str, why: str) -> dict:
    return {"ledger_id": effect.ledger_id, "email": effect.email, "what": what, "why": why}


class AlreadyUndone(TransientError):
    """Another undo run marked one of these records meanwhile: roll back and read the selection again."""


UNDO_COLUMNS = ("id", "email", "subscriberid", "listid", "statid", "time_logged", "decision", "category", "outcome",
                "fingerprint")


def undo_candidates(cursor: Cursor, t: Tables, clause: str, params: list, after_id: int, limit: int) -> list[dict]:
    """Ledger rows matching `clause` (worker.undo_filter.UndoFilter) with id above `after_id`, in id order,
    with their recorded `effects` when the ledger has that column."""
    columns = UNDO_COLUMNS + (("effects",) if _has_effects(cursor, t) else ())
    cursor.execute(
        f"SELECT {', '.join(columns)} FROM {t.ledger} WHERE id > %s AND {clause} ORDER BY id LIMIT %s",
        [after_id, *params, limit],
    )
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _has_effects(cursor: Cursor, t: Tables) -> bool:
    cursor.execute(f"SHOW COLUMNS FROM {t.ledger} LIKE 'effects'")
    return cursor.fetchone() is not None


def mark_undone(cursor: Cursor, t: Tables, ids: Sequence[int], run: int) -> None:
    """Mark ledger rows as reverted by undo run `run`; raises AlreadyUndone if one was marked meanwhile."""
    if not ids:
        return
    cursor.execute(
        f"UPDATE {t.ledger} SET undo_run = %s WHERE id IN ({', '.join(['%s'] * len(ids))}) AND undo_run IS NULL",
        [run, *ids],
    )
    if cursor.rowcount != len(ids):
        raise AlreadyUndone(f"{len(ids) - cursor.rowcount} records were undone by another run meanwhile")
