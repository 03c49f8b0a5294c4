"""Every statement against IEM's own tables: iem-bounces.md's five steps, then iem-complaints.md's writes.

Each works on a whole batch: a handful of set-based statements instead of
eight round trips per bounce or complaint.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..common.errors import FatalError
from .db import Cursor, Tables, case_of, insert_rows, int_rows
from .effects import CAMPAIGN_COLUMN, Unsubscribed
from .rows import Candidate, LinkedRow

# The IEM tables the bounce steps read or write, without the prefix.
IEM_TABLES = ("lists", "list_subscribers", "list_subscriber_bounces", "stats_newsletters", "stats_autoresponders")


def _marks(count: int) -> str:
    return ", ".join(["%s"] * count)


def missing_tables(cursor: Cursor, t: Tables) -> list[str]:
    """The IEM tables (full names, prefix included) that the connection's database lacks.

    Read from information_schema, which shows a table to a user with any grant on it,
    so a wrong PMTABOUNCE_TABLE_PREFIX is found at start, not at the first bounce.
    """
    wanted = [t.prefix + base for base in IEM_TABLES]
    cursor.execute(
        "SELECT table_name FROM information_schema.tables "
        f"WHERE table_schema = DATABASE() AND table_name IN ({_marks(len(wanted))})",
        wanted,
    )
    found = {row[0].lower() for row in cursor.fetchall()}
    return [name for name in wanted if name.lower() not in found]


def require_tables(cursor: Cursor, t: Tables, where: str) -> None:
    """Raise FatalError naming the prefix when any of IEM's tables is missing in `where` (a safe URL)."""
    missing = missing_tables(cursor, t)
    if missing:
        raise FatalError(
            f"IEM's tables are not in {where} under PMTABOUNCE_TABLE_PREFIX={t.prefix!r}: "
            f"{', '.join(missing)} missing (check the prefix, and that this is IEM's database)"
        )


@dataclass(frozen=True)
class Lookups:
    """Index hints for the batch's two lookups: `FORCE INDEX (...)` clauses, or '' where no index fits.

    The optimizer picks from table statistics, and InnoDB's persistent ones
    can lag a table by minutes (a bulk load, a freshly restored copy): it then
    scanned all of email_list_subscribers for every batch, 0.2-0.5 s on 100k
    rows (issue 13), where the email index finds a batch's rows in milliseconds.
    """

    by_email: str = ""  # email_list_subscribers: an index starting with emailaddress
    by_subscriber: str = ""  # email_list_subscriber_bounces: an index starting with subscriberid


def find_lookups(cursor: Cursor, t: Tables) -> Lookups:
    """Name the indexes the lookups need, as this installation has them (IEM names them after its prefix)."""

    def hint(table: str, column: str) -> str:
        cursor.execute(
            "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = %s AND SEQ_IN_INDEX = 1 AND COLUMN_NAME = %s ORDER BY NON_UNIQUE, INDEX_NAME LIMIT 1",
            (table.strip("`"), column),
        )
        row = cursor.fetchone()
        return "FORCE INDEX (`{}`)".format(row[0].replace("`", "``")) if row else ""

    return Lookups(hint(t.subscribers, "emailaddress"), hint(t.bounces, "subscriberid"))


def find_active_subscribers(
    cursor: Cursor, t: Tables, emails: Sequence[str], list_ids: Iterable[int] | None, lookups: Lookups = Lookups()
) -> list[Candidate]:
    """Step 1, locked: active rows for these addresses on these lists (`None`: on any list, a complaint's
    scope `all`).

    Two statements, so that the rows locked are exactly the rows found,
    whatever plan the optimizer picks. A locking join let it scan the whole
    table in subscriberid order (to skip a sort) and lock every row it
    passed: each worker then waited for every other's commit, and a second
    worker made the fleet slower (issue 13). The lookup reads without locks
    (`active_subscribers`); then the rows found are locked by primary key and
    checked again (`lock_active`), since a locking read sees what other
    workers committed meanwhile.
    """
    return lock_active(cursor, t, active_subscribers(cursor, t, emails, list_ids, lookups.by_email))


