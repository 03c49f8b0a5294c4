"""Small, exact IEM rows for integration tests, and a snapshot of everything a bounce may touch.

Where the world generator (pmtabounce.demo.world) makes thousands of random rows,
this makes the three rows a spec case needs, with the ids the test names.
"""

from __future__ import annotations

import csv
import hashlib
import weakref
from pathlib import Path

from pmtabounce.common.accounting import record_cells
from pmtabounce.common.complaint import ComplaintRecord
from pmtabounce.common.record import BounceRecord
from pmtabounce.store.db import Tables
from pmtabounce.store.fixture import create_iem_tables
from pmtabounce.store.migrate import setup_database

T0 = 1732010733
CATEGORY = {"hard": "bad-mailbox", "soft": "quota-issues", "ignore": "policy-related"}
# Values that escaping must get right: quotes, backslashes, control characters, our own separators
# (store/db.py's SEPARATOR \x01 and QUOTE \x02), %, non-BMP characters.
AWKWARD = ["", "plain", "o'brien", 'say "hi"', "back\\slash", "nul\0byte", "line\nbreak", "cr\rhere", "ctrl\x1az",
           "percent %s %d %%", "ünïcödé", "emoji \U0001F600", "\x01", "a\x01b", "\x02", "x\x02'y",
           "\\'", "''", "\\"]
HEADER = ["type", "timeLogged", "rcpt", "dsnAction", "dsnStatus", "dsnDiag", "bounceCat",
          "header_X-Mailer-LID", "header_X-Mailer-SID"]


def bounce(kind: str = "hard", email: str = "ann@example.com", lists=(3,), statid: int = 42, time: int = T0,
           *, file: str = "bounces-test.csv", line: int = 2, diag: str | None = None) -> BounceRecord:
    """A record whose content differs by (kind, email, lists, statid, time); `kind` may be a raw category.

    List ids are sorted as the parser sorts them, so the record read back from a file is this one."""
    return BounceRecord("b", time, email, "5.0.0 (test)", diag if diag is not None else f"smtp;550 {kind} {time}",
                        CATEGORY.get(kind, kind), tuple(sorted(set(lists))), statid, file, line)


COMPLAINT_HEADER = HEADER + ["feedbackType", "format", "userAgent", "reportingMta", "header_List-Unsubscribe"]


def complaint(email: str = "ann@example.com", lists=(3,), statid: int = 42, time: int = T0, *,
              feedback_type: str = "abuse", link: str = "", file: str = "complaints-test.csv",
              line: int = 2) -> ComplaintRecord:
    """An ARF complaint (`link`: the List-Unsubscribe header, e.g. from `iem_link`)."""
    return ComplaintRecord("f", time, email, feedback_type, "arf", "Test-Feedback/1.0", "fbl.example.net",
                           tuple(sorted(set(lists))), statid, link, file, line)


def iem_link(subscriberid: int, confirmcode: str | None = None, listid: int = 0, statid: int = 0,
             area: str = "N") -> str:
    """IEM's per-recipient List-Unsubscribe value, with the parts given."""
    parts = [f"M={subscriberid}"] + ([f"C={confirmcode}"] if confirmcode is not None else [])
    parts += ([f"L={listid}"] if listid else []) + ([f"{area}={statid}"] if statid else [])
    return f"<https://iem.example.com/unsubscribe.php?{'&'.join(parts)}>"


def write_file(path: Path, records: list[BounceRecord | ComplaintRecord], *,
               extra_rows: list[list[str]] = ()) -> Path:
    """An accounting file with the usual header (with the complaint fields when there is a complaint),
    CRLF line ends, then any raw rows."""
    header = COMPLAINT_HEADER if any(isinstance(r, ComplaintRecord) for r in records) else HEADER
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(header)
        for record in records:
            writer.writerow(record_cells(record, header))
        writer.writerows(extra_rows)
    return path


