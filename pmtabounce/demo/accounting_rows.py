"""The rows of generated accounting files: who bounces, why, and every kind of trouble a real file has.

Part of the world generator (pmtabounce/demo/world.py); kept apart because what a
row says is one job and which file and database it lands in is another.
"""

from __future__ import annotations

import itertools
import random
from typing import NamedTuple

from .complaint_shapes import complaint_variant

# (category, weight, dsnStatus, diagnostics). Some diagnostics hold commas, quotes and line breaks,
# as remote servers write them; '' and the custom ones are categories no policy lists.
CATEGORIES = (
    ("bad-mailbox", 15, "5.1.1 (bad destination mailbox address)", (
        "smtp;550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table",
        "smtp;550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
        "550-5.1.1 double-checking the recipient's email address for typos or\r\n550 5.1.1 unnecessary spaces.",
        'smtp;550 Requested action not taken: mailbox unavailable, "{rcpt}" unknown',
    )),
    ("inactive-mailbox", 5, "5.2.1 (mailbox disabled, not accepting messages)", (
        "smtp;550 5.2.1 The email account that you tried to reach is disabled.",
        "smtp;550 5.2.1 <{rcpt}>: account inactive, closed",
    )),
    ("bad-domain", 5, "5.1.2 (bad destination system: no such domain)", (
        "smtp;550 5.1.2 Host unknown (Name server: {domain}: host not found)",
        "No MX or A record for {domain}",
    )),
    ("quota-issues", 14, "5.2.2 (mailbox full)", (
        'smtp;552 5.2.2 Mailbox full, "quota exceeded"',
        "smtp;452 4.2.2 The email account that you tried to reach is over quota.",
        "smtp;552 5.2.2 <{rcpt}>: mailbox size limit exceeded",
    )),
    ("no-answer-from-host", 8, "4.4.1 (no answer from host)", (
        "smtp;421 4.4.2 Connection timed out",
        "No answer from host {domain}",
    )),
    ("relaying-issues", 4, "5.7.1 (delivery not authorized, message refused)", (
        "smtp;550 5.7.1 <{rcpt}>: Relay access denied",
    )),
    ("routing-errors", 6, "5.4.4 (unable to route)", (
        'smtp;554 5.4.4 Unable to route, "no route to host"',
    )),
    ("policy-related", 8, "5.7.1 (delivery not authorized, message refused)", (
        "smtp;550 5.7.1 Service unavailable; client host [203.0.113.7] blocked using zen.spamhaus.org",
    )),
    ("spam-related", 5, "5.7.1 (delivery not authorized, message refused)", (
        "smtp;554 5.7.1 Message rejected as spam, score=9.1 (\"BAYES_99\")",
    )),
    ("message-expired", 5, "4.4.7 (delivery time expired)", ("smtp;451 4.4.7 Message expired",)),
    ("bad-connection", 3, "4.4.2 (bad connection)", ("smtp;421 4.7.0 Try again later, closing connection.",)),
    ("content-related", 2, "5.6.0 (other or undefined media error)", (
        'smtp;552 5.7.0 Message content rejected, "attachment not allowed"',
    )),
    ("other", 3, "5.0.0 (undefined status)", ("x-pmta;deleted by administrator",)),
    ("invalid-sender", 1, "5.1.7 (bad sender's mailbox address syntax)", ("smtp;553 5.1.7 Sender address rejected",)),
    ("protocol-errors", 1, "5.5.1 (invalid command)", ("smtp;503 5.5.1 Error: need RCPT command",)),
    ("bad-configuration", 1, "5.3.5 (system incorrectly configured)", ("smtp;550 5.3.5 System misconfigured",)),
    ("virus-related", 1, "5.7.1 (delivery not authorized, message refused)", ("smtp;554 5.7.1 Virus found",)),
    ("hardbnc", 2, "5.1.1 (bad destination mailbox address)", ("smtp;550 hard bounce, mailbox gone",)),
    ("invalid-mailbox", 1, "5.1.1 (bad destination mailbox address)", ("smtp;550 5.1.1 invalid mailbox",)),
    ("", 3, "5.0.0 (undefined status)", ("smtp;550 rejected",)),
)
SOFT_CATEGORIES = ("quota-issues", "no-answer-from-host", "relaying-issues", "routing-errors")
_BY_NAME = {entry[0]: entry for entry in CATEGORIES}
_CATEGORY_WEIGHTS = list(itertools.accumulate(entry[1] for entry in CATEGORIES))
_SKIP_TYPES = ("d", "d", "d", "t", "tq", "rs")
UNROUTABLE_LISTS = ("", "", "abc", " , ", "x1")


class Row(NamedTuple):
    """One accounting row's values, by meaning; a file decides the column order and time format."""

    type: str
    time: int | str
    rcpt: str
    action: str
    status: str
    diag: str
    category: str
    lids: str
    sid: str
    vmta: str
    job: str
    cut: int = 0  # >0: the row is cut short to this many cells
    feedback_type: str = ""  # the rest: an `f` (complaint) row's fields
    format: str = ""
    user_agent: str = ""
    reporting_mta: str = ""
    list_unsubscribe: str = ""


