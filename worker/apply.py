"""Apply a batch of bounces and complaints to IEM in one transaction (read, walk, write), isolating bad records."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..common import metrics
from ..common.complaint import ComplaintRecord
from ..common.config import MySQLTarget
from ..common.errors import PermanentError
from ..common.guard import GuardBatch, GuardSettings, domain_of, hard_domains
from ..common.policy import Policy
from ..common.record import BounceRecord
from ..store import guard_store, iem, ledger
from ..store.database import Cursor, Database, OneShot, Session, WaitItOut
from ..store.db import Tables, catch_up, writes_behind
from ..store.events import CallReads, Events
from ..store.rows import Candidate, LinkedRow, Record
from .plan import BatchReads, Outcome, Plan, plan_batch

log = logging.getLogger("pmtabounce.worker")

GAUGES_EVERY = 10.0  # seconds: the guard's gauges are read again at most this often (and at every trip)


class GuardMoved(Exception):
    """Another worker's commit changed what the domain guard decides for this batch: walk it again, rows locked."""


@dataclass(frozen=True)
class BatchTiming:
    """Where one committed batch's time went, in seconds."""

    records: int
    read: float  # ledger lookup, locked subscriber rows, bounce rows, campaign tables
    write: float  # the batch's own rows: ledger, bounce rows, subscribers, unsubscribe rows
    shared: float  # from the first shared counter update to the end of the commit

    @property
    def total(self) -> float:
        return self.read + self.write + self.shared

    @property
    def serial_fraction(self) -> float:
        """Share of the batch spent holding row locks that every other batch needs (Amdahl's serial part)."""
        return self.shared / self.total if self.total > 0 else 0.0


@dataclass
class BatchResult:
    outcomes: list[Outcome] = field(default_factory=list)
    failed: list[tuple[Record, str]] = field(default_factory=list)  # (record, reason)


# ReadsAhead's connection: a batch's reads take milliseconds; a server that takes seconds is left to the batches.
AHEAD_POLICY = OneShot(connect_seconds=2.0, statement_seconds=5.0)
AHEAD_PAUSE = 30.0  # seconds without reading ahead after a read failed
AHEAD_SECONDS = 2.0  # an Ahead older than this is not used: the batch reads for itself
AHEAD_KEPT = 8  # committed batches remembered for reads made ahead (process's reader is at most 3 batches ahead)


@dataclass(frozen=True)
class Ahead:
    """What one batch reads without locks, read before its transaction by `process`'s reader thread on a
    connection of its own (ReadsAhead), while the batches before it were in the database (issue 20).

    `known`: the records' fingerprints already in the ledger; `candidates`: the active rows of the bounces'
    addresses on their lists (iem.active_subscribers); `stats_tables`: the campaigns' tables (statid ->
    'autoresponders' or 'newsletters'); `committed`: BatchApplier.committed when the reading began. The
    batch's transaction adds to `known` what the batches committed since wrote to the ledger, locks the
    rows found and keeps those still active (iem.lock_active, as it does with its own lookup), and reads
    everything else itself, locked. It serves only the batch of exactly `fingerprints`, only within
    AHEAD_SECONDS of its reading, and only its first attempt: a retried batch reads everything again."""

    fingerprints: tuple[str, ...]
    committed: int
    known: frozenset[str]
    candidates: tuple[Candidate, ...]
    stats_tables: Mapping[int, str]
    read_at: float  # time.monotonic() when the reading began


