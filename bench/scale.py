"""`bench.py --scale`: a realistic-size IEM database and ledger, built once with bulk SQL and kept between runs.

Filler rows live in id ranges of their own (subscriberid from 1e9, listid
from 900001, statid from 2e9, bounceid from 1.5e9); each measured variant
then gets its own slice: the benchmark's world copied in with every id
shifted (subscribers, lists, campaigns, bounce rows, and the list ids and
statids in its accounting files), so variants never touch each other's rows
and no reset is needed. A slice is checked against the expected-state model
on its own rows only.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, replace
from importlib import resources

from iem_model import IemState, LedgerEntry, Subscriber
from pmtabounce.common.config import Settings
from pmtabounce.store.db import Tables
from pmtabounce.store.migrate import setup_database
from throwaway import admin_connection, create_database

FILLER_SUBSCRIBER, FILLER_LIST, FILLER_STATID, FILLER_BOUNCE = 1_000_000_000, 900_000, 2_000_000_000, 1_500_000_000
SLICE_SUBSCRIBERS, SLICE_LISTS, SLICE_STATIDS = 10_000_000, 1000, 1_000_000  # id shift per slice
CHUNK = 1_000_000  # rows per bulk INSERT ... SELECT


@dataclass(frozen=True)
class Size:
    subscribers: int = 2_000_000
    lists: int = 50
    campaigns: int = 5000
    bounces: int = 1_000_000
    ledger: int = 20_000_000

    def key(self) -> str:
        """Names the cached database: these sizes and IEM's fixture schema. Not the ledger's schema:
        a kept database is upgraded by `setup`, as an operator's would be, and the bench says how long it took."""
        fixture = resources.files("pmtabounce.store").joinpath("iem_fixture.sql").read_text()
        return hashlib.blake2b(f"{self}|{fixture}".encode(), digest_size=5).hexdigest()


def cached_database(mysql_server: str, size: Size) -> tuple[str, int]:
    """The URL of the built database for `size` (building it if there is none) and the next free slice number."""
    prefix = f"pmtbench_scale_{size.key()}_"
    server = admin_connection(mysql_server)
    try:
        with server.cursor() as cursor:
            cursor.execute("SHOW DATABASES LIKE %s", (prefix.replace("_", r"\_") + "%",))
            names = [row[0] for row in cursor.fetchall()]
            for name in names:
                cursor.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                               "AND TABLE_NAME = 'pmtbench_built'", (name,))
                if cursor.fetchone()[0]:
                    cursor.execute(f"UPDATE `{name}`.pmtbench_built SET slices = slices + 8")
                    cursor.execute(f"SELECT slices FROM `{name}`.pmtbench_built")
                    first = cursor.fetchone()[0] - 8
                    print(f"scale: reusing {name} (built before for {size})")
                    _upgrade(f"{mysql_server}/{name}")
                    return f"{mysql_server}/{name}", first
                cursor.execute(f"DROP DATABASE `{name}`")  # a build that was interrupted
    finally:
        server.close()
    started = time.perf_counter()
    name, url = create_database(mysql_server, prefix, fill=lambda connection, tables: _fill(connection, tables, size))
    connection = admin_connection(mysql_server)  # no read timeout: building 20 M rows' indexes takes minutes
    try:
        connection.select_db(name)
        fill_ledger(connection, Tables(), size.ledger)
        with connection.cursor() as cursor:  # last: a database without it is a build that was interrupted
            cursor.execute("CREATE TABLE pmtbench_built (slices int NOT NULL)")
            cursor.execute("INSERT INTO pmtbench_built VALUES (9)")
        connection.commit()
    finally:
        connection.close()
    print(f"scale: built {name} for {size} in {time.perf_counter() - started:.0f} s")
    return url, 1


def _upgrade(url: str) -> None:
    """`pmtabounce setup` on the kept database: the ledger's migrations since it was built, timed."""
    started = time.perf_counter()
    version = setup_database(Settings(mysql_url=url))
    print(f"scale: ledger schema version {version} in place after {time.perf_counter() - started:.1f} s of setup")