def bounce_rule(category: str) -> str:
    """IEM's bouncerule: the category with `-` replaced by `_`."""
    return category.replace("-", "_")


class RecordMaker:
    """Draws bounce rows against a set of addresses and campaigns (see World.generate)."""

    def __init__(self, rng: random.Random, addresses: list[str], lists_of: list[tuple[int, ...]], campaigns: list,
                 independent: bool, start: int, rows_of: list[dict[int, tuple[int, str]]] | None = None) -> None:
        """`rows_of`: per address, listid -> (subscriberid, confirmcode), for IEM's List-Unsubscribe links;
        without it no complaints are made."""
        self.rng = rng
        self.rows_of = rows_of
        self.addresses = addresses
        self.lists_of = lists_of
        self.campaigns = campaigns
        self.by_list: dict[int, list] = {}
        for campaign in campaigns:
            for listid in campaign.list_ids:
                self.by_list.setdefault(listid, []).append(campaign)
        self.independent = independent
        self.unused = rng.sample(range(len(addresses)), len(addresses)) if independent else []
        self.hot = [] if independent else rng.sample(range(len(addresses)), min(len(addresses),
                                                                                   max(3, len(addresses) // 60)))
        self.time = start
        self.strangers = itertools.count(1)
        self.made: list[Row] = []  # well-formed bounce rows so far, for repeats and duplicates
        self.complaints: list[Row] = []  # complaint rows so far, for duplicates

    def rows(self, count: int) -> list[Row]:
        """`count` b/rb rows, with d/t rows (about one in twelve) and f rows (one in sixteen) between them."""
        kinds = ["subscriber", "stranger", "unknown", "unroutable", "malformed"]
        weights = [78, 4, 8, 5, 1] if self.independent else [70, 4, 6, 4, 1]
        if not self.independent:
            kinds += ["hot", "repeat", "duplicate"]
            weights += [9, 3, 3]
        cumulative = list(itertools.accumulate(weights))
        makers = {kind: getattr(self, f"_{kind}") for kind in kinds}
        result = []
        for _ in range(count):
            if self.rng.random() < 0.08:
                result.append(self.skip_row())
            if self.rows_of is not None and self.rng.random() < 0.06:
                result.append(self.complaint_row())
            row = makers[self.rng.choices(kinds, cum_weights=cumulative)[0]]()
            if not row.cut and row.rcpt and isinstance(row.time, int):
                self.made.append(row)
            result.append(row)
        return result

    def skip_row(self) -> Row:
        """A delivery, delay or remote-status row: skipped by the parser."""
        kind = self.rng.choice(_SKIP_TYPES)
        campaign = self.rng.choice(self.campaigns)
        return Row(kind, self._tick(), self.rng.choice(self.addresses), "relayed" if kind == "d" else "delayed",
                   "2.0.0 (success)" if kind == "d" else "4.4.1 (no answer from host)", "smtp;250 2.0.0 OK",
                   "", ",".join(map(str, campaign.list_ids)), str(campaign.statid), "vmta-1", "")

    def complaint_row(self) -> Row:
        """A feedback-loop report as PowerMTA logs it: ARF or JMRP, rcpt often redacted, IEM's link or not."""
        rng = self.rng
        if self.complaints and not self.independent and rng.random() < 0.05:
            return rng.choice(self.complaints)  # the same report again, word for word
        who = self._address()
        if who is None or rng.random() < 0.05:
            rcpt, link, campaign = f"gone{next(self.strangers)}@example.org", "", rng.choice(self.campaigns)
        else:
            listid = rng.choice(self.lists_of[who])
            campaign = rng.choice(self.by_list.get(listid) or self.campaigns)
            subscriberid, code = (self.rows_of or [])[who][listid]
            area = "A" if campaign.kind == "autoresponder" else "N"
            rcpt = self._spelled(self.addresses[who])
            link = (f"<https://iem.example.com/unsubscribe.php?M={subscriberid}&C={code}&L={listid}"
                    f"&{area}={campaign.statid}>")
        lists, statid = self._lists(campaign.list_ids), self._statid(campaign.statid)
        row = Row("f", self._tick(), rcpt, "", "", "", "", lists, statid, "vmta-1", "", 0, "abuse", "arf",
                  "Example-FBL/1.0", "fbl.example.net", link)
        row = complaint_variant(row, rng.random())
        self.complaints.append(row)
        return row

    def _address(self) -> int | None:
        if not self.independent:
            return self.rng.randrange(len(self.addresses))
        return self.unused.pop() if self.unused else None

    def _subscriber(self) -> Row:
        """An address bouncing from a campaign sent to one of its lists."""
        who = self._address()
        if who is None:
            return self._unknown()
        sent = self.by_list.get(self.rng.choice(self.lists_of[who])) or self.campaigns
        return self._bounce(self._spelled(self.addresses[who]), self.rng.choice(sent), self._category())

    def _hot(self) -> Row:
        """Soft bounces piling up on a few addresses across campaigns, so some reach the threshold."""
        who = self.rng.choice(self.hot)
        sent = self.by_list.get(self.rng.choice(self.lists_of[who])) or self.campaigns
        return self._bounce(self._spelled(self.addresses[who]), self.rng.choice(sent),
                            self.rng.choice(SOFT_CATEGORIES))

    def _stranger(self) -> Row:
        """A subscriber bouncing from a campaign that was not sent to any of its lists."""
        who = self._address()
        if who is None:
            return self._unknown()
        mine = set(self.lists_of[who])
        tries = self.rng.sample(self.campaigns, min(5, len(self.campaigns)))
        others = [c for c in tries if mine.isdisjoint(c.list_ids)]
        campaign = others[0] if others else self.rng.choice(self.campaigns)
        return self._bounce(self.addresses[who], campaign, self._category())

    def _unknown(self) -> Row:
        rcpt = f"gone{next(self.strangers)}@{self.rng.choice(('example.com', 'example.net', 'example.biz'))}"
        return self._bounce(rcpt, self.rng.choice(self.campaigns), self._category())

    def _unroutable(self) -> Row:
        """A remote bounce that came back without the original headers, or with garbage in them."""
        row = self._subscriber()
        return row._replace(type="rb", lids=self.rng.choice(UNROUTABLE_LISTS), sid=self.rng.choice(("", row.sid)))

    def _repeat(self) -> Row:
        """The same address and campaign again (a `b`, later an `rb`): IEM keeps one bounce per campaign."""
        if not self.made:
            return self._subscriber()
        earlier = self.rng.choice(self.made)
        category = self._category()
        entry = _BY_NAME[category]
        return earlier._replace(type="rb", time=self._tick(), category=category, status=entry[2],
                                diag=self._diag(entry, earlier.rcpt.strip()))

    def _duplicate(self) -> Row:
        """A row met again word for word, usually from an earlier file (a file copied back)."""
        if not self.made:
            return self._subscriber()
        return self.made[self.rng.randrange(max(1, len(self.made) // 2))]

    def _malformed(self) -> Row:
        row = self._unknown()
        trouble = self.rng.randrange(3)
        if trouble == 0:
            return row._replace(cut=4)
        if trouble == 1:
            return row._replace(rcpt="")
        return row._replace(time="yesterday")

    def _bounce(self, rcpt: str, campaign, category: str) -> Row:
        rng = self.rng
        entry = _BY_NAME[category]
        kind = "rb" if rng.random() < 0.15 else "b"
        return Row(kind, self._tick(), rcpt, "" if kind == "rb" and rng.random() < 0.6 else "failed", entry[2],
                   self._diag(entry, rcpt.strip()), category, self._lists(campaign.list_ids),
                   self._statid(campaign.statid), f"vmta-{rng.randrange(1, 5)}", str(campaign.statid))

    def _diag(self, entry, rcpt: str) -> str:
        text = self.rng.choice(entry[3]).format(rcpt=rcpt, domain=rcpt.rpartition("@")[2])
        if self.rng.random() < 0.003:
            text += " \udcff\udcfe"  # bytes that are not UTF-8, as some remote servers send
        return text

    def _category(self) -> str:
        return self.rng.choices(CATEGORIES, cum_weights=_CATEGORY_WEIGHTS)[0][0]

    def _spelled(self, address: str) -> str:
        """The address as the file writes it: case differs from the database now and then."""
        roll = self.rng.random()
        if roll < 0.75:
            return address
        if roll < 0.85:
            return address.upper()
        if roll < 0.95:
            return address.title()
        return f" {address} "

    def _lists(self, list_ids: tuple[int, ...]) -> str:
        ids = [str(i) for i in list_ids]
        roll = self.rng.random()
        if roll < 0.7 or len(ids) == 1 and roll < 0.9:
            return ",".join(ids)
        if roll < 0.85:
            return ", ".join(ids) if self.rng.random() < 0.5 else " " + " , ".join(ids[::-1]) + " "
        if roll < 0.95:
            return ",".join([*ids, "x"])
        return ",".join(ids[::-1])

    def _statid(self, statid: int) -> str:
        roll = self.rng.random()
        if roll < 0.9:
            return str(statid)
        if roll < 0.93:
            return ""
        if roll < 0.95:
            return "0"
        if roll < 0.97:
            return f"{statid}abc"
        if roll < 0.98:
            return "abc"
        return str(900000 + self.rng.randrange(1000))  # a campaign deleted long ago

    def _tick(self) -> int:
        self.time += self.rng.choice((0, 1, 1, 2, 3))
        return self.time