class Seed:
    """Inserts IEM rows into one database under one table prefix."""

    def __init__(self, db, tables: Tables | None = None) -> None:
        self.db = db
        self.t = tables or db.tables
        self._connection = None

    def _run(self, sql: str, params=()) -> int:
        """One statement, committed at once; one connection for the seed's life (a connect costs 50 ms)."""
        if self._connection is None:
            self._connection = self.db.connect()
            weakref.finalize(self, self._connection.close)
        with self._connection.cursor() as cursor:
            cursor.execute(sql.format(t=self.t), params)
            last = cursor.lastrowid
        self._connection.commit()
        return last

    def create_tables(self) -> Seed:
        """IEM's fixture tables and our ledger under this seed's prefix (for a second prefix in one database)."""
        connection = self.db.connect()
        try:
            create_iem_tables(connection.cursor(), self.t)
            connection.commit()
        finally:
            connection.close()
        setup_database(self.db.settings(table_prefix=self.t.prefix))
        return self

    def lists(self, *listids: int, subscribecount: int = 100, bouncecount: int = 0) -> None:
        for listid in listids:
            self._run("INSERT INTO {t.lists} (listid, name, subscribecount, unsubscribecount, bouncecount, "
                      "visiblefields) VALUES (%s, %s, %s, 7, %s, '')",
                      (listid, f"list {listid}", subscribecount, bouncecount))

    def subscriber(self, email: str, listid: int, *, subscriberid: int | None = None, confirmed: str = "1",
                   bounced: int = 0, unsubscribed: int = 0, confirmcode: str | None = None) -> int:
        """A row (confirmcode: 32 hex characters made from the address and list unless given)."""
        code = confirmcode if confirmcode is not None else hashlib.md5(f"{email}/{listid}".encode()).hexdigest()
        return self._run(
            "INSERT INTO {t.subscribers} (subscriberid, listid, emailaddress, domainname, format, confirmed, "
            "confirmcode, subscribedate, bounced, unsubscribed) VALUES (%s, %s, %s, %s, 'h', %s, %s, %s, %s, %s)",
            (subscriberid, listid, email, email.rsplit("@", 1)[-1], confirmed, code, T0 - 86400, bounced,
             unsubscribed),
        )

    def unsubscribe_request(self, subscriberid: int, listid: int, requesttime: int, requestip: str) -> None:
        """A pending request in email_list_subscribers_unsubscribe, as IEM's double opt-out leaves it."""
        self._run("INSERT INTO {t.unsubscribes} (subscriberid, unsubscribetime, unsubscribeip, "
                  "unsubscriberequesttime, unsubscriberequestip, listid, statid, unsubscribearea) "
                  "VALUES (%s, 0, NULL, %s, %s, %s, 0, NULL)", (subscriberid, requesttime, requestip, listid))

    def webhook(self, listid: int, event: int, url: str, *, active: int = 1, webhook_type: int = 1) -> int:
        """A row of IEM 6.5.1's email_webhooks (`event`: 1 Subscribe, 2 Unsubscribe, 3 Bounce); its webhookid."""
        return self._run("INSERT INTO {t.webhooks} (webhook_type_id, webhook_event_type_id, id, webhook_url, "
                         "createdate, active, ownerid) VALUES (%s, %s, %s, %s, %s, %s, 1)",
                         (webhook_type, event, listid, url, T0 - 86400, active))

    def custom_field(self, name: str | None, *listids: int, fieldid: int | None = None) -> int:
        """A custom field mapped to `listids`; its fieldid."""
        fieldid = self._run("INSERT INTO {t.customfields} (fieldid, name, fieldtype, fieldsettings) "
                            "VALUES (%s, %s, 'text', '')", (fieldid, name))
        for listid in listids:
            self._run("INSERT INTO {t.customfield_lists} (fieldid, listid) VALUES (%s, %s)", (fieldid, listid))
        return fieldid

    def field_data(self, subscriberid: int, fieldid: int, data: str | None) -> None:
        """A subscriber's value of a custom field (a row of email_subscribers_data)."""
        self._run("INSERT INTO {t.subscribers_data} (subscriberid, fieldid, data) VALUES (%s, %s, %s)",
                  (subscriberid, fieldid, data))

    def newsletter(self, statid: int) -> None:
        self._run("INSERT INTO {t.stats_newsletters} (statid, bouncecount_soft, bouncecount_hard, "
                  "bouncecount_unknown, sendinformation) VALUES (%s, 10, 20, 30, '')", (statid,))

    def autoresponder(self, statid: int) -> None:
        self._run("INSERT INTO {t.stats_autoresponders} (statid, bouncecount_soft, bouncecount_hard, "
                  "bouncecount_unknown) VALUES (%s, 1, 2, 3)", (statid,))

    def bounce_row(self, subscriberid: int, statid: int, listid: int, bouncetype: str = "soft",
                   bouncetime: int = T0 - 3600) -> None:
        """A bounce row from IEM's history (the original addon, or IEM's own bounce processing)."""
        self._run("INSERT INTO {t.bounces} (subscriberid, statid, listid, bouncetime, bouncetype, bouncerule, "
                  "bouncemessage) VALUES (%s, %s, %s, %s, %s, 'history', 'from before')",
                  (subscriberid, statid, listid, bouncetime, bouncetype))


