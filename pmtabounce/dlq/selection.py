"""Which dead letters a `dlq` command works on: the filters, as one value that can also describe itself."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase

from .message import DeadLetterMessage

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MIN_ID_PREFIX = 8


def parse_age(text: str) -> timedelta:
    """'90s', '15m', '1h', '2d', '1w' -> a timedelta; ValueError with a readable reason otherwise."""
    match = _AGE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not an age like 30s, 15m, 1h, 2d or 1w")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])


def normalise_reason(text: str) -> str:
    """'Delivery-Limit' and 'delivery_limit' are the same reason."""
    return text.strip().lower().replace("-", "_")


@dataclass(frozen=True)
class Selection:
    """Filters that all must hold. Empty filters select everything."""

    reasons: tuple[str, ...] = ()
    older_than: timedelta | None = None
    newer_than: timedelta | None = None
    files: tuple[str, ...] = ()
    grep: str | None = None
    ids: tuple[str, ...] = ()
    limit: int | None = None

    def __post_init__(self) -> None:
        short = [i for i in self.ids if len(i) < MIN_ID_PREFIX]
        if short:
            raise ValueError(f"message id {short[0]!r} is too short: give at least {MIN_ID_PREFIX} characters")

    def matches(self, letter: DeadLetterMessage, now: datetime | None = None) -> bool:
        now = now or datetime.now(timezone.utc)
        return (
            self._reason_matches(letter)
            and self._age_matches(letter, now)
            and self._file_matches(letter)
            and (not self.grep or self.grep.lower() in letter.reason_text.lower())
            and (not self.ids or any(letter.id.startswith(i) for i in self.ids))
        )

    def pick(self, letters: Iterable[DeadLetterMessage], now: datetime | None = None) -> list[DeadLetterMessage]:
        """The matching letters in queue order, at most `limit` of them."""
        now = now or datetime.now(timezone.utc)
        chosen = [letter for letter in letters if self.matches(letter, now)]
        return chosen if self.limit is None else chosen[: self.limit]

    def _reason_matches(self, letter: DeadLetterMessage) -> bool:
        # A class or the start of one: `--reason invalid` finds invalid_message.
        reason = normalise_reason(letter.reason)
        return not self.reasons or any(reason.startswith(normalise_reason(r)) for r in self.reasons)

    def _age_matches(self, letter: DeadLetterMessage, now: datetime) -> bool:
        if self.older_than is None and self.newer_than is None:
            return True
        if letter.died_at is None:  # no time recorded: an age filter cannot vouch for it
            return False
        age = now - letter.died_at
        if self.older_than is not None and age < self.older_than:
            return False
        return self.newer_than is None or age <= self.newer_than

    def _file_matches(self, letter: DeadLetterMessage) -> bool:
        if not self.files:
            return True
        name = letter.source_file
        base = name.rsplit("/", 1)[-1]
        return any(fnmatchcase(name, pattern) or fnmatchcase(base, pattern) for pattern in self.files)

    def describe(self) -> str:
        """The filter as the options that give it, for the audit log and for messages."""
        parts = [f"--reason {r}" for r in self.reasons]
        if self.older_than is not None:
            parts.append(f"--older-than {_age_text(self.older_than)}")
        if self.newer_than is not None:
            parts.append(f"--newer-than {_age_text(self.newer_than)}")
        parts += [f"--file {f}" for f in self.files]
        if self.grep:
            parts.append(f"--grep {self.grep!r}")
        parts += [f"--id {i}" for i in self.ids]
        if self.limit is not None:
            parts.append(f"--limit {self.limit}")
        return " ".join(parts) or "everything"


def _age_text(age: timedelta) -> str:
    seconds = age.total_seconds()
    for unit in ("w", "d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def only_confirmed(letters: list[DeadLetterMessage], confirmed: Counter | None) -> list[DeadLetterMessage]:
    """Of the letters now in the queue, those the operator said yes to (by identity, counting copies).

    None means nobody was asked: all of them.
    """
    if confirmed is None:
        return letters
    left = Counter(confirmed)
    chosen = []
    for letter in letters:
        if left[letter.identity] > 0:
            left[letter.identity] -= 1
            chosen.append(letter)
    return chosen
