"""The domain guard: when one recipient domain's hard bounces spike, hold them instead of disabling.

Pure: the batch's walk asks `GuardBatch.holds` for every new record, in
order, and the guard's tables (store/guard_store.py) are read before and
written after. The rule is issue 12's: per recipient domain, count records
whose decision is `hard` in windows of bounce time (`timeLogged`, so a late
backlog counts where it happened); a window trips its domain when its count
reaches max(GUARD_MIN, GUARD_FACTOR x the domain's busiest window of the
previous 7 days). From the tripping record on, the domain's hard records are
held until an operator releases or discards them.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

import idna

from .policy import Decision
from .record import BounceRecord

HISTORY = 7 * 86400  # seconds of earlier windows that set a domain's usual level


@dataclass(frozen=True)
class GuardSettings:
    """PMTABOUNCE_GUARD, _GUARD_MIN (records), _GUARD_FACTOR and _GUARD_WINDOW (seconds)."""

    enabled: bool = True
    minimum: int = 100
    factor: float = 3.0
    window: int = 600

    @classmethod
    def from_settings(cls, settings) -> GuardSettings:
        """From common.config.Settings (its guard, guard_min, guard_factor, guard_window)."""
        return cls(settings.guard, settings.guard_min, settings.guard_factor, settings.guard_window)

    def window_of(self, time_logged: int) -> int:
        """The start (Unix seconds) of the window a bounce time falls in."""
        return time_logged - time_logged % self.window


def domain_of(rcpt: str) -> str:
    """The recipient's domain as its IDNA A-label in lower case (`bücher.example` and `xn--bcher-kva.example`
    are one domain); '' for an address without one. A name IDNA refuses is kept as written, lower-cased."""
    return a_label(rcpt.strip().rpartition("@")[2]) if "@" in rcpt else ""


def a_label(domain: str) -> str:
    """`domain` in its ASCII form (IDNA 2008 with UTS #46 mapping, the `idna` package), lower-cased; as
    written, lower-cased, if IDNA refuses it. An ASCII name is only lower-cased (its A-label is itself)."""
    return domain.lower() if domain.isascii() else _a_label(domain)


@functools.lru_cache(maxsize=4096)
def _a_label(domain: str) -> str:
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return domain.lower()


def u_label(domain: str) -> str:
    """The Unicode form of an A-label domain (for matching addresses written that way); itself if none."""
    try:
        return idna.decode(domain)
    except (idna.IDNAError, UnicodeError):
        return domain


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def valid_domain(text: str) -> str:
    """An operator's domain for `guard trip/release/discard`: its IDNA A-label, lower-cased, a leading `@`
    dropped (`bücher.example` gives `xn--bcher-kva.example`, the form the guard keeps; see `a_label`).

    Raises ValueError (saying why) unless it is a host name of two labels or more (RFC 1123 letters, digits,
    inner hyphens; at most 253 characters); an internationalised name must be valid IDNA 2008. A trailing
    dot, a wildcard or SQL LIKE character is refused, never stripped.
    """
    domain = text.strip().lower().removeprefix("@")
    if domain.endswith(".") and domain.rstrip("."):
        raise ValueError(f"{text!r}: no trailing dot in a recipient domain; did you mean {domain.rstrip('.')!r}?")
    try:
        ascii_form = domain if domain.isascii() else idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise ValueError(f"{text!r} is not a domain (example: gmail.com)") from None
    labels = ascii_form.split(".")
    if len(ascii_form) > 253 or len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{text!r} is not a domain (example: gmail.com)")
    return ascii_form


@dataclass
class DomainState:
    """What the guard's tables say about one domain: tripped or not, and its window counts.

    `counts`: window start -> hard records counted; `tripped_windows`: windows that tripped it
    (left out of the usual level, so one storm does not raise the bar for a week).
    """

    tripped: bool = False
    counts: dict[int, int] = field(default_factory=dict)
    tripped_windows: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Trip:
    """A domain tripping in this batch: the window, its count with the tripping record, and the bar it reached."""

    domain: str
    window_start: int
    count: int
    threshold: int
    record: BounceRecord

    def message(self, settings: GuardSettings, hard_categories: Iterable[str]) -> str:
        """The WARNING for this trip: the counts, and the undo command for what its window applied before it."""
        categories = " ".join(f"--category {c}" for c in sorted(hard_categories))
        return (
            f"domain guard: {self.domain} tripped: {self.count} hard bounces in the {settings.window} s window "
            f"from {iso(self.window_start)} reached the bar of {self.threshold}; its hard bounces are held from "
            f"{self.record.source_file} line {self.record.source_line} on (see `pmtabounce guard status`). "
            f"To see what that window disabled before the trip: pmtabounce undo --domain {self.domain} "
            f"--since {iso(self.window_start)} --until {iso(self.record.time_logged)} {categories} --dry-run"
        )


def iso(moment: int) -> str:
    """Unix seconds as ISO 8601 UTC, as `undo --since` takes it."""
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class GuardBatch:
    """The guard's view during one batch's walk; afterwards it says what to write.

    `states`: DomainState per domain with hard records in the batch (missing: never seen).
    After the walk: `added` (domain, window) -> records counted, `held` domain -> records held,
    `trips` domain -> Trip for each domain that tripped in this batch.
    """

    def __init__(self, settings: GuardSettings, states: Mapping[str, DomainState]) -> None:
        self.settings = settings
        self.states = states
        self.added: Counter = Counter()
        self.held: Counter = Counter()
        self.trips: dict[str, Trip] = {}

    def holds(self, record: BounceRecord, decision: Decision) -> bool:
        """Count a new record; True if it is to be held (nothing written to IEM, ledger outcome `held`)."""
        if not self.settings.enabled or decision != "hard":
            return False
        domain = domain_of(record.rcpt)
        if not domain:
            return False
        window = self.settings.window_of(record.time_logged)
        self.added[(domain, window)] += 1
        state = self.states.get(domain) or DomainState()
        if not (state.tripped or domain in self.trips):
            count = state.counts.get(window, 0) + self.added[(domain, window)]
            if count < self.settings.minimum:  # below every bar: the usual case, decided without the history
                return False
            threshold = self.threshold(domain, window)
            if count < threshold:
                return False
            self.trips[domain] = Trip(domain, window, count, threshold, record)
        self.held[domain] += 1
        return True

    def threshold(self, domain: str, window: int) -> int:
        """max(minimum, factor x the busiest untripped window in the 7 days before `window`)."""
        state = self.states.get(domain) or DomainState()
        earlier = [
            state.counts.get(start, 0) + self.added[(domain, start)]
            for start in set(state.counts) | {w for d, w in self.added if d == domain}
            if window - HISTORY <= start < window and start not in state.tripped_windows
        ]
        usual = max(earlier, default=0)
        return max(self.settings.minimum, math.ceil(self.settings.factor * usual))

    def domains(self) -> list[str]:
        """Domains the batch counted, sorted (the order their rows are locked in)."""
        return sorted({domain for domain, _ in self.added})

    def stands_with(self, states: Mapping[str, DomainState]) -> bool:
        """Whether this walk's decisions surely stand against `states` read later (locked), without walking again:
        nothing held or tripped, no domain tripped since, and every window still below the minimum bar."""
        if self.held or self.trips:
            return False
        for (domain, window), added in self.added.items():
            state = states.get(domain) or DomainState()
            if state.tripped or state.counts.get(window, 0) + added >= self.settings.minimum:
                return False
        return True

    def same_decisions(self, other: GuardBatch) -> bool:
        """Whether another walk of the same records held the same ones and tripped the same domains."""
        return self.held == other.held and self.trips.keys() == other.trips.keys()


def hard_domains(records: Iterable[BounceRecord], classify) -> list[str]:
    """Domains of the records whose decision is hard, sorted: the guard rows a batch needs."""
    return sorted({domain_of(r.rcpt) for r in records if classify(r.category) == "hard"} - {""})