def snapshot(db, tables: Tables | None = None, *, ledger: bool = True) -> dict[str, list[tuple]]:
    """Every row a bounce or complaint may touch, in a stable order (bounceid, ledger ids and times left out)."""
    t = tables or db.tables
    queries = {
        "subscribers": f"SELECT * FROM {t.subscribers} ORDER BY subscriberid",
        "lists": f"SELECT * FROM {t.lists} ORDER BY listid",
        "bounces": f"SELECT subscriberid, statid, listid, bouncetime, bouncetype, bouncerule, bouncemessage "
                   f"FROM {t.bounces} ORDER BY subscriberid, statid, listid, bouncetime, bouncetype",
        "newsletters": f"SELECT statid, bouncecount_soft, bouncecount_hard, bouncecount_unknown, unsubscribecount "
                       f"FROM {t.stats_newsletters} ORDER BY statid",
        "autoresponders": f"SELECT statid, bouncecount_soft, bouncecount_hard, bouncecount_unknown, unsubscribecount "
                          f"FROM {t.stats_autoresponders} ORDER BY statid",
        "unsubscribes": f"SELECT subscriberid, unsubscribetime, unsubscribeip, unsubscriberequesttime, "
                        f"unsubscriberequestip, listid, statid, unsubscribearea FROM {t.unsubscribes} "
                        "ORDER BY subscriberid, listid, unsubscribetime",
    }
    if ledger:
        queries["ledger"] = (f"SELECT fingerprint, record_type, time_logged, email, list_ids, statid, category, "
                             f"dsn_status, dsn_diag, decision, outcome, subscriberid, listid "
                             f"FROM {t.ledger} ORDER BY fingerprint")
    connection = db.connect()
    try:
        with connection.cursor() as cursor:
            result = {}
            for name, sql in queries.items():
                cursor.execute(sql)
                result[name] = [tuple(row) for row in cursor.fetchall()]
            return result
    finally:
        connection.close()


def ledger_rows(db, tables: Tables | None = None) -> list[dict]:
    """The ledger as dicts, oldest first."""
    t = tables or db.tables
    connection = db.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {t.ledger} ORDER BY id")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()


BIG = 300_000  # characters: more than a queue message's 256 KiB, less than the parser's 1 MiB field limit


def write_oversized(path: Path) -> list[list[str]]:
    """A file with one ordinary bounce (line 2) and two records too big for a queue message: a bounce
    with a 300 KB dsnDiag (line 3), a complaint with a 300 KB List-Unsubscribe (line 4).
    Returns the two big rows' cells, as NAME.rejected must keep them."""
    big = [bounce(email="big@example.com", diag="smtp;550 " + "x" * BIG, line=3),
           complaint("", link=iem_link(7, None, 3) + f", <mailto:{'u' * BIG}@example.com>", line=4)]
    write_file(path, [bounce(), *big])
    return [list(record_cells(record, COMPLAINT_HEADER)) for record in big]


def rejected_rows(path: Path) -> list[tuple[str, list[str]]]:
    """NAME.rejected's rows as (reason, cells)."""
    with open(path.with_name(path.name + ".rejected"), encoding="utf-8", newline="") as handle:
        _, *rows = csv.reader(handle)
    return [(row[0], row[1:]) for row in rows]
