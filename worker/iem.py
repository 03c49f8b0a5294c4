"""Every statement against IEM's own tables, in the order of the spec's five steps.

Each works on a whole batch: a handful of set-based statements instead of
eight round trips per bounce.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from .db import Tables, case_of, insert_rows
from .plan import Candidate


def _marks(count: int) -> str:
    return ", ".join(["%s"] * count)


def find_active_subscribers(cursor, t: Tables, emails: Sequence[str], list_ids: Iterable[int]) -> list[Candidate]:
    """Step 1, locked: active rows for these addresses on these lists.

    The addresses go in as a derived table joined on emailaddress, so MySQL's
    own collation decides which rows match which address (case-insensitive,
    exactly as IEM's lookup).
    """
    ids = sorted(set(list_ids))
    if not emails or not ids:
        return []
    derived = " UNION ALL ".join(["SELECT %s AS i, %s AS e"] * len(emails))
    params: list = []
    for position, email in enumerate(emails):
        params += [position, email]
    cursor.execute(
        f"SELECT q.i, s.subscriberid, s.listid FROM ({derived}) AS q "
        f"JOIN {t.subscribers} AS s ON s.emailaddress = q.e "
        f"WHERE s.listid IN ({_marks(len(ids))}) AND s.unsubscribed = 0 AND s.bounced = 0 "
        "ORDER BY s.subscriberid FOR UPDATE",
        params + ids,
    )
    return [Candidate(emails[i], sid, listid) for i, sid, listid in cursor.fetchall()]


def existing_bounces(cursor, t: Tables, subscriber_ids: Iterable[int]) -> list[tuple[int, int, int, int]]:
    """Steps 2 and 5: (subscriberid, statid, listid, rows) of the bounce rows these subscribers have."""
    ids = sorted(set(subscriber_ids))
    if not ids:
        return []
    cursor.execute(
        f"SELECT subscriberid, statid, listid, COUNT(*) FROM {t.bounces} "
        f"WHERE subscriberid IN ({_marks(len(ids))}) GROUP BY subscriberid, statid, listid",
        ids,
    )
    return [tuple(row) for row in cursor.fetchall()]


def stats_tables(cursor, t: Tables, statids: Iterable[int]) -> dict[int, str]:
    """Step 3: which stats table holds each statid (autoresponders first, as IEM looks)."""
    ids = sorted({s for s in statids if s > 0})
    if not ids:
        return {}
    marks = _marks(len(ids))
    cursor.execute(
        f"SELECT statid, 'autoresponders' FROM {t.stats_autoresponders} WHERE statid IN ({marks}) "
        f"UNION ALL SELECT statid, 'newsletters' FROM {t.stats_newsletters} WHERE statid IN ({marks})",
        ids + ids,
    )
    found: dict[int, str] = {}
    for statid, table in cursor.fetchall():
        found.setdefault(statid, table)
    return found


def add_campaign_bounces(cursor, t: Tables, stats: Mapping[tuple[str, int], Counter]) -> None:
    """Step 3: add the batch's bounces to each campaign's counters, one statement per stats table."""
    for table_key, table in (("autoresponders", t.stats_autoresponders), ("newsletters", t.stats_newsletters)):
        rows = sorted((statid, counts) for (key, statid), counts in stats.items() if key == table_key)
        if not rows:
            continue
        sets, params = [], []
        for column in ("bouncecount_hard", "bouncecount_soft", "bouncecount_unknown"):
            case, case_params = case_of("statid", {statid: counts.get(column, 0) for statid, counts in rows})
            sets.append(f"{column} = {column} + {case}")
            params += case_params
        ids = [statid for statid, _ in rows]
        cursor.execute(
            f"UPDATE {table} SET {', '.join(sets)} WHERE statid IN ({_marks(len(ids))})", params + ids
        )


def insert_bounces(cursor, t: Tables, rows: Sequence[tuple[int, int, int, int, str, str]]) -> None:
    """Step 4, in multi-row statements. IEM 6.x stores bouncemessage as '' unless the rule is blockedcontent."""
    if not rows:
        return
    insert_rows(
        cursor,
        f"INSERT INTO {t.bounces} "
        "(subscriberid, statid, listid, bouncetime, bouncetype, bouncerule, bouncemessage) VALUES ",
        [(*row, "") for row in rows],
    )


def disable_subscribers(cursor, t: Tables, bounced: Mapping[int, int], list_bounces: Mapping[int, int]) -> None:
    """Step 5: bounced = time on the row, and the list's counters move by one per row."""
    if bounced:
        case, params = case_of("subscriberid", bounced)
        cursor.execute(
            f"UPDATE {t.subscribers} SET bounced = {case} WHERE subscriberid IN ({_marks(len(bounced))})",
            params + sorted(bounced),
        )
    if list_bounces:
        case, params = case_of("listid", list_bounces)
        cursor.execute(
            f"UPDATE {t.lists} SET bouncecount = bouncecount + {case}, subscribecount = subscribecount - {case} "
            f"WHERE listid IN ({_marks(len(list_bounces))})",
            params + params + sorted(list_bounces),
        )


def rows_of_address(cursor, t: Tables, email: str) -> list[tuple[int, int, int, int, str]]:
    """(subscriberid, listid, bounced, unsubscribed, confirmed) of every row of an address, by listid.

    Matched by IEM's collation (case-insensitive), as IEM's own lookup. For `explain`.
    """
    cursor.execute(
        f"SELECT subscriberid, listid, bounced, unsubscribed, confirmed FROM {t.subscribers} "
        "WHERE emailaddress = %s ORDER BY listid",
        (email.strip(),),
    )
    return [tuple(row) for row in cursor.fetchall()]


def bounce_rows_of(cursor, t: Tables, subscriber_ids: Sequence[int]) -> list[tuple]:
    """(bounceid, subscriberid, statid, listid, bouncetime, bouncetype, bouncerule) of these subscribers, by time."""
    if not subscriber_ids:
        return []
    cursor.execute(
        f"SELECT bounceid, subscriberid, statid, listid, bouncetime, bouncetype, bouncerule FROM {t.bounces} "
        f"WHERE subscriberid IN ({_marks(len(subscriber_ids))}) ORDER BY bouncetime, bounceid",
        list(subscriber_ids),
    )
    return [tuple(row) for row in cursor.fetchall()]


def lock_subscribers(cursor, t: Tables, subscriber_ids: Sequence[int]) -> dict[int, tuple[int, int, int]]:
    """Lock these subscriber rows (in id order, as the workers do); subscriberid -> (listid, bounced, unsubscribed)
    of those that still exist. For `undo`."""
    if not subscriber_ids:
        return {}
    cursor.execute(
        f"SELECT subscriberid, listid, bounced, unsubscribed FROM {t.subscribers} "
        f"WHERE subscriberid IN ({_marks(len(subscriber_ids))}) ORDER BY subscriberid FOR UPDATE",
        list(subscriber_ids),
    )
    return {row[0]: (row[1], row[2] or 0, row[3] or 0) for row in cursor.fetchall()}


def delete_bounce_rows(cursor, t: Tables, keys: Sequence[tuple]) -> set[tuple]:
    """Undo of step 4: remove one bounce row per (subscriberid, statid, listid, bouncetime, bouncetype, bouncerule);
    returns the keys that had a row (the others were removed or changed since)."""
    if not keys:
        return set()
    wanted = set(keys)
    sids = sorted({key[0] for key in wanted})
    cursor.execute(
        f"SELECT bounceid, subscriberid, statid, listid, bouncetime, bouncetype, bouncerule FROM {t.bounces} "
        f"WHERE subscriberid IN ({_marks(len(sids))}) ORDER BY bounceid FOR UPDATE",
        sids,
    )
    chosen: dict[tuple, int] = {}
    for bounceid, *key in cursor.fetchall():
        if tuple(key) in wanted:
            chosen.setdefault(tuple(key), bounceid)
    if chosen:
        ids = sorted(chosen.values())
        cursor.execute(f"DELETE FROM {t.bounces} WHERE bounceid IN ({_marks(len(ids))})", ids)
    return set(chosen)


def reactivate_subscribers(cursor, t: Tables, rows: Mapping[int, int]) -> None:
    """Undo of step 5 for subscriberid -> listid: `bounced = 0`, and per list bouncecount - 1, subscribecount + 1
    per row, as IEM's own re-activation moves them."""
    if rows:
        per_list = Counter(rows.values())
        disable_subscribers(cursor, t, {sid: 0 for sid in rows}, {listid: -n for listid, n in per_list.items()})