def _fill(connection, t, size: Size) -> None:
    """IEM's tables, by bulk SQL from MariaDB's sequence engine (seq_1_to_N)."""
    s, lists = size.subscribers, size.lists
    statements = [
        f"INSERT INTO {t.lists} (listid, name, subscribecount, visiblefields) "
        f"SELECT {FILLER_LIST} + seq, CONCAT('filler ', seq), {s // lists}, '' FROM seq_1_to_{lists}",
        f"INSERT INTO {t.stats_newsletters} (statid, bouncecount_soft, bouncecount_hard, bouncecount_unknown, "
        f"sendinformation) SELECT {FILLER_STATID} + seq, 10, 20, 5, '' FROM seq_1_to_{size.campaigns}",
    ]
    statements += _chunks(
        size.subscribers,
        f"INSERT INTO {t.subscribers} (subscriberid, listid, emailaddress, domainname, format, confirmed, "
        f"subscribedate, bounced, unsubscribed) SELECT {FILLER_SUBSCRIBER} + seq, {FILLER_LIST} + 1 + seq % {lists}, "
        "CONCAT('member', seq, '@filler', seq % 997, '.example'), CONCAT('filler', seq % 997, '.example'), 'h', '1', "
        "1700000000, IF(seq % 20 = 0, 1710000000, 0), 0 FROM seq_{lo}_to_{hi}")
    statements += _chunks(
        size.bounces,
        f"INSERT INTO {t.bounces} (bounceid, subscriberid, statid, listid, bouncetime, bouncetype, bouncerule, "
        f"bouncemessage) SELECT {FILLER_BOUNCE} + seq, {FILLER_SUBSCRIBER} + 1 + (seq * 7) % {s}, "
        f"{FILLER_STATID} + 1 + seq % {size.campaigns}, {FILLER_LIST} + 1 + seq % {lists}, 1700000000 + seq, "
        "IF(seq % 3 = 0, 'hard', 'soft'), 'bad_mailbox', '' FROM seq_{lo}_to_{hi}")
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
            connection.commit()


def fill_ledger(connection, t, rows: int) -> None:
    """`rows` ledger rows like real ones, applied over the past year; indexes built once at the end (sorted),
    not row by row, which with a 20 M-row unique key over a 128 MB buffer pool would take hours."""
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW CREATE TABLE {t.ledger}")
        keys = [line.strip().rstrip(",") for line in cursor.fetchone()[1].splitlines()
                if re.match(r"\s+(UNIQUE )?KEY", line)]
        names = [re.search(r"KEY `([^`]+)`", key)[1] for key in keys]
        cursor.execute(f"ALTER TABLE {t.ledger} " + ", ".join(f"DROP KEY `{n}`" for n in names))
        for statement in _chunks(rows, _LEDGER_FILLER.format(ledger=t.ledger, s=FILLER_SUBSCRIBER,
                                                              l=FILLER_LIST)):
            cursor.execute(statement)
            connection.commit()
        cursor.execute(f"ALTER TABLE {t.ledger} " + ", ".join(f"ADD {key}" for key in keys))
    connection.commit()


_LEDGER_FILLER = (
    "INSERT INTO {ledger} (fingerprint, source_file, source_line, record_type, time_logged, email, list_ids, "
    "statid, category, dsn_status, dsn_diag, decision, outcome, subscriberid, listid, applied_at) "
    "SELECT MD5(CONCAT('filler', seq)), CONCAT('bounces-2025-', seq DIV 100000, '.csv'), seq % 100000 + 2, 'b', "
    "1700000000 + seq, CONCAT('member', seq, '@filler', seq % 997, '.example'), '900001', 0, 'bad-mailbox', "
    "'5.1.1 (bad destination mailbox address)', CONCAT('smtp;550 5.1.1 <member', seq, '@filler.example>: "
    "Recipient address rejected: User unknown in virtual mailbox table'), 'hard', "
    "ELT(1 + seq % 4, 'applied', 'disabled', 'not_found', 'already_bounced'), {s} + seq, {l} + 1, "
    "NOW(6) - INTERVAL seq % 31536000 SECOND FROM seq_{{lo}}_to_{{hi}}"
)


def _chunks(total: int, template: str) -> list[str]:
    return [template.format(lo=lo, hi=min(lo + CHUNK - 1, total)) for lo in range(1, total + 1, CHUNK)]


def shift_world(world, k: int):
    """The world with every id moved into slice `k`: its rows and its files' list ids and statids."""
    sub, lst, stat = SLICE_SUBSCRIBERS * k, SLICE_LISTS * k, SLICE_STATIDS * k
    return replace(
        world,
        lists=[replace(r, listid=r.listid + lst) for r in world.lists],
        subscribers=[replace(r, subscriberid=r.subscriberid + sub, listid=r.listid + lst,
                             emailaddress=_mark(r.emailaddress, k)) for r in world.subscribers],
        bounces=[replace(b, bounceid=b.bounceid + sub, subscriberid=b.subscriberid + sub, listid=b.listid + lst,
                         statid=b.statid + stat if b.statid else 0) for b in world.bounces],
        campaigns=[replace(c, statid=c.statid + stat, list_ids=tuple(i + lst for i in c.list_ids))
                   for c in world.campaigns],
        files=[replace(spec, rows=[_shift_row(row, k, sub, lst, stat) for row in spec.rows]) for spec in world.files],
        requests=[replace(q, subscriberid=q.subscriberid + sub, listid=q.listid + lst) for q in world.requests],
    )