class BatchApplier:
    """Applies batches of records through one Database (one connection, one thread): a worker's or a run's
    batches (`apply`), and `guard release`'s held records (`release`)."""

    def __init__(
        self,
        target: MySQLTarget,
        tables: Tables,
        policy: Policy,
        *,
        retry_max_wait: float = 30.0,
        give_up_after: float | None = None,
        sleep: Callable[[float], None] | None = None,
        guard: GuardSettings | None = None,
        database: Database | None = None,
        events: Events | None = None,
    ) -> None:
        """`database`: the one to apply through (guard release shares its own); by default one that waits out
        an outage (store/database.py WaitItOut), for ever or `give_up_after` seconds, pausing with `sleep`."""
        self.target = target
        self.events = events  # the outbox rows of each batch (docs/events.md); None writes none
        self.tables = tables
        self.policy = policy
        self.guard = guard if guard is not None else GuardSettings()
        self.database = database or Database(target, tables, WaitItOut(
            max_wait=retry_max_wait, give_up_after=give_up_after, sleep=sleep), log=log)
        self._guard_totals: tuple[int, int] | None = None  # (tripped domains, held records), for the gauges
        self._guard_totals_read = float("-inf")
        self.last_timing: BatchTiming | None = None
        self._lookups: tuple[int, iem.Lookups] | None = None  # (connection number, what its first batch found)
        self._planned = self._hot = 0.0  # perf_counter marks of the last transaction's phases
        self.committed = 0  # transactions committed (read by process's reader thread: see Ahead)
        self._recent: deque[tuple[int, frozenset[str]]] = deque(maxlen=AHEAD_KEPT)  # (number, new fingerprints)
        self.ahead_used = self.ahead_refused = 0  # batches that took an Ahead, and that had one but could not

    def apply(self, records: Sequence[Record], ahead: Ahead | None = None) -> BatchResult:
        """All records in one transaction; a record the database refuses is isolated, the rest commit.
        `ahead`: what `process`'s reader read for exactly these records (see Ahead), or None.

        Transient failures are retried (forever unless `give_up_after`: then GaveUp); a FatalError propagates.
        """
        if ahead is not None and not self._can_use(ahead, records):
            self.ahead_refused += 1
            ahead = None
        return self._isolating(functools.partial(self._apply_once, ahead=ahead), records)

    def _can_use(self, ahead: Ahead, records: Sequence[Record]) -> bool:
        """The Ahead was read for these records, recently, and every batch committed since is remembered."""
        return (ahead.fingerprints == tuple(r.fingerprint for r in records)
                and time.monotonic() - ahead.read_at <= AHEAD_SECONDS
                and self.committed - ahead.committed <= len(self._recent))

    def _known_with(self, ahead: Ahead, records: Sequence[Record]) -> set[str]:
        """`ahead.known` and what the batches committed since it was read wrote to the ledger, of these records."""
        since = set().union(*(new for number, new in self._recent if number > ahead.committed))
        return {r.fingerprint for r in records if r.fingerprint in ahead.known or r.fingerprint in since}

    def release(self, records: Sequence[Record], run: int) -> BatchResult:
        """`guard release` (audit run `run`): held records applied as if new, in one transaction, their ledger
        rows updated from `held` to their real outcome and the run, their domains' held counts lowered; the guard
        is not asked again."""
        return self._isolating(functools.partial(self._release_once, run=run), records)

    def _isolating(self, attempt: Callable[[Sequence[Record]], list[Outcome]],
                   records: Sequence[Record]) -> BatchResult:
        """`attempt(records)`; when the database refuses the batch, each record alone, to find the bad ones."""
        if not records:
            return BatchResult()
        try:
            return BatchResult(attempt(records))
        except PermanentError as exc:
            if len(records) == 1:
                return BatchResult(failed=[(records[0], str(exc))])
        log.warning("a batch of %d records was refused; applying them one by one to find the bad ones", len(records))
        result = BatchResult()
        for record in records:
            single = self._isolating(attempt, [record])
            result.outcomes += single.outcomes
            result.failed += single.failed
        return result

    def _apply_once(self, records: Sequence[Record], ahead: Ahead | None = None) -> list[Outcome]:
        started = time.perf_counter()
        first = [ahead if ahead is not None and len(records) == len(ahead.fingerprints) else None]

        def attempt(session: Session) -> Plan:
            taken, first[0] = first[0], None  # the first attempt only: a retry reads everything again
            if taken is not None:
                self.ahead_used += 1
            return self._transaction(session, records, lock_guard_first=False, ahead=taken)

        try:
            plan = self.database.run(attempt)
        except GuardMoved:
            metrics.GUARD_REWALKS.inc()
            log.debug("the domain guard's counts moved under this batch; walking it again with them locked")
            plan = self.database.run(lambda session: self._transaction(session, records, lock_guard_first=True))
        self._committed(started, records, plan)
        return plan.outcomes

    def _release_once(self, records: Sequence[Record], run: int) -> list[Outcome]:
        started = time.perf_counter()
        plan = self.database.run(lambda session: self._release_transaction(session, records, run))
        self._committed(started, records, plan)
        return plan.outcomes

    def _committed(self, started: float, records: Sequence[Record], plan: Plan) -> None:
        planned, hot = self._planned, self._hot
        self.committed += 1
        # every record of a committed batch is in the ledger (new, or met again), also when the commit's
        # answer was lost and the retry found them all there
        self._recent.append((self.committed, frozenset(o.record.fingerprint for o in plan.outcomes)))
        self.last_timing = BatchTiming(len(records), planned - started, hot - planned, time.perf_counter() - hot)
        self._observe(self.last_timing, plan.outcomes)
        if plan.guard is not None:
            self._report_guard(plan.guard)

    @staticmethod
    def _observe(timing: BatchTiming, outcomes: Sequence[Outcome]) -> None:
        metrics.BATCH_DURATION.observe(timing.total)
        metrics.BATCH_SIZE.observe(timing.records)
        metrics.LAST_SUCCESS.set(time.time())
        kinds = Counter((o.outcome, "complaint" if isinstance(o.record, ComplaintRecord) else "bounce")
                        for o in outcomes)
        for (outcome, kind), count in kinds.items():  # one labels() lookup per kind, not per record
            metrics.RECORDS_PROCESSED.labels(outcome, kind).inc(count)
        log.debug(
            "batch of %d records: read and locked in %.1f ms, own rows written in %.1f ms, "
            "shared counters held %.1f ms through commit (%.0f%% of the batch)",
            timing.records, timing.read * 1000, timing.write * 1000, timing.shared * 1000,
            100 * timing.serial_fraction,
        )

    def _transaction(self, session: Session, records: Sequence[Record], lock_guard_first: bool,
                     ahead: Ahead | None = None) -> Plan:
        """Read, walk, write: the batch's own rows first, then the rows every batch shares (campaign and list
        counters, the guard's domain rows) last before commit, so their locks are held for the shortest time.
        The guard's rows are locked just before commit unless `lock_guard_first` (after GuardMoved): then the
        walk itself sees the locked counts. `ahead`: reads made before the transaction (see Ahead).
        Sets `_planned` and `_hot` (perf_counter marks) for BatchTiming."""
        cursor, t = session.cursor, session.tables
        known = ledger.known(cursor, t, records) if ahead is None else self._known_with(ahead, records)
        reads = self._read(cursor, records, known, ahead)
        guard = self._guard_states(cursor, records, reads, lock=lock_guard_first) if self.guard.enabled else None
        plan = self._walk(records, reads, guard)
        self._planned = time.perf_counter()
        # The writes go out without waiting for each answer (db.writes_behind): MariaDB executes one while
        # Python builds the next. IEM's rows first, so that it works on them while the ledger's rows are built.
        with writes_behind(cursor):
            # the events' reads first, while nothing is owed: a read after a write waits for it
            looked_up = self.events.look_up(cursor, plan.new_outcomes) if self.events is not None else None
            self._write_iem_rows(cursor, plan)
            ledger.record(cursor, t, plan.new_outcomes)
            self._write_records(cursor, plan, looked_up)
            if guard is not None and guard.added and not lock_guard_first:
                # stands_with needs only the batch's own windows; a re-walk needs the 7 days before them.
                locked = self._guard_states(cursor, records, reads, lock=True, history=False)
                if not guard.stands_with(locked.states):
                    locked = self._guard_states(cursor, records, reads, lock=True)
                    rewalked = self._walk(records, reads, locked).guard
                    if rewalked is None or not rewalked.same_decisions(guard):
                        raise GuardMoved()
                    plan.guard = guard = rewalked
            catch_up(cursor)  # the own rows are written: the shared rows' locks are taken from here on
            self._hot = time.perf_counter()
            self._write_shared_counters(cursor, plan)
            if guard is not None and guard.added:
                guard_store.write(cursor, t, guard, int(time.time()))
                if self.events is not None and guard.trips:
                    self.events.for_trips(cursor, guard.trips.values())
                if guard.trips or time.monotonic() - self._guard_totals_read > GAUGES_EVERY:
                    self._guard_totals = guard_store.totals(cursor, t)
                    self._guard_totals_read = time.monotonic()
        return plan

    def _release_transaction(self, session: Session, records: Sequence[Record], run: int) -> Plan:
        """Held records, read and walked as new (their ledger rows say `held`), written as a batch's are."""
        cursor, t = session.cursor, session.tables
        plan = self._walk(records, self._read(cursor, records, set()), None)
        self._planned = time.perf_counter()
        guard_store.settle(cursor, t, plan.new_outcomes, run)
        released = Counter(domain_of(o.record.rcpt) for o in plan.new_outcomes)
        guard_store.add_held(cursor, t, {domain: -count for domain, count in released.items()})
        self._write_own_rows(cursor, plan)
        self._hot = time.perf_counter()
        self._write_shared_counters(cursor, plan)
        return plan

    def _read(self, cursor: Cursor, records: Sequence[Record], known: set[str],
              ahead: Ahead | None = None) -> BatchReads:
        """Read, locked, every row the batch's records may touch.
        `known`: the records' fingerprints already in the ledger (they change nothing); `ahead`: the bounces'
        rows found and the campaigns' tables read before the transaction (see Ahead), or None."""
        t = self.tables
        fresh = [r for r in records if r.fingerprint not in known]
        bounces = [r for r in fresh if isinstance(r, BounceRecord) and r.list_ids]
        complaints = [
            r for r in fresh if isinstance(r, ComplaintRecord) and self.policy.complaint_acts(r.feedback_type)
        ]
        lookups = self._lookups_of(cursor)
        emails, list_ids = {r.rcpt for r in bounces}, {i for r in bounces for i in r.list_ids}
        if ahead is None:
            candidates = iem.find_active_subscribers(cursor, t, sorted(emails), list_ids, lookups)
        else:  # found for every bounce of the batch: the rows of those not known, as the lookup would find them
            candidates = iem.lock_active(cursor, t, [c for c in ahead.candidates
                                                      if c.email in emails and c.listid in list_ids])
        linked, complaint_rows = read_complaint_rows(cursor, t, self.policy, complaints)
        candidates += complaint_rows
        requests = iem.pending_requests(
            cursor, t, [c.subscriberid for c in complaint_rows] + [row.subscriberid for row in linked]
        )
        bounce_rows = iem.existing_bounces(cursor, t, (c.subscriberid for c in candidates), lookups)
        stats = iem.stats_tables(cursor, t, statids_of(bounces, complaints)) if ahead is None else ahead.stats_tables
        return BatchReads(known, candidates, bounce_rows, stats, linked, requests)

    def _lookups_of(self, cursor: Cursor) -> iem.Lookups:
        """The index hints, found on each connection's first batch (a reconnect may follow an ALTER that
        renamed an index)."""
        if self._lookups is None or self._lookups[0] != self.database.connections:
            self._lookups = (self.database.connections, iem.find_lookups(cursor, self.tables))
            if self.events is not None:
                self.events.forget()  # a new connection may reach an upgraded IEM
        return self._lookups[1]

    def _guard_states(self, cursor: Cursor, records: Sequence[Record], reads: BatchReads, *,
                      lock: bool, history: bool = True) -> GuardBatch:
        hard = [r for r in records if isinstance(r, BounceRecord) and r.fingerprint not in reads.known
                and self.policy.classify(r.category) == "hard"]
        domains = hard_domains(hard, self.policy.classify)
        if not domains:
            return GuardBatch(self.guard, {})
        if lock:
            guard_store.lock_domains(cursor, self.tables, domains)
        windows = [self.guard.window_of(r.time_logged) for r in hard]
        return GuardBatch(self.guard, guard_store.read_states(cursor, self.tables, domains, min(windows), max(windows),
                                                              history=history))

    def _walk(self, records: Sequence[Record], reads: BatchReads, guard: GuardBatch | None) -> Plan:
        return plan_batch(records, policy=self.policy, reads=reads, guard=guard)

    def _write_own_rows(self, cursor: Cursor, plan: Plan) -> None:
        """The rows no other batch needs: IEM's (`_write_iem_rows`), then our own (`_write_records`)."""
        self._write_iem_rows(cursor, plan)
        self._write_records(cursor, plan)

    def _write_iem_rows(self, cursor: Cursor, plan: Plan) -> None:
        """IEM's rows no other batch needs: bounce rows, the subscriber rows this batch locked and their
        unsubscribe rows."""
        t = self.tables
        iem.insert_bounces(cursor, t, plan.bounce_rows)
        iem.disable_subscribers(cursor, t, plan.disable)
        iem.unsubscribe_subscribers(cursor, t, plan.unsubscribe)
        iem.replace_unsubscribe_rows(cursor, t, plan.unsubscribe_rows)

    def _write_records(self, cursor: Cursor, plan: Plan, looked_up: CallReads | None = None) -> None:
        """The repeats met, on their ledger rows; the batch's events, in the outbox (`looked_up`: what their
        webhook calls read, read before the writes; None: read here)."""
        t = self.tables
        times = {o.record.fingerprint: o.record.time_logged for o in plan.outcomes if o.outcome == "duplicate"}
        ledger.count_repeats(cursor, t, plan.repeats, times)
        if self.events is not None:
            self.events.for_outcomes(cursor, plan.new_outcomes, looked_up)

    def _write_shared_counters(self, cursor: Cursor, plan: Plan) -> None:
        """The counter rows nearly every batch updates (campaign statistics, list counts), last before commit:
        their row locks are held until commit, so every other batch waits on them for that long only."""
        t = self.tables
        iem.add_campaign_counts(cursor, t, plan.stats)
        iem.move_list_counts(cursor, t, plan.list_bounces, plan.list_unsubscribes)

    def _report_guard(self, guard: GuardBatch) -> None:
        """After commit: the gauges, and a WARNING per trip naming the undo that reverts its window's start."""
        if self._guard_totals is not None:
            metrics.GUARD_TRIPPED_DOMAINS.set(self._guard_totals[0])
            metrics.GUARD_HELD.set(self._guard_totals[1])
        for trip in guard.trips.values():
            metrics.GUARD_TRIPS.inc()
            log.warning("%s", trip.message(self.guard, self.policy.hard),
                        extra={"event": "guard_trip", "domain": trip.domain, "window_start": trip.window_start,
                               "count": trip.count, "threshold": trip.threshold})

    def close(self) -> None:
        self.database.close()

    def check_tables(self) -> None:
        """At start: connect, waiting out an outage as a batch would, and check that IEM's tables exist
        under the prefix. Raises FatalError (wrong prefix, login or grants), or GaveUp once
        `give_up_after` has passed."""
        self.database.run(lambda s: iem.require_tables(s.cursor, s.tables, self.target.safe_url()), commit=False)

    def ledger_extent(self) -> ledger.Extent | None:
        """The ledger's estimated size and oldest row, for the metrics; None if the database does not answer."""
        try:
            with self.database.transaction() as session:
                return ledger.extent(session.cursor, session.tables)
        except Exception:  # a metric is not worth an error: the next batch reports a real outage
            self.close()
            return None

    def read_guard_gauges(self, *, every: float = GAUGES_EVERY) -> None:
        """Set the guard's gauges (tripped domains, held records) from its tables, at most once per `every`
        seconds, whatever the batches contain: a hand trip, a release or a worker started after a trip shows
        within that. A database error is left for the next batch or ping to report (the gauges keep their
        last value)."""
        if time.monotonic() - self._guard_totals_read < every:
            return
        try:
            with self.database.transaction(commit=False) as session:
                totals = guard_store.totals(session.cursor, session.tables)
        except Exception:
            self.close()
            return
        self._guard_totals, self._guard_totals_read = totals, time.monotonic()
        metrics.GUARD_TRIPPED_DOMAINS.set(totals[0])
        metrics.GUARD_HELD.set(totals[1])

    def ping(self) -> bool:
        """Readiness: can we reach the database right now?"""
        return self.database.ping()