def lock_active(cursor: Cursor, t: Tables, found: Sequence[Candidate]) -> list[Candidate]:
    """Lock the rows of `found` (by primary key, in id order) and keep those still active, still with the
    address (by IEM's collation) they were found by: a row disabled, unsubscribed or given another address
    since it was found (by another worker or IEM, or disabled by the batch before when `process` read it
    ahead) is left out. `found`'s order is kept."""
    if not found:
        return []
    ids = sorted({c.subscriberid for c in found})
    keys = sorted({(c.subscriberid, c.email) for c in found})  # a row's list is its own: IEM never moves one
    lock = (f"FROM {t.subscribers} FORCE INDEX (PRIMARY) WHERE subscriberid IN ({_marks(len(ids))}) "
            f"AND (subscriberid, emailaddress) IN ({', '.join(['(%s, %s)'] * len(keys))}) "
            "AND unsubscribed = 0 AND bounced = 0")
    params = [*ids, *(value for key in keys for value in key)]
    # Nearly always every row found is still as found: counting them takes the same locks as reading them
    # and spares PyMySQL a row per subscriber; only when some changed meanwhile are the others read.
    cursor.execute(f"SELECT COUNT(*) {lock} FOR UPDATE", params)
    if cursor.fetchone()[0] == len(ids):
        return list(found)
    # A row matches all of its candidates or none: they were found by addresses equal by the collation.
    cursor.execute(f"SELECT subscriberid {lock} FOR UPDATE", params)
    still = {row[0] for row in cursor.fetchall()}
    return [c for c in found if c.subscriberid in still]


def active_subscribers(
    cursor: Cursor, t: Tables, emails: Sequence[str], list_ids: Iterable[int] | None, hint: str = ""
) -> list[Candidate]:
    """Active rows for these addresses on these lists, without locking, by subscriberid (`hint`: Lookups.by_email).

    The addresses go in as a derived table joined on emailaddress, so MySQL's
    own collation decides which rows match which address (case-insensitive,
    exactly as IEM's lookup); STRAIGHT_JOIN and the hint make it walk the
    addresses and look each one up in the index.
    """
    ids = None if list_ids is None else sorted(set(list_ids))
    if not emails or ids == []:
        return []
    derived = " UNION ALL ".join(["SELECT %s AS i, %s AS e"] * len(emails))
    params: list = []
    for position, email in enumerate(emails):
        params += [position, email]
    on_lists = "" if ids is None else f"s.listid IN ({_marks(len(ids))}) AND "
    join = (f"FROM ({derived}) AS q JOIN {t.subscribers} AS s {hint} ON s.emailaddress = q.e "
            f"WHERE {on_lists}s.unsubscribed = 0 AND s.bounced = 0")
    params += ids or []
    # One answer row rather than a row per subscriber (store/db.py int_rows): a tenth of `process`'s CPU.
    rows = int_rows(cursor, ("q.i", "s.subscriberid", "s.listid"), join, params, select="STRAIGHT_JOIN ")
    return [Candidate(emails[i], sid, listid) for i, sid, listid in sorted(rows, key=lambda r: r[1])]


def _for_subscribers(cursor: Cursor, select: str, subscriber_ids: Iterable[int], tail: str) -> list[tuple]:
    """Rows of `select` (SELECT … FROM table) for these subscriberids, `tail` (GROUP BY, ORDER BY, FOR
    UPDATE) after the WHERE; no statement at all for no subscriber."""
    ids = sorted(set(subscriber_ids))
    if not ids:
        return []
    cursor.execute(f"{select} WHERE subscriberid IN ({_marks(len(ids))}) {tail}", ids)
    return [tuple(row) for row in cursor.fetchall()]


def linked_rows(cursor: Cursor, t: Tables, subscriber_ids: Iterable[int]) -> list[LinkedRow]:
    """iem-complaints.md step 1, locked: the rows complaints' List-Unsubscribe links name by M, active or not."""
    rows = _for_subscribers(
        cursor, f"SELECT subscriberid, listid, emailaddress, confirmcode, unsubscribed = 0 AND bounced = 0 "
        f"FROM {t.subscribers}", subscriber_ids, "ORDER BY subscriberid FOR UPDATE")
    return [LinkedRow(sid, listid, email or "", code or "", bool(active)) for sid, listid, email, code, active in rows]


