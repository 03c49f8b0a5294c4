"""The domain guard's tables (per-domain trip state, per-window counts) and its held records in the ledger.

Read before a batch's walk and written in the batch's own transaction, so N
workers count every hard record once and agree on when a domain tripped. A
domain's row is locked (an upsert) only at the end of a batch, just before
the writes and the commit; see BatchApplier for how a batch that finds the
counts moved under it is walked again.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..common.errors import FatalError
from ..common.guard import HISTORY, DomainState, GuardBatch, a_label, u_label
from ..common.record import BounceRecord, parse_list_ids
from . import iem, ledger
from .db import Cursor, Tables, case_of, insert_rows, numbers_answer, numbers_of
from .effects import from_json, to_json
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


def lock_domains(cursor: Cursor, t: Tables, domains: Sequence[str]) -> None:
    """Create (if new) and lock these domains' rows until commit, in sorted order so workers never deadlock."""
    if domains:
        insert_rows(cursor, f"INSERT INTO {t.guard_domains} (domain) VALUES ", [(d,) for d in sorted(domains)],
                    suffix=" ON DUPLICATE KEY UPDATE domain = domain")


def read_states(cursor: Cursor, t: Tables, domains: Sequence[str], first_window: int, last_window: int, *,
                history: bool = True) -> dict:
    """DomainState per domain: tripped or not, and its windows from 7 days before `first_window` to `last_window`
    (without `history`, from `first_window`: enough to tell whether a walk's decisions stand, GuardBatch.stands_with).

    One statement: every window row has its domain's row (lock_domains creates it before any window is written).
    """
    if not domains:
        return {}
    states = {d: DomainState() for d in domains}
    source = (f"FROM {t.guard_domains} AS d LEFT JOIN {t.guard_windows} AS w "
              "ON w.domain = d.domain AND w.window_start BETWEEN %s AND %s "
              f"WHERE d.domain IN ({_marks(len(domains))})")
    params = [first_window - (HISTORY if history else 0), last_window, *domains]
    # A row per domain, its windows' numbers in one string (db.numbers_answer); a row per window if cut.
    window = ("w.window_start", "w.hard_count", "w.tripped")
    cursor.execute(f"SELECT d.domain, d.tripped_at IS NOT NULL, {numbers_answer(window, counted='w.window_start')} "
                   f"{source} GROUP BY d.domain", params)
    rows = _window_rows(cursor.fetchall(), len(window))
    if rows is None:
        cursor.execute(f"SELECT d.domain, d.tripped_at IS NOT NULL, {', '.join(window)} {source}", params)
        rows = cursor.fetchall()
    return _states(states, rows)


def _window_rows(answers: Iterable[tuple], width: int) -> list[tuple] | None:
    """(domain, tripped, window_start, hard_count, tripped) rows from a row per domain (db.numbers_of), a domain
    without windows with NULLs, as the LEFT JOIN gives them; None if any domain's numbers are not whole."""
    rows: list[tuple] = []
    for domain, tripped, *answer in answers:
        windows = numbers_of(answer, width)
        if windows is None:
            return None
        rows += [(domain, tripped, *w) for w in windows] or [(domain, tripped, None, None, None)]
    return rows


def _states(states: dict, rows: Iterable[tuple]) -> dict:
    """`states` (domain -> DomainState) filled from (domain, tripped, window_start, hard_count, tripped) rows;
    a domain without windows comes with NULLs."""
    for domain, tripped, start, count, window_tripped in rows:
        state = states[domain.lower()]
        state.tripped = bool(tripped)
        if start is not None:
            state.counts[start] = count
            if window_tripped:
                state.tripped_windows.add(start)
    return states


def write(cursor: Cursor, t: Tables, guard: GuardBatch, now: int) -> None:
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


def add_held(cursor: Cursor, t: Tables, held: dict[str, int]) -> None:
    """Move the domains' held counts by these amounts (negative when released or discarded)."""
    if held:
        case, params = case_of("domain", held)
        cursor.execute(
            f"UPDATE {t.guard_domains} SET held = GREATEST(0, CAST(held AS SIGNED) + {case}) "
            f"WHERE domain IN ({_marks(len(held))})",
            params + sorted(held),
        )