class ReadsAhead:
    """`process`'s reader thread reads a batch's Ahead on a connection of its own, while the batches before
    it are in the database: the work of the batch's transaction that needs no lock (issue 20). One read at
    a time (a file's reader thread that outlives its file waits for the next file's); `close` when done."""

    def __init__(self, applier: BatchApplier) -> None:
        self.applier = applier
        self.database = Database(applier.target, applier.tables, AHEAD_POLICY, log=log)
        self._lookups: tuple[int, iem.Lookups] | None = None  # (connection number, the index hints found on it)
        self._lock = threading.Lock()
        self.paused_until = 0.0  # time.monotonic(): after a failed read, batches read for themselves until then

    def read(self, records: Sequence[Record]) -> Ahead | None:
        """The Ahead of the batch of exactly `records`; None when a read fails (the database did not answer
        within AHEAD_POLICY's bounds, or refused) and for AHEAD_PAUSE seconds after: the batches then read for
        themselves, under their own retry policy, and a slow database does not hold the reader thread up."""
        with self._lock:
            if time.monotonic() < self.paused_until:
                return None
            committed = self.applier.committed  # before reading: a batch committing meanwhile counts as after
            try:
                with self.database.transaction(commit=False) as session:
                    return self._read(session, records, committed)
            except Exception as exc:
                self.paused_until = time.monotonic() + AHEAD_PAUSE
                cause = exc.__cause__ or exc  # the server's own words, not the one-shot hint about the URL
                log.info("reading the next batches ahead failed (%s); for %g s each batch reads for itself: "
                         "slower, as exact", cause, AHEAD_PAUSE)
                self.database.close()
                return None

    def _read(self, session: Session, records: Sequence[Record], committed: int) -> Ahead:
        cursor, t = session.cursor, session.tables
        if self._lookups is None or self._lookups[0] != self.database.connections:
            self._lookups = (self.database.connections, iem.find_lookups(cursor, t))
        bounces = [r for r in records if isinstance(r, BounceRecord) and r.list_ids]
        complaints = [r for r in records if isinstance(r, ComplaintRecord)]
        started = time.monotonic()
        return Ahead(
            tuple(r.fingerprint for r in records), committed, frozenset(ledger.known(cursor, t, records)),
            tuple(iem.active_subscribers(cursor, t, sorted({r.rcpt for r in bounces}),
                                         {i for r in bounces for i in r.list_ids}, self._lookups[1].by_email)),
            iem.stats_tables(cursor, t, statids_of(bounces, complaints)), started,
        )

    def close(self) -> None:
        with self._lock:
            self.database.close()


