"""The bounce record: one `b` or `rb` accounting row, as both sides see it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from json.encoder import encode_basestring_ascii

_json_string = encode_basestring_ascii  # json.dumps's own string encoder (C)
BOUNCE_TYPES = frozenset({"b", "rb"})
INT32_MAX = 2**31 - 1  # IEM stores ids and times in int(11) columns
_LEADING_DIGITS = re.compile(r"\s*(\d+)")
# ISO 8601's extended form as PowerMTA writes it with `iso-times yes` (2024-11-19 10:05:33+0100) and its
# siblings: a date, then optionally a time (T or a space; seconds and up to 6 fraction digits optional) with an
# optional offset (Z, +HH, +HHMM, +HH:MM). Our own grammar, not datetime.fromisoformat, which reads more on
# Python 3.11 (basic form, week dates, a space before the offset) than on 3.10.
_ISO_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?"
                       r"(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?", re.ASCII)


@dataclass(frozen=True, slots=True)
class BounceRecord:
    """One bounce, with where it came from. `fingerprint` identifies its content."""

    type: str
    time_logged: int
    rcpt: str
    dsn_status: str
    dsn_diag: str
    category: str
    list_ids: tuple[int, ...]
    statid: int
    source_file: str = ""
    source_line: int = 0
    fingerprint: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", fingerprint(self))


def fingerprint(record: BounceRecord) -> str:
    """A hash of the record's content, not of its position.

    The same bounce met on another line or in a file copied back must count
    once, so the source file and line stay out of it. The parts are JSON-encoded
    rather than joined on a separator, which a remote server could put in dsnDiag.
    """
    return content_hash(
        record.type,
        str(record.time_logged),
        record.rcpt.lower(),
        record.dsn_status,
        record.dsn_diag,
        record.category,
        ",".join(map(str, record.list_ids)),
        str(record.statid),
    )


def content_hash(*parts: str) -> str:
    """32 hex characters identifying these parts, JSON-encoded so no separator can be forged inside one.

    The bytes are json.dumps(parts)'s, built without its per-call encoder setup (a third of a
    record's parsing time); the fingerprints in a ledger depend on them never changing.
    """
    text = "[" + ", ".join([_json_string(part) for part in parts]) + "]"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def parse_list_ids(raw: str) -> tuple[int, ...]:
    """`7, 8,13` -> (7, 8, 13); entries that are not all digits are dropped."""
    ids = set()
    for entry in raw.split(","):
        entry = entry.strip()
        if entry.isascii() and entry.isdigit():
            value = int(entry)
            if 0 < value <= INT32_MAX:
                ids.add(value)
    return tuple(sorted(ids))


def parse_statid(raw: str) -> int:
    """IEM's intval(): leading digits count (`12abc` -> 12); nothing numeric -> 0."""
    match = _LEADING_DIGITS.match(raw)
    if not match or not match.group(1).isascii():
        return 0
    value = int(match.group(1))
    # A statid beyond int(11) names no campaign; it can only mean "no statistics".
    return value if value <= INT32_MAX else 0


def parse_time(raw: str) -> int:
    """Unix seconds, or PowerMTA's `iso-times yes` form, to Unix seconds.

    Raises ValueError with a readable reason. Never returns a year as a time
    (the original's intval('2024-11-19 ...') did).
    """
    text = raw.strip()
    if not text:
        raise ValueError("timeLogged is empty")
    if text.isascii() and text.isdigit():
        value = int(text)
    else:
        moment = iso_time(text)
        if moment is None:
            raise ValueError(f"timeLogged {text!r} is neither Unix seconds nor an ISO time")
        if moment.tzinfo is None:
            raise ValueError(f"timeLogged {text!r} has no UTC offset")
        value = int(moment.timestamp())
    if not 0 < value <= INT32_MAX:
        raise ValueError(f"timeLogged {text!r} is out of range")
    return value


def iso_time(text: str) -> datetime | None:
    """`text` as an ISO 8601 time (_ISO_TIME), the same on every Python the project admits; None if it is not
    one (a date or time out of range included). Naive when `text` has no offset. The one reader of times:
    accounting files (parse_time) and the command line (parse_when)."""
    match = _ISO_TIME.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_hours, off_minutes = match.groups()
    try:
        zone = None
        if zulu:
            zone = timezone.utc
        elif sign:
            if int(off_minutes or 0) > 59:
                return None
            offset = timedelta(hours=int(off_hours), minutes=int(off_minutes or 0))
            zone = timezone(-offset if sign == "-" else offset)
        return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                        int((fraction or "0").ljust(6, "0")), tzinfo=zone)
    except ValueError:  # a month 13, an hour 24, an offset of a day or more
        return None
