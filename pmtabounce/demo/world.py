"""Realistic IEM worlds and PowerMTA accounting files, the same for the same seed.

The tests, the demo (`make run`) and the benchmark need an IEM database and a
directory of bounce files that look like a real sender's: subscribers on
several lists, unconfirmed, unsubscribed and already-bounced rows, bounce
history near the soft threshold, newsletters and autoresponders, and files
with every quirk PowerMTA and remote servers produce. Usage::

    world = World.generate(7, subscribers=2000, records=5000, files=8)
    world.create_database(connection, Tables("email_"))  # IEM tables must exist
    world.write_files(directory)

`independent=True` gives a world in which no bounce's effect depends on the
order bounces are applied (each address bounces at most once, no duplicates),
so any number of parallel workers must reach the same database.
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..store.database import Cursor
from ..store.db import Tables
from ..store.fixture import insert_fixture_rows
from .accounting_rows import RecordMaker, Row, bounce_rule
from .storm import Storm, add_storm

# Column names in the order of Row's fields: the base columns, one variant's list and statid headers, extras.
_VARIANTS = {
    "mailer": ("header_X-Mailer-LID", "header_X-Mailer-SID"),
    "patched": ("header_X-List-ID", "header_X-Mailing-ID"),
}
_BASE_COLUMNS = ("type", "timeLogged", "rcpt", "dsnAction", "dsnStatus", "dsnDiag", "bounceCat")
_EXTRA_COLUMNS = ("vmta", "jobId")
# A mixed file (`records b, rb, f`): the complaint fields, at Row's indexes 12 to 16.
_COMPLAINT_COLUMNS = ("feedbackType", "format", "userAgent", "reportingMta", "header_List-Unsubscribe")
FIRST_NAMES = ("anna", "ben", "carla", "david", "eva", "frank", "greta", "hugo", "ines", "jan", "kim", "lena",
               "marco", "nina", "otto", "paula", "rosa", "sven", "tina", "uwe", "vera", "willem", "yara", "zoe")
LAST_NAMES = ("berg", "costa", "dekker", "evans", "fischer", "garcia", "haas", "jansen", "klein", "lopez",
              "meyer", "novak", "olsen", "peters", "rossi", "schmidt", "smit", "visser", "weber", "young")
DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com", "post.example.de", "inbox.example.nl",
           "example.co.uk", "mx.example.fr")


@dataclass(frozen=True, slots=True)
class ListRow:
    listid: int
    name: str
    createdate: int
    subscribecount: int
    unsubscribecount: int
    bouncecount: int


@dataclass(frozen=True, slots=True)
class SubscriberRow:
    subscriberid: int
    listid: int
    emailaddress: str
    confirmed: str
    subscribedate: int
    bounced: int
    unsubscribed: int
    confirmcode: str = ""


@dataclass(frozen=True, slots=True)
class UnsubscribeRequest:
    """A pending request in email_list_subscribers_unsubscribe (IEM's double opt-out, never confirmed)."""

    subscriberid: int
    listid: int
    requesttime: int
    requestip: str


@dataclass(frozen=True, slots=True)
class BounceRow:
    bounceid: int
    subscriberid: int
    statid: int
    listid: int
    bouncetime: int
    bouncetype: str
    bouncerule: str


@dataclass(frozen=True, slots=True)
class Campaign:
    """A newsletter or autoresponder send (or a deleted one: its statid is in the sequence only)."""

    statid: int
    kind: str  # 'newsletter', 'autoresponder' or 'deleted'
    list_ids: tuple[int, ...]
    starttime: int
    bouncecount_soft: int
    bouncecount_hard: int
    bouncecount_unknown: int


@dataclass
class FileSpec:
    """One accounting file: its name, how PowerMTA was configured, and its rows (None: an empty file)."""

    name: str
    header: list[str] | None
    fields: list[int]  # index into Row for each column
    iso_offset: int | None = None  # minutes east of UTC when `iso-times yes`, else Unix seconds
    line_end: str = "\r\n"
    bom: bool = False
    rows: list[Row] = field(default_factory=list)

    @property
    def bounce_rows(self) -> int:
        return sum(1 for row in self.rows if row.type in ("b", "rb"))


@dataclass
class World:
    """An IEM database's content and the accounting files that bounce against it."""

    seed: int
    lists: list[ListRow]
    subscribers: list[SubscriberRow]
    bounces: list[BounceRow]
    campaigns: list[Campaign]
    files: list[FileSpec]
    independent: bool = False
    requests: list[UnsubscribeRequest] = field(default_factory=list)
    storm: Storm | None = None
    storm_start: int | None = None  # Unix seconds: the start of the storm's window

    @classmethod
    def generate(
        cls,
        seed: int,
        *,
        subscribers: int = 2000,
        records: int = 5000,
        files: int = 8,
        lists: int | None = None,
        campaigns: int | None = None,
        independent: bool = False,
        edge_files: bool = True,
        soft_threshold: int = 5,
        start_time: int = 1732000000,
        storm: Storm | None = None,
    ) -> World:
        """A world with `subscribers` addresses and `records` b/rb rows (plus d/t and f rows) over `files` files.

        `independent`: every address bounces at most once and nothing repeats,
        so the result cannot depend on the order records are applied in.
        `edge_files`: add an empty file, a header-only file and a d/t-only file.
        `storm`: a false-bounce storm of one domain among the traffic (pmtabounce/demo/storm.py).
        """
        rng = random.Random(seed)
        list_count = lists or max(4, min(40, subscribers // 400))
        people = _People(rng, subscribers, list_count, start_time)
        sends = _campaigns(rng, campaigns or max(12, min(400, records // 300)), list_count, start_time)
        history = _history(rng, people.rows, sends, soft_threshold, start_time)
        maker = RecordMaker(rng, people.addresses, people.lists_of, sends, independent, start_time + 86400,
                            people.rows_of)
        rows, storm_start = maker.rows(records), None
        if storm is not None:
            rows, storm_start = add_storm(rng, storm, people, maker.by_list, rows)
        specs = _files(rng, rows, files, start_time + 86400)
        if edge_files:
            specs = sorted(specs + _edge_files(specs[0], [maker.skip_row() for _ in range(5)]), key=_name)
        return cls(seed, people.list_rows(), people.rows, history, sends, specs, independent, people.requests(),
                   storm, storm_start)

    @property
    def record_count(self) -> int:
        """b/rb rows in the files (duplicates and malformed rows included; d/t rows not)."""
        return sum(spec.bounce_rows for spec in self.files)

    def create_database(self, cursor: Cursor, tables: Tables) -> None:
        """Insert the world into IEM tables that exist and are empty, in the caller's transaction."""
        for table, columns, rows in self._table_rows(tables):
            insert_fixture_rows(cursor, table, columns, rows)

    def _table_rows(self, tables):
        """(table, columns, rows) for every IEM table the world fills."""
        yield tables.lists, ("listid", "name", "ownername", "owneremail", "bounceemail", "format", "createdate",
                             "subscribecount", "unsubscribecount", "bouncecount", "processbounce", "visiblefields",
                             "ownerid"), [
            (r.listid, r.name, "Owner", "owner@example.com", "bounce@example.com", "h", r.createdate,
             r.subscribecount, r.unsubscribecount, r.bouncecount, "1", "emailaddress,subscribedate", 1)
            for r in self.lists]
        yield tables.subscribers, ("subscriberid", "listid", "emailaddress", "domainname", "format", "confirmed",
                                   "confirmcode", "requestdate", "confirmdate", "subscribedate", "bounced",
                                   "unsubscribed", "unsubscribeconfirmed"), [
            (r.subscriberid, r.listid, r.emailaddress, r.emailaddress.rsplit("@", 1)[1].lower(), "h", r.confirmed,
             r.confirmcode, r.subscribedate, r.subscribedate if r.confirmed == "1" else 0, r.subscribedate,
             r.bounced, r.unsubscribed, "1" if r.unsubscribed else "0")
            for r in self.subscribers]
        yield tables.unsubscribes, ("subscriberid", "unsubscribetime", "unsubscriberequesttime",
                                    "unsubscriberequestip", "listid", "statid", "unsubscribearea"), [
            (r.subscriberid, r.unsubscribed, 0, None, r.listid, 0, "form") for r in self.subscribers if r.unsubscribed
        ] + [(q.subscriberid, 0, q.requesttime, q.requestip, q.listid, 0, None) for q in self.requests]
        yield tables.bounces, ("bounceid", "subscriberid", "statid", "listid", "bouncetime", "bouncetype",
                               "bouncerule", "bouncemessage"), [
            (b.bounceid, b.subscriberid, b.statid, b.listid, b.bouncetime, b.bouncetype, b.bouncerule, "")
            for b in self.bounces]
        yield f"`{tables.prefix}stats_sequence`", ("id",), [(c.statid,) for c in self.campaigns]
        yield tables.stats_newsletters, ("statid", "bouncecount_soft", "bouncecount_hard", "bouncecount_unknown",
                                         "starttime", "finishtime", "htmlrecipients", "newsletterid",
                                         "sendfromemail", "sendinformation", "sendtype"), [
            (c.statid, c.bouncecount_soft, c.bouncecount_hard, c.bouncecount_unknown, c.starttime,
             c.starttime + 3600, 1000, c.statid % 50 + 1, "news@example.com", "", "newsletter")
            for c in self.campaigns if c.kind == "newsletter"]
        yield tables.stats_autoresponders, ("statid", "bouncecount_soft", "bouncecount_hard",
                                            "bouncecount_unknown", "htmlrecipients", "autoresponderid"), [
            (c.statid, c.bouncecount_soft, c.bouncecount_hard, c.bouncecount_unknown, 100, c.statid % 20 + 1)
            for c in self.campaigns if c.kind == "autoresponder"]

    def write_files(self, directory: Path | str) -> list[Path]:
        """Write every accounting file into `directory` (created if missing); returns their paths in order."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return [_write(spec, directory) for spec in self.files]


class _People:
    """Addresses and their subscriber rows: several lists each, stored in mixed case for some."""

    def __init__(self, rng: random.Random, count: int, list_count: int, start: int) -> None:
        self.addresses: list[str] = []  # as the files write them (lower case)
        self.lists_of: list[tuple[int, ...]] = []
        self.rows: list[SubscriberRow] = []
        self.rows_of: list[dict[int, tuple[int, str]]] = []  # per address: listid -> (subscriberid, confirmcode)
        self.list_count = list_count
        self.createdate = start - 400 * 86400
        next_id = 1
        for n in range(count):
            address = f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}{n}@{rng.choice(DOMAINS)}"
            stored = address.title() if rng.random() < 0.2 else address
            on = rng.sample(range(1, list_count + 1), rng.choices((1, 2, 3), (55, 33, 12))[0])
            self.addresses.append(address)
            self.lists_of.append(tuple(sorted(on)))
            self.rows_of.append({})
            for listid in on:  # unsorted: the lowest listid is not always the lowest subscriberid
                row = self._row(rng, next_id, listid, stored, start)
                self.rows.append(row)
                self.rows_of[-1][listid] = (row.subscriberid, row.confirmcode)
                next_id += 1

    def add(self, address: str, listid: int, time: int) -> str:
        """One more address, active and confirmed on one list since a month before `time`; returns it."""
        subscriberid = len(self.rows) + 1
        code = hashlib.md5(f"{subscriberid}/{listid}/{address}".encode()).hexdigest()
        self.addresses.append(address)
        self.lists_of.append((listid,))
        self.rows_of.append({listid: (subscriberid, code)})
        self.rows.append(SubscriberRow(subscriberid, listid, address, "1", time - 30 * 86400, 0, 0, code))
        return address

    @staticmethod
    def _row(rng: random.Random, subscriberid: int, listid: int, address: str, start: int) -> SubscriberRow:
        joined = start - rng.randrange(86400, 300 * 86400)
        roll = rng.random()
        unsubscribed = joined + rng.randrange(3600, 80000) if roll < 0.05 else 0
        bounced = joined + rng.randrange(3600, 80000) if 0.05 <= roll < 0.09 else 0
        confirmed = "0" if rng.random() < 0.1 else "1"
        # IEM's confirmcode is md5 of random data; hashed here so that it takes nothing from `rng`.
        code = hashlib.md5(f"{subscriberid}/{listid}/{address}".encode()).hexdigest()
        return SubscriberRow(subscriberid, listid, address, confirmed, joined, bounced, unsubscribed, code)

    def requests(self) -> list[UnsubscribeRequest]:
        """Pending unsubscribe requests on some active rows (one in 17), which a complaint must keep."""
        return [UnsubscribeRequest(r.subscriberid, r.listid, r.subscribedate + 3600,
                                   f"198.51.100.{r.subscriberid % 250}")
                for r in self.rows if r.subscriberid % 17 == 0 and not r.unsubscribed and not r.bounced]

    def list_rows(self) -> list[ListRow]:
        active: Counter[int] = Counter()
        unsubscribed: Counter[int] = Counter()
        bounced: Counter[int] = Counter()
        for row in self.rows:
            target = unsubscribed if row.unsubscribed else bounced if row.bounced else active
            target[row.listid] += 1
        return [
            ListRow(listid, f"List {listid}", self.createdate + listid * 3600, active[listid],
                    unsubscribed[listid], bounced[listid] + listid % 3)
            for listid in range(1, self.list_count + 1)
        ]


def _campaigns(rng: random.Random, count: int, list_count: int, start: int) -> list[Campaign]:
    """Statids 1..count from one sequence, shared by newsletters and autoresponders; some deleted since."""
    result = []
    for statid in range(1, count + 1):
        kind = rng.choices(("newsletter", "autoresponder", "deleted"), (70, 20, 10))[0]
        width = 1 if kind == "autoresponder" else rng.choices((1, 2, 3), (50, 35, 15))[0]
        lists = tuple(sorted(rng.sample(range(1, list_count + 1), min(width, list_count))))
        hard, soft, unknown = (rng.randrange(0, 30) for _ in range(3))
        result.append(Campaign(statid, kind, lists, start - (count - statid) * 7200, soft, hard, unknown))
    return result


def _history(rng: random.Random, rows: list[SubscriberRow], sends: list[Campaign], threshold: int,
             start: int) -> list[BounceRow]:
    """Earlier bounce rows: some active subscribers one or two short of the soft threshold."""
    result: list[BounceRow] = []
    for row in rows:
        if rng.random() >= (0.3 if row.bounced else 0.06):
            continue
        for _ in range(rng.choice((1, 2, max(1, threshold - 2), max(1, threshold - 1), max(1, threshold - 1)))):
            campaign = rng.choice(sends)
            kind = "hard" if rng.random() < 0.1 else "soft"
            category = rng.choice(("bad-mailbox",) if kind == "hard" else ("quota-issues", "no-answer-from-host"))
            result.append(BounceRow(len(result) + 1, row.subscriberid, campaign.statid, row.listid,
                                    start - rng.randrange(3600, 90 * 86400), kind, bounce_rule(category)))
    return result


def _files(rng: random.Random, rows: list[Row], count: int, start: int) -> list[FileSpec]:
    """Spread the rows over `count` files, each with its own PowerMTA configuration.

    File 1 uses the patched header names and LF line ends, file 2 ISO times and
    file 3 a BOM, so even a small world has each; the others draw theirs.
    """
    count = max(1, count)
    bounds = sorted(rng.sample(range(1, len(rows)), count - 1)) if len(rows) > count else []
    cuts = [0, *bounds, len(rows)] if bounds else [0] * count + [len(rows)]
    day = datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%d")
    specs = []
    for index in range(count):
        spec = _configure(rng, f"bounces-{day}-{2 * index:04d}.csv", index)
        spec.rows = rows[cuts[index]:cuts[index + 1]]
        specs.append(spec)
    return specs


def _configure(rng: random.Random, name: str, index: int) -> FileSpec:
    variant = "patched" if index == 1 or (index > 2 and rng.random() < 0.3) else "mailer"
    extras = list(_EXTRA_COLUMNS[: rng.randrange(3)])
    columns = list(_BASE_COLUMNS) + list(_VARIANTS[variant]) + extras + list(_COMPLAINT_COLUMNS)
    fields = list(range(len(_BASE_COLUMNS) + 2 + len(extras))) + list(range(12, 12 + len(_COMPLAINT_COLUMNS)))
    if rng.random() < 0.3:  # the operator listed the fields in another order; `type` stays first
        tail = list(zip(columns[1:], fields[1:], strict=True))
        rng.shuffle(tail)
        columns[1:], fields[1:] = [c for c, _ in tail], [f for _, f in tail]
    if rng.random() < 0.2:
        columns = [c.lower() if c.startswith("header_") else c for c in columns]
    iso = index == 2 or (index > 2 and rng.random() < 0.25)
    return FileSpec(
        name, columns, fields,
        iso_offset=rng.choice((60, -300, 0, 330)) if iso else None,
        line_end="\n" if index == 1 or (index > 2 and rng.random() < 0.3) else "\r\n",
        bom=index == 3,
    )


def _edge_files(first: FileSpec, skip_rows: list[Row]) -> list[FileSpec]:
    """An empty file, a header-only file and one with only d/t rows, between the first data files:
    each must simply be done."""
    stem = first.name[: -len("0000.csv")]
    empty = FileSpec(f"{stem}0001.csv", None, [])
    header_only = FileSpec(f"{stem}0003.csv", first.header, first.fields)
    skips = FileSpec(f"{stem}0005.csv", first.header, first.fields, rows=skip_rows)
    return [empty, header_only, skips]


def _name(spec: FileSpec) -> str:
    return spec.name


def _write(spec: FileSpec, directory: Path) -> Path:
    path = directory / spec.name
    # surrogateescape: diagnostics with bytes that are not UTF-8 reach the disk as those bytes.
    with open(path, "w", encoding="utf-8-sig" if spec.bom else "utf-8", errors="surrogateescape",
              newline="") as handle:
        if spec.header is None:
            return path
        writer = csv.writer(handle, lineterminator=spec.line_end)
        writer.writerow(spec.header)
        zone = timezone(timedelta(minutes=spec.iso_offset)) if spec.iso_offset is not None else None
        for row in spec.rows:
            cells = [_cell(row, index, zone) for index in spec.fields]
            writer.writerow(cells[: row.cut] if row.cut else cells)
    return path


def _cell(row: Row, index: int, zone: timezone | None) -> str:
    value = row[index]
    if index == 1 and zone is not None and isinstance(value, int):
        return datetime.fromtimestamp(value, zone).strftime("%Y-%m-%d %H:%M:%S%z")
    return str(value)