def statids_of(bounces: Sequence[BounceRecord], complaints: Sequence[ComplaintRecord]) -> list[int]:
    """The campaigns these records count on: a bounce's statid, a complaint's or else its link's."""
    return [r.statid for r in bounces] + [r.statid or (r.link.statid if r.link else 0) for r in complaints]


def read_complaint_rows(
    cursor: Cursor, t: Tables, policy: Policy, complaints: Sequence[ComplaintRecord]
) -> tuple[list[LinkedRow], list[Candidate]]:
    """iem-complaints.md steps 1 and 2, locked: the rows the complaints' links name, then the active rows
    of every complainer's address, on any list (scope `all`) or on the complaints' lists."""
    linked = iem.linked_rows(cursor, t, (r.link.subscriberid for r in complaints if r.link))
    address = {row.subscriberid: row.emailaddress for row in linked if row.emailaddress}
    emails = {r.rcpt for r in complaints if r.rcpt}
    for r in complaints:
        if not r.rcpt and r.link and r.link.subscriberid in address:
            emails.add(address[r.link.subscriberid])
    list_ids = None
    if policy.complaint_scope != "all":
        list_ids = {i for r in complaints for i in (r.list_ids or ((r.link.listid,) if r.link else ())) if i}
    return linked, iem.find_active_subscribers(cursor, t, sorted(emails), list_ids)
