"""The rows a batch's planner walks over, and what it decides per record: plain data, no database."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..common.complaint import ComplaintRecord
from ..common.record import BounceRecord
from .effects import Effects, Unsubscribed

Record = BounceRecord | ComplaintRecord


@dataclass(frozen=True, slots=True)
class Outcome:
    """One record's fate. `decision`: hard/soft/ignore for a bounce; the scope acted on, or ignore, for a
    complaint. `effects` (see effects.py): what it writes to IEM, None for nothing."""

    record: Record
    outcome: str
    decision: str
    subscriberid: int | None = None
    listid: int | None = None
    effects: Effects | None = None
    unsubscribed: tuple[Unsubscribed, ...] = ()
    email: str = ""  # the address acted on when the record did not name it (a complaint found by its link)


@dataclass(frozen=True, slots=True)
class Candidate:
    """An active subscriber row (bounced = 0, unsubscribed = 0) for one queried address."""

    email: str  # the address as queried (the record's trimmed rcpt, or a linked row's emailaddress)
    subscriberid: int
    listid: int


@dataclass(frozen=True, slots=True)
class LinkedRow:
    """The row an IEM List-Unsubscribe link names by subscriberid (M), as the database holds it."""

    subscriberid: int
    listid: int
    emailaddress: str
    confirmcode: str
    active: bool


@dataclass
class Rows:
    """What the database holds for the batch, kept up to date as the walk goes (see Plan.take)."""

    by_email: dict[str, list[Candidate]]
    bounced_keys: set[tuple[int, int, int]]  # (subscriberid, statid, listid) with a bounce row
    row_count: Counter  # subscriberid -> bounce rows of any kind
    stats_tables: Mapping[int, str]  # statid -> 'autoresponders' | 'newsletters'
    linked: Mapping[int, LinkedRow] = field(default_factory=dict)  # subscriberid -> the row a link names
    requests: Mapping[tuple[int, int], tuple[int, str]] = field(default_factory=dict)  # kept request time, IP
    inactive: set[int] = field(default_factory=set)  # bounced or unsubscribed earlier in this batch

    def active(self, email: str, list_ids: Iterable[int] | None = None) -> list[Candidate]:
        """Active rows of an address (as queried), on these lists or on any list when None."""
        wanted = None if list_ids is None else set(list_ids)
        return [
            c
            for c in self.by_email.get(email, ())
            if c.subscriberid not in self.inactive and (wanted is None or c.listid in wanted)
        ]