def pending_requests(cursor: Cursor, t: Tables,
                     subscriber_ids: Iterable[int]) -> dict[tuple[int, int], tuple[int, str]]:
    """(subscriberid, listid) -> the first email_list_subscribers_unsubscribe row's request time and IP.

    "First" as IEM reads it: that table has no key of its own, and the
    (subscriberid, listid) index keeps equal keys in insertion order.
    """
    rows = _for_subscribers(
        cursor, f"SELECT subscriberid, listid, unsubscriberequesttime, unsubscriberequestip FROM {t.unsubscribes}",
        subscriber_ids, "ORDER BY subscriberid, listid FOR UPDATE")
    found: dict[tuple[int, int], tuple[int, str]] = {}
    for sid, listid, when, ip in rows:
        found.setdefault((sid, listid), (when or 0, ip or ""))
    return found


def existing_bounces(
    cursor: Cursor, t: Tables, subscriber_ids: Iterable[int], lookups: Lookups = Lookups()
) -> list[tuple[int, int, int, int]]:
    """Steps 2 and 5: (subscriberid, statid, listid, rows) of the bounce rows these subscribers have.
    Answered in one row (db.int_rows); row by row when cut or when a column is NULL (IEM allows it)."""
    ids = sorted(set(subscriber_ids))
    if not ids:
        return []
    grouped = (f"SELECT subscriberid, statid, listid, COUNT(*) AS n FROM {t.bounces} {lookups.by_subscriber} "
               f"WHERE subscriberid IN ({_marks(len(ids))}) GROUP BY subscriberid, statid, listid")
    return int_rows(cursor, ("b.subscriberid", "b.statid", "b.listid", "b.n"), f"FROM ({grouped}) AS b", ids)


def stats_tables(cursor: Cursor, t: Tables, statids: Iterable[int]) -> dict[int, str]:
    """Step 3: which stats table holds each statid (autoresponders first, as IEM looks).
    Answered in one row (db.int_rows: 0 autoresponders, 1 newsletters); row by row when cut."""
    ids = sorted({s for s in statids if s > 0})
    if not ids:
        return {}
    marks = _marks(len(ids))
    both = (f"SELECT statid, 0 AS k FROM {t.stats_autoresponders} WHERE statid IN ({marks}) "
            f"UNION ALL SELECT statid, 1 FROM {t.stats_newsletters} WHERE statid IN ({marks})")
    found: dict[int, str] = {}
    for statid, kind in sorted(int_rows(cursor, ("s.statid", "s.k"), f"FROM ({both}) AS s", ids + ids),
                               key=lambda row: row[1]):  # autoresponders first
        found.setdefault(statid, STATS_TABLES[kind])
    return found


STATS_TABLES = ("autoresponders", "newsletters")
CAMPAIGN_COLUMNS = (*CAMPAIGN_COLUMN.values(), "unsubscribecount")


def add_campaign_counts(cursor: Cursor, t: Tables, stats: Mapping[tuple[str, int], Counter]) -> None:
    """Bounce step 3 and complaint step 4: add the batch's counts to each campaign's counters,
    one statement per stats table (columns from CAMPAIGN_COLUMNS only: they are not parameters)."""
    for table_key, table in (("autoresponders", t.stats_autoresponders), ("newsletters", t.stats_newsletters)):
        rows = sorted((statid, counts) for (key, statid), counts in stats.items() if key == table_key)
        if not rows:
            continue
        sets, params = [], []
        for column in CAMPAIGN_COLUMNS:
            if not any(counts.get(column) for _, counts in rows):
                continue
            case, case_params = case_of("statid", {statid: counts.get(column, 0) for statid, counts in rows})
            sets.append(f"{column} = {column} + {case}")
            params += case_params
        ids = [statid for statid, _ in rows]
        cursor.execute(
            f"UPDATE {table} SET {', '.join(sets)} WHERE statid IN ({_marks(len(ids))})", params + ids
        )