def trip(cursor: Cursor, t: Tables, domain: str, by: str, now: int) -> bool:
    """An operator trips a domain; False if it was tripped already."""
    lock_domains(cursor, t, [domain])
    cursor.execute(
        f"UPDATE {t.guard_domains} SET tripped_at = %s, tripped_by = %s, trip_window = NULL, trip_count = 0, "
        "trip_threshold = 0, trips = trips + 1 WHERE domain = %s AND tripped_at IS NULL",
        (now, by, domain),
    )
    return cursor.rowcount == 1


def end_trip(cursor: Cursor, t: Tables, domain: str) -> None:
    """The domain applies as usual again (its row must be locked)."""
    cursor.execute(f"UPDATE {t.guard_domains} SET tripped_at = NULL, held = 0 WHERE domain = %s", (domain,))


def normalise_domains(cursor: Cursor, t: Tables) -> list[str]:
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


def tripped(cursor: Cursor, t: Tables, domain: str | None = None) -> list[TripRow]:
    """Tripped domains (or this one, if tripped), longest tripped first."""
    where, params = ("AND domain = %s", [domain]) if domain else ("", [])
    cursor.execute(
        f"SELECT domain, tripped_at, tripped_by, trip_window, trip_count, trip_threshold, held "
        f"FROM {t.guard_domains} WHERE tripped_at IS NOT NULL {where} ORDER BY tripped_at, domain",
        params,
    )
    return [TripRow(*row) for row in cursor.fetchall()]


def totals(cursor: Cursor, t: Tables) -> tuple[int, int]:
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


def held_records(cursor: Cursor, t: Tables, domain: str, after_id: int, limit: int) -> list[tuple[int, BounceRecord]]:
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


def discard_held(cursor: Cursor, t: Tables, domain: str, run: int) -> int:
    """Mark a domain's held records `discarded` (kept as evidence, never applied) by the audit run `run` of the
    `guard discard`; returns how many."""
    in_domain, patterns = email_in_domain(domain)
    cursor.execute(
        f"UPDATE {t.ledger} SET outcome = 'discarded', guard_run = %s WHERE outcome = 'held' AND {in_domain}",
        (run, *patterns),
    )
    return cursor.rowcount


def settle(cursor: Cursor, t: Tables, outcomes: Sequence[Outcome], run: int) -> None:
    """Held records, now applied by the `guard release` of audit run `run`: their ledger rows get their real
    outcome and the run (`explain` shows which release ended the hold).

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
        f"UPDATE {t.ledger} SET {', '.join(sets)}, guard_run = %s WHERE ({where}) AND outcome = 'held'",
        params + [run] + keys,
    )
    if cursor.rowcount != len(by_fingerprint):
        raise FatalError(f"{len(by_fingerprint) - cursor.rowcount} of these records are no longer held "
                         "(another `guard release` or `discard` ran meanwhile); nothing of this batch was applied")


@dataclass(frozen=True)
class SlotTaken:
    """A held hard record whose row a later record, applied during the hold and not undone, changed.

    Without the guard the held record would have disabled its row first (spec iem-bounces.md step 5), and every
    later record would have found that row bounced (step 1; iem-complaints.md step 2): released now it would
    do something else. `how` says what the later record did to the row: `slot`, a soft bounce took the
    (subscriber, campaign, list) bounce slot, so the release would be `already_bounced` (step 2); `unsubscribed`,
    a complaint unsubscribed it, so the release would be `not_found`; `applied`, another bounce wrote to it
    (a bounce row, campaign counters, or a 5th bounce row that disabled it).
    `taker_*`: the ledger row of that later record.
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
    how: str = "slot"
    taker_feedback_type: str = ""

    def undo_command(self) -> str:
        """The `pmtabounce undo` that reverts the later record and nothing else (by its ledger id: file, time and
        category may be shared with records that did not touch the row), quoted for a POSIX shell."""
        return f"pmtabounce undo --ledger-id {self.taker_id} --email {shlex.quote(self.email)}"

    def what(self) -> str:
        """What the later record did, for people."""
        taker = f"{self.taker_file}:{self.taker_line}"
        if self.how == "unsubscribed":
            return (f"the complaint {taker} ({self.taker_feedback_type or 'no feedback type'}) unsubscribed its row "
                    "during the hold, so it would find no row (not_found)")
        if self.how == "slot":
            return (f"the soft bounce {taker} ({self.taker_category}) took its bounce slot during the hold, "
                    "so it would disable nothing")
        return (f"the bounce {taker} ({self.taker_category}) was applied to its row during the hold, where "
                "without the guard it would have found the row bounced")


