"""The domain guard's tables (per-domain trip state, per-window counts) and its held records in the ledger.

Read before a batch's walk and written in the batch's own transaction, so N
workers count every hard record once and agree on when a domain tripped. A
domain's row is locked (an upsert) only at the end of a batch, just before
the writes and the commit; see BatchApplier for how a batch that finds the
counts moved under it is walked again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..common.errors import FatalError
from ..common.guard import HISTORY, DomainState, GuardBatch, a_label, u_label
from ..common.record import BounceRecord, parse_list_ids
from . import iem, ledger
from .db import Tables, case_of, insert_rows
from .effects import to_json
from .rows import Outcome

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


def normalise_domains(cursor, t: Tables) -> list[str]:
    """Fold each domain row an earlier version kept in Unicode (`bücher.example`) into its A-label's
    (`xn--bcher-kva.example`, common.guard.a_label): window counts and held counts added, a trip kept
    (the earlier one when both were tripped). `setup` runs it; idempotent. Returns the domains folded."""
    cursor.execute(f"SELECT domain FROM {t.guard_domains} WHERE LENGTH(domain) <> CHAR_LENGTH(domain) "
                   "ORDER BY domain FOR UPDATE")
    folded = []
    for (domain,) in cursor.fetchall():
        target = a_label(domain)
        if target == domain:
            continue  # IDNA refuses it: kept as written, as domain_of keeps its records
        lock_domains(cursor, t, [target])
        cursor.execute(f"SELECT window_start, hard_count, tripped FROM {t.guard_windows} WHERE domain = %s",
                       (domain,))
        windows = [(target, *row) for row in cursor.fetchall()]
        if windows:
            insert_rows(cursor, f"INSERT INTO {t.guard_windows} (domain, window_start, hard_count, tripped) VALUES ",
                        windows, suffix=" ON DUPLICATE KEY UPDATE hard_count = hard_count + VALUES(hard_count), "
                        "tripped = GREATEST(tripped, VALUES(tripped))")
        cursor.execute(f"DELETE FROM {t.guard_windows} WHERE domain = %s", (domain,))
        cursor.execute(f"SELECT tripped_at, tripped_by, trip_window, trip_count, trip_threshold, held, trips "
                       f"FROM {t.guard_domains} WHERE domain = %s", (domain,))
        at, by, window, count, threshold, held, trips = cursor.fetchone()
        # MySQL assigns left to right, each seeing the ones before: tripped_at, which the others test, last.
        takes = "(tripped_at IS NULL OR tripped_at > %s) AND %s IS NOT NULL"
        cursor.execute(
            f"UPDATE {t.guard_domains} SET held = held + %s, trips = trips + %s, "
            f"tripped_by = IF({takes}, %s, tripped_by), trip_window = IF({takes}, %s, trip_window), "
            f"trip_count = IF({takes}, %s, trip_count), trip_threshold = IF({takes}, %s, trip_threshold), "
            f"tripped_at = IF({takes}, %s, tripped_at) WHERE domain = %s",
            (held, trips, at, at, by, at, at, window, at, at, count, at, at, threshold, at, at, at, target),
        )
        cursor.execute(f"DELETE FROM {t.guard_domains} WHERE domain = %s", (domain,))
        folded.append(f"{domain} -> {target}")
    return folded


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


def escape_like(text: str) -> str:
    """`text` inside a LIKE pattern, its own \\, % and _ taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def domain_patterns(domain: str) -> list[str]:
    """LIKE patterns for the addresses of a domain (an A-label, as the guard keeps it): written in that
    form, and in its Unicode form if it has one (`x@bücher.example` is an address of xn--bcher-kva.example)."""
    forms = dict.fromkeys([domain.strip(), u_label(domain.strip())])
    return [f"%@{escape_like(form)}" for form in forms]


def email_in_domain(domain: str) -> tuple[str, list[str]]:
    """A condition on `email` (in parentheses) and its parameters: the address is one of the domain's."""
    patterns = domain_patterns(domain)
    return "(" + " OR ".join(["email LIKE %s"] * len(patterns)) + ")", patterns


def held_records(cursor, t: Tables, domain: str, after_id: int, limit: int) -> list[tuple[int, BounceRecord]]:
    """(ledger id, record) of a domain's held records after `after_id`, in the order they were held."""
    in_domain, patterns = email_in_domain(domain)
    cursor.execute(
        f"SELECT id, fingerprint, record_type, time_logged, email, dsn_status, dsn_diag, category, list_ids, statid, "
        f"source_file, source_line FROM {t.ledger} WHERE outcome = 'held' AND id > %s AND {in_domain} "
        "ORDER BY id LIMIT %s",
        (after_id, *patterns, limit),
    )
    found = []
    for row in cursor.fetchall():
        record = BounceRecord(row[2], row[3], row[4], row[5], row[6], row[7], parse_list_ids(row[8]), row[9],
                              row[10], row[11])
        # The ledger's own fingerprint names the row (a record cut to the columns' widths would hash otherwise).
        object.__setattr__(record, "fingerprint", row[1])
        found.append((row[0], record))
    return found