def insert_bounces(cursor: Cursor, t: Tables, rows: Sequence[tuple[int, int, int, int, str, str]]) -> None:
    """Step 4, in multi-row statements. IEM 6.x stores bouncemessage as '' unless the rule is blockedcontent."""
    if not rows:
        return
    insert_rows(
        cursor,
        f"INSERT INTO {t.bounces} "
        "(subscriberid, statid, listid, bouncetime, bouncetype, bouncerule, bouncemessage) VALUES ",
        [(*row, "") for row in rows],
    )


def disable_subscribers(cursor: Cursor, t: Tables, bounced: Mapping[int, int]) -> None:
    """Bounce step 5: bounced = time on the row."""
    if bounced:
        case, params = case_of("subscriberid", bounced)
        cursor.execute(
            f"UPDATE {t.subscribers} SET bounced = {case} WHERE subscriberid IN ({_marks(len(bounced))})",
            params + sorted(bounced),
        )


def move_list_counts(cursor: Cursor, t: Tables, bounced: Mapping[int, int], unsubscribed: Mapping[int, int]) -> None:
    """Bounce step 5 and complaint step 1: per list, bouncecount + disabled, unsubscribecount + unsubscribed,
    subscribecount - both; one statement."""
    listids = sorted(set(bounced) | set(unsubscribed))
    if not listids:
        return
    bounce_case, bounce_params = case_of("listid", {i: bounced.get(i, 0) for i in listids})
    unsub_case, unsub_params = case_of("listid", {i: unsubscribed.get(i, 0) for i in listids})
    left_case, left_params = case_of("listid", {i: bounced.get(i, 0) + unsubscribed.get(i, 0) for i in listids})
    cursor.execute(
        f"UPDATE {t.lists} SET bouncecount = bouncecount + {bounce_case}, "
        f"unsubscribecount = unsubscribecount + {unsub_case}, subscribecount = subscribecount - {left_case} "
        f"WHERE listid IN ({_marks(len(listids))})",
        bounce_params + unsub_params + left_params + listids,
    )


def unsubscribe_subscribers(cursor: Cursor, t: Tables, unsubscribed: Mapping[int, int]) -> None:
    """Complaint step 2: unsubscribed = time and unsubscribeconfirmed = '1' on each row; nothing else."""
    if unsubscribed:
        case, params = case_of("subscriberid", unsubscribed)
        cursor.execute(
            f"UPDATE {t.subscribers} SET unsubscribed = {case}, unsubscribeconfirmed = '1' "
            f"WHERE subscriberid IN ({_marks(len(unsubscribed))})",
            params + sorted(unsubscribed),
        )


def replace_unsubscribe_rows(cursor: Cursor, t: Tables, rows: Sequence[Unsubscribed]) -> None:
    """Complaint step 3: the (subscriberid, listid) rows of email_list_subscribers_unsubscribe give way to
    one row each, with the kept request time and IP; unsubscribeip '' as IEM's cron calls store it."""
    if not rows:
        return
    pairs = sorted({(r.subscriberid, r.listid) for r in rows})
    cursor.execute(
        f"DELETE FROM {t.unsubscribes} WHERE (subscriberid, listid) IN ({', '.join(['(%s, %s)'] * len(pairs))})",
        [value for pair in pairs for value in pair],
    )
    insert_rows(
        cursor,
        f"INSERT INTO {t.unsubscribes} (subscriberid, unsubscribetime, unsubscribeip, unsubscriberequesttime, "
        "unsubscriberequestip, listid, statid, unsubscribearea) VALUES ",
        [(r.subscriberid, r.unsubscribetime, "", r.kept_request_time, r.kept_request_ip, r.listid, r.statid, r.area)
         for r in rows],
    )


def rows_of_address(cursor: Cursor, t: Tables, email: str) -> list[tuple[int, int, int, int, str]]:
    """(subscriberid, listid, bounced, unsubscribed, confirmed) of every row of an address, by listid.

    Matched by IEM's collation (case-insensitive), as IEM's own lookup. For `explain`.
    """
    cursor.execute(
        f"SELECT subscriberid, listid, bounced, unsubscribed, confirmed FROM {t.subscribers} "
        "WHERE emailaddress = %s ORDER BY listid",
        (email.strip(),),
    )
    return [tuple(row) for row in cursor.fetchall()]


