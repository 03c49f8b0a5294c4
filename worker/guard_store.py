"""The domain guard's tables: per-domain trip state and per-window counts.

Read before a batch's walk and written in the batch's own transaction, so N
workers count every hard record once and agree on when a domain tripped. A
domain's row is locked (an upsert) only at the end of a batch, just before
the writes and the commit; see BatchApplier for how a batch that finds the
counts moved under it is walked again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .db import Tables, case_of, insert_rows
from .guard import HISTORY, DomainState, GuardBatch

TRIPPED_BY_GUARD = "guard"


@dataclass(frozen=True)
class TripRow:
    """A tripped domain as `guard status` shows it (times in Unix seconds)."""

    domain: str
    tripped_at: int
    tripped_by: str
    window_start: int | None
    count: int
    threshold: int
    held: int


def _marks(count: int) -> str:
    return ", ".join(["%s"] * count)


def lock_domains(cursor, t: Tables, domains: Sequence[str]) -> None:
    """Create (if new) and lock these domains' rows until commit, in sorted order so workers never deadlock."""
    if domains:
        insert_rows(cursor, f"INSERT INTO {t.guard_domains} (domain) VALUES ", [(d,) for d in sorted(domains)],
                    suffix=" ON DUPLICATE KEY UPDATE domain = domain")


def read_states(cursor, t: Tables, domains: Sequence[str], first_window: int, last_window: int) -> dict:
    """DomainState per domain: tripped or not, and its windows from 7 days before `first_window` to `last_window`.

    One statement: every window row has its domain's row (lock_domains creates it before any window is written).
    """
    if not domains:
        return {}
    states = {d: DomainState() for d in domains}
    cursor.execute(
        f"SELECT d.domain, d.tripped_at IS NOT NULL, w.window_start, w.hard_count, w.tripped "
        f"FROM {t.guard_domains} AS d LEFT JOIN {t.guard_windows} AS w "
        "ON w.domain = d.domain AND w.window_start BETWEEN %s AND %s "
        f"WHERE d.domain IN ({_marks(len(domains))})",
        [first_window - HISTORY, last_window, *domains],
    )
    for domain, tripped, start, count, window_tripped in cursor.fetchall():
        state = states[domain.lower()]
        state.tripped = bool(tripped)
        if start is not None:
            state.counts[start] = count
            if window_tripped:
                state.tripped_windows.add(start)
    return states


def write(cursor, t: Tables, guard: GuardBatch, now: int) -> None:
    """The batch's counts, held records and trips; the domains' rows must be locked already."""
    if guard.added:
        rows = [(d, w, n, int(d in guard.trips and guard.trips[d].window_start == w))
                for (d, w), n in sorted(guard.added.items())]
        insert_rows(cursor, f"INSERT INTO {t.guard_windows} (domain, window_start, hard_count, tripped) VALUES ",
                    rows, suffix=" ON DUPLICATE KEY UPDATE hard_count = hard_count + VALUES(hard_count), "
                    "tripped = GREATEST(tripped, VALUES(tripped))")
    for trip in guard.trips.values():
        cursor.execute(
            f"UPDATE {t.guard_domains} SET tripped_at = %s, tripped_by = %s, trip_window = %s, trip_count = %s, "
            "trip_threshold = %s, trips = trips + 1 WHERE domain = %s",
            (now, TRIPPED_BY_GUARD, trip.window_start, trip.count, trip.threshold, trip.domain),
        )
    add_held(cursor, t, dict(guard.held))


def add_held(cursor, t: Tables, held: dict[str, int]) -> None:
    """Move the domains' held counts by these amounts (negative when released or discarded)."""
    if held:
        case, params = case_of("domain", held)
        cursor.execute(
            f"UPDATE {t.guard_domains} SET held = GREATEST(0, CAST(held AS SIGNED) + {case}) "
            f"WHERE domain IN ({_marks(len(held))})",
            params + sorted(held),
        )


def trip(cursor, t: Tables, domain: str, by: str, now: int) -> bool:
    """An operator trips a domain; False if it was tripped already."""
    lock_domains(cursor, t, [domain])
    cursor.execute(
        f"UPDATE {t.guard_domains} SET tripped_at = %s, tripped_by = %s, trip_window = NULL, trip_count = 0, "
        "trip_threshold = 0, trips = trips + 1 WHERE domain = %s AND tripped_at IS NULL",
        (now, by, domain),
    )
    return cursor.rowcount == 1


def end_trip(cursor, t: Tables, domain: str) -> None:
    """The domain applies as usual again (its row must be locked)."""
    cursor.execute(f"UPDATE {t.guard_domains} SET tripped_at = NULL, held = 0 WHERE domain = %s", (domain,))


def tripped(cursor, t: Tables, domain: str | None = None) -> list[TripRow]:
    """Tripped domains (or this one, if tripped), longest tripped first."""
    where, params = ("AND domain = %s", [domain]) if domain else ("", [])
    cursor.execute(
        f"SELECT domain, tripped_at, tripped_by, trip_window, trip_count, trip_threshold, held "
        f"FROM {t.guard_domains} WHERE tripped_at IS NOT NULL {where} ORDER BY tripped_at, domain",
        params,
    )
    return [TripRow(*row) for row in cursor.fetchall()]


def totals(cursor, t: Tables) -> tuple[int, int]:
    """(tripped domains, records held for them): the guard's gauges."""
    cursor.execute(f"SELECT COUNT(*), COALESCE(SUM(held), 0) FROM {t.guard_domains} WHERE tripped_at IS NOT NULL")
    count, held = cursor.fetchone()
    return int(count), int(held)