def discard_held(cursor, t: Tables, domain: str) -> int:
    """Mark a domain's held records `discarded` (kept as evidence, never applied); returns how many."""
    in_domain, patterns = email_in_domain(domain)
    cursor.execute(f"UPDATE {t.ledger} SET outcome = 'discarded' WHERE outcome = 'held' AND {in_domain}", patterns)
    return cursor.rowcount


def settle(cursor, t: Tables, outcomes: Sequence[Outcome]) -> None:
    """Held records, now applied (`guard release`): their ledger rows get their real outcome.

    Raises FatalError if a row is no longer `held` (released or discarded meanwhile by another run).
    """
    if not outcomes:
        return
    by_fingerprint = {o.record.fingerprint: o for o in outcomes}
    sets, params = [], []
    for column, value in (("outcome", lambda o: o.outcome), ("decision", lambda o: o.decision),
                          ("subscriberid", lambda o: o.subscriberid), ("listid", lambda o: o.listid),
                          ("effects", lambda o: to_json(o.effects))):
        case, case_params = case_of("fingerprint", {f: value(o) for f, o in by_fingerprint.items()})
        sets.append(f"{column} = {case}")
        params += case_params
    # By (time_logged, fingerprint), the ledger's unique key: the fingerprint alone is not indexed.
    where, keys = ledger.by_record(sorted((o.record.time_logged, f) for f, o in by_fingerprint.items()))
    cursor.execute(
        f"UPDATE {t.ledger} SET {', '.join(sets)} WHERE ({where}) AND outcome = 'held'",
        params + keys,
    )
    if cursor.rowcount != len(by_fingerprint):
        raise FatalError(f"{len(by_fingerprint) - cursor.rowcount} of these records are no longer held "
                         "(another `guard release` or `discard` ran meanwhile); nothing of this batch was applied")


@dataclass(frozen=True)
class SlotTaken:
    """A held hard record whose (subscriber, campaign, list) bounce slot a later soft bounce took during the hold.

    IEM keeps one bounce per (subscriberid, statid, listid) (spec iem-bounces.md step 2), so released now it
    would be `already_bounced` and disable nothing, where a run without the guard disabled the subscriber.
    `taker_*`: the ledger row of the soft bounce that took the slot.
    """

    held_id: int
    email: str
    listid: int
    statid: int
    taker_id: int
    taker_file: str
    taker_line: int
    taker_category: str
    taker_time: int

    def undo_command(self) -> str:
        """The `pmtabounce undo` that reverts the soft bounce which took the slot."""
        return (f"pmtabounce undo --email {self.email} --file {self.taker_file} --category {self.taker_category} "
                f"--since {self.taker_time} --until {self.taker_time} --outcome applied")


def slots_taken(cursor, t: Tables, held_ids: Sequence[int]) -> list[SlotTaken]:
    """Of these held ledger rows, those whose slot a soft bounce applied after them (and not undone) took: on the
    list the record would land on now (the lowest listid of its lists where the address is active)."""
    if not held_ids:
        return []
    cursor.execute(
        "SELECT h.id, h.email, h.list_ids, s.listid, s.statid, s.id, s.source_file, s.source_line, s.category, "
        "s.time_logged "
        f"FROM {t.ledger} AS h JOIN {t.ledger} AS s ON s.email = h.email AND s.statid = h.statid AND s.id > h.id "
        "AND s.decision = 'soft' AND s.outcome = 'applied' AND s.undo_run IS NULL "
        f"WHERE h.outcome = 'held' AND h.id IN ({_marks(len(held_ids))}) ORDER BY h.id, s.id",
        list(held_ids),
    )
    takers: dict[int, list] = {}
    for held_id, email, list_ids, listid, statid, *taker in cursor.fetchall():
        takers.setdefault(held_id, []).append((email, parse_list_ids(list_ids), listid, statid, taker))
    taken = []
    for held_id, found in takers.items():
        email, list_ids = found[0][0], found[0][1]
        # Spec step 1: the record lands on the lowest listid where the address is active now.
        active = [row[1] for row in iem.rows_of_address(cursor, t, email) if not row[2] and not row[3]
                  and row[1] in list_ids]
        taken += [SlotTaken(held_id, email, listid, statid, *taker) for _, _, listid, statid, taker in found
                  if active and listid == min(active)][:1]
    return taken