def _shift_row(row, k: int, subscribers: int, lists: int, statids: int):
    """A row of slice k: its ids, address and diagnostic marked, so that no record of one slice is the same
    record (a duplicate) as one of another, nor finds another slice's subscribers."""
    return row._replace(lids=_shift_ids(row.lids, lists), sid=_shift_sid(row.sid, statids),
                        diag=f"{row.diag} [slice {k}]", rcpt=_mark(row.rcpt, k),
                        list_unsubscribe=_shift_link(row.list_unsubscribe, subscribers, lists, statids))


def _mark(address: str, k: int) -> str:
    """The address of slice k: a complaint whose scope is every list finds a subscriber by address alone, so
    slices must not share addresses (leading blanks, which the parser trims, stay in front)."""
    stripped = address.lstrip()
    return f"{address[:len(address) - len(stripped)]}s{k}.{stripped}" if stripped else address


def _shift_link(link: str, subscribers: int, lists: int, statids: int) -> str:
    """A complaint's `unsubscribe.php?M=<subscriberid>&C=<code>&L=<listid>&N=<statid>` moved with its slice."""
    by = {"M": subscribers, "L": lists, "N": statids, "A": statids}
    return re.sub(r"([?&])([MLNA])=(\d+)",
                  lambda m: f"{m[1]}{m[2]}={int(m[3]) + by[m[2]] if int(m[3]) > 0 else m[3]}", link)


def _shift_ids(raw: str, by: int) -> str:
    entries = raw.split(",")
    return ",".join(str(int(e) + by) if e.strip().isascii() and e.strip().isdigit() and int(e) > 0 else e
                    for e in entries)


def _shift_sid(raw: str, by: int) -> str:
    match = re.match(r"(\s*)([0-9]+)", raw)
    if not match or not 0 < int(match[2]) <= 2**31 - 1 - by:
        return raw
    return f"{match[1]}{int(match[2]) + by}{raw[match.end():]}"


def slice_state(connection, t, world, above_id: int) -> IemState:
    """What the database holds for one slice's rows, and the ledger rows added after `above_id`."""
    subs = (min(r.subscriberid for r in world.subscribers), max(r.subscriberid for r in world.subscribers))
    lists = (min(r.listid for r in world.lists), max(r.listid for r in world.lists))
    stats = (min(c.statid for c in world.campaigns), max(c.statid for c in world.campaigns))
    state = IemState()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT subscriberid, listid, emailaddress, confirmed, bounced, unsubscribed, "
                       f"unsubscribeconfirmed, COALESCE(confirmcode, '') FROM {t.subscribers} "
                       "WHERE subscriberid BETWEEN %s AND %s", subs)
        state.subscribers = {row[0]: Subscriber(*row[1:]) for row in cursor.fetchall()}
        cursor.execute(f"SELECT subscriberid, statid, listid, bouncetime, bouncetype, bouncerule, bouncemessage "
                       f"FROM {t.bounces} WHERE subscriberid BETWEEN %s AND %s", subs)
        state.bounces.update(tuple(row) for row in cursor.fetchall())
        cursor.execute(f"SELECT listid, subscribecount, unsubscribecount, bouncecount FROM {t.lists} "
                       "WHERE listid BETWEEN %s AND %s", lists)
        state.lists = {row[0]: list(row[1:]) for row in cursor.fetchall()}
        for name, table in (("newsletters", t.stats_newsletters), ("autoresponders", t.stats_autoresponders)):
            cursor.execute(f"SELECT statid, bouncecount_soft, bouncecount_hard, bouncecount_unknown, unsubscribecount "
                           f"FROM {table} WHERE statid BETWEEN %s AND %s", stats)
            setattr(state, name, {row[0]: list(row[1:]) for row in cursor.fetchall()})
        cursor.execute(f"SELECT subscriberid, listid, unsubscribetime, unsubscribeip, unsubscriberequesttime, "
                       f"unsubscriberequestip, statid, unsubscribearea FROM {t.unsubscribes} "
                       "WHERE subscriberid BETWEEN %s AND %s ORDER BY subscriberid, listid", subs)
        for row in cursor.fetchall():
            state.unsubscribes.setdefault((row[0], row[1]), []).append(tuple(row[2:]))
        cursor.execute(f"SELECT source_file, source_line, outcome, decision, subscriberid, listid, email, statid, "
                       f"category, time_logged, dsn_status, dsn_diag, seen_count FROM {t.ledger} WHERE id > %s",
                       (above_id,))
        for row in cursor.fetchall():
            state.ledger[(row[0], row[1])] = LedgerEntry(*row[2:12])
            state.seen[(row[0], row[1])] = row[12]
    connection.commit()
    return state