def bounce_rows_of(cursor: Cursor, t: Tables, subscriber_ids: Sequence[int]) -> list[tuple]:
    """(bounceid, subscriberid, statid, listid, bouncetime, bouncetype, bouncerule) of these subscribers, by time."""
    if not subscriber_ids:
        return []
    cursor.execute(
        f"SELECT bounceid, subscriberid, statid, listid, bouncetime, bouncetype, bouncerule FROM {t.bounces} "
        f"WHERE subscriberid IN ({_marks(len(subscriber_ids))}) ORDER BY bouncetime, bounceid",
        list(subscriber_ids),
    )
    return [tuple(row) for row in cursor.fetchall()]


def lock_subscribers(cursor: Cursor, t: Tables, subscriber_ids: Sequence[int]) -> dict[int, tuple[int, int, int]]:
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


def delete_bounce_rows(cursor: Cursor, t: Tables, keys: Sequence[tuple]) -> set[tuple]:
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


def reactivate_subscribers(cursor: Cursor, t: Tables, disabled: Mapping[int, int],
                           unsubscribed: Mapping[int, int]) -> None:
    """Undo of bounce step 5 and complaint steps 1-2, for subscriberid -> listid.

    `disabled` rows get `bounced = 0`; `unsubscribed` rows `unsubscribed = 0, unsubscribeconfirmed = '0'` (the
    schema's default and what an active row carries: the complaint only unsubscribed active rows and does not
    record the value it overwrote). Per list, bouncecount or unsubscribecount - 1 and subscribecount + 1 per row,
    as IEM's own re-activation moves them; one statement for the lists.
    """
    disable_subscribers(cursor, t, {sid: 0 for sid in disabled})
    if unsubscribed:
        cursor.execute(
            f"UPDATE {t.subscribers} SET unsubscribed = 0, unsubscribeconfirmed = '0' "
            f"WHERE subscriberid IN ({_marks(len(unsubscribed))})",
            sorted(unsubscribed),
        )
    move_list_counts(cursor, t, {listid: -n for listid, n in Counter(disabled.values()).items()},
                     {listid: -n for listid, n in Counter(unsubscribed.values()).items()})


UnsubscribeKey = tuple[int, int, int, int, str]  # (subscriberid, listid, unsubscribetime, statid, unsubscribearea)


def delete_unsubscribe_rows(cursor: Cursor, t: Tables, keys: Sequence[UnsubscribeKey]) -> set[UnsubscribeKey]:
    """Undo of complaint step 3: remove the one email_list_subscribers_unsubscribe row per key a complaint wrote;
    returns the keys that had a row (the others were removed or changed since). That table has no key of its own,
    so the rows are locked and matched on every column the complaint set."""
    if not keys:
        return set()
    wanted = set(keys)
    pairs = sorted({key[:2] for key in wanted})
    cursor.execute(
        f"SELECT subscriberid, listid, unsubscribetime, statid, unsubscribearea FROM {t.unsubscribes} "
        f"WHERE (subscriberid, listid) IN ({', '.join(['(%s, %s)'] * len(pairs))}) FOR UPDATE",
        [value for pair in pairs for value in pair],
    )
    found = {tuple(row) for row in cursor.fetchall()} & wanted
    if found:
        rows = sorted(found)
        cursor.execute(
            f"DELETE FROM {t.unsubscribes} WHERE (subscriberid, listid, unsubscribetime, statid, unsubscribearea) "
            f"IN ({', '.join(['(%s, %s, %s, %s, %s)'] * len(rows))})",
            [value for row in rows for value in row],
        )
    return found


def restore_unsubscribe_requests(cursor: Cursor, t: Tables, requests: Sequence[tuple[int, int, int, str]]) -> None:
    """Undo of complaint step 3's deletion: a pending request row per (subscriberid, listid, requesttime, requestip)
    the complaint kept, in the shape IEM's unsubscribe request leaves (unsubscribetime 0, statid 0, no IP or area)."""
    if requests:
        insert_rows(
            cursor,
            f"INSERT INTO {t.unsubscribes} (subscriberid, unsubscribetime, unsubscribeip, unsubscriberequesttime, "
            "unsubscriberequestip, listid, statid, unsubscribearea) VALUES ",
            [(sid, 0, None, when, ip, listid, 0, None) for sid, listid, when, ip in requests],
        )