# The outcomes of a record that changed a row it found (undo_filter.CHANGED_IEM).
_CHANGED_ROW = ("applied", "disabled", "unsubscribed")


def slots_taken(cursor: Cursor, t: Tables, held_ids: Sequence[int]) -> list[SlotTaken]:
    """Of these held ledger rows, those whose row a later record (applied after them, not undone) changed: one
    SlotTaken per such later record.

    The row a held record lands on without the guard is the lowest listid of its lists where the address was
    active when it was held (spec iem-bounces.md step 1): active now, or changed by a later record (those
    change active rows only). Not reported: a record whose slot on that row was taken before the hold (it is
    `already_bounced` either way, and the row stays active).
    """
    if not held_ids:
        return []
    cursor.execute(
        "SELECT h.id, h.email, h.list_ids, h.statid, s.id, s.source_file, s.source_line, s.category, s.time_logged, "
        "s.record_type, s.decision, s.outcome, s.feedback_type, s.statid, s.listid, s.effects "
        f"FROM {t.ledger} AS h JOIN {t.ledger} AS s ON s.email = h.email AND s.id > h.id "
        f"AND s.outcome IN ({_marks(len(_CHANGED_ROW))}) AND s.undo_run IS NULL "
        f"WHERE h.outcome = 'held' AND h.id IN ({_marks(len(held_ids))}) ORDER BY h.id, s.id",
        [*_CHANGED_ROW, *held_ids],
    )
    later: dict[int, list] = {}
    for held_id, email, list_ids, statid, *taker in cursor.fetchall():
        later.setdefault(held_id, []).append((email, parse_list_ids(list_ids), statid, taker))
    taken = []
    for held_id, found in later.items():
        email, list_ids, statid = found[0][:3]
        touched = [(listid, taker) for *_, taker in found for listid in _rows_changed(taker)]
        rows = iem.rows_of_address(cursor, t, email)
        active = {row[1]: row[0] for row in rows if not row[2] and not row[3]}
        ids = {row[1]: row[0] for row in rows}
        lands = min((listid for listid in list_ids if listid in active or listid in dict(touched)), default=None)
        takers = [taker for listid, taker in touched if listid == lands]
        if lands is None or not takers or _slot_was_taken_before(cursor, t, ids[lands], statid, lands, takers):
            continue
        for taker in takers:
            sid, source_file, source_line, category, time_logged, record_type, decision, _, feedback, \
                s_statid = taker[:10]
            how = ("unsubscribed" if record_type == "f" else
                   "slot" if decision == "soft" and s_statid == statid else "applied")
            taken.append(SlotTaken(held_id, email, lands, statid, sid, source_file, source_line, category,
                                   time_logged, how, feedback))
    return taken


def _rows_changed(taker: list) -> list[int]:
    """The listids of the rows a later ledger row changed: a complaint's unsubscribed rows, a bounce's row."""
    record_type, listid, effects = taker[5], taker[10], taker[11]
    if record_type == "f":
        return [row[1] for row in (from_json(effects) or {}).get("unsubscribed", [])]
    return [listid] if listid is not None else []


def _slot_was_taken_before(cursor: Cursor, t: Tables, subscriberid: int, statid: int, listid: int,
                           takers: list) -> bool:
    """Whether the row had a bounce row of the held record's campaign that no later record wrote (the held record
    is then `already_bounced` with or without the guard, and changes nothing)."""
    written = sum(1 for taker in takers if taker[5] != "f" and taker[6] in ("hard", "soft") and taker[9] == statid)
    rows = [b for b in iem.bounce_rows_of(cursor, t, [subscriberid]) if b[2] == statid and b[3] == listid]
    return len(rows) > written
