"""Apply a batch of bounces and complaints to IEM in one transaction, with retries and isolation of bad records."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay, stop_never
from tenacity.wait import wait_exponential, wait_random

from ..common import metrics
from ..common.complaint import ComplaintRecord
from ..common.config import MySQLTarget
from ..common.errors import CommittedElsewhere, FatalError, GaveUp, PermanentError, TransientError
from ..common.guard import GuardBatch, GuardSettings, domain_of, hard_domains
from ..common.policy import Policy
from ..common.record import BounceRecord
from ..store import guard_store, iem, ledger
from ..store.db import Connection, Tables, bound_io, connect, setting_to_check, translate
from ..store.events import Events
from ..store.rows import Candidate, LinkedRow, Record
from .plan import Outcome, Plan, plan_batch

log = logging.getLogger("pmtabounce.worker")

PROBE_SECONDS = 1.0  # how often a retry pause checks whether the database is back
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


def _within(limit: float | None, wait: Callable[[RetryCallState], float]) -> Callable[[RetryCallState], float]:
    """tenacity wait: `wait`, but never sleeping past `limit` seconds since the first attempt, so
    `--give-up-after S` ends within S plus one attempt, not S plus a backoff of up to retry_max_wait."""
    if limit is None:
        return wait

    def bounded(state: RetryCallState) -> float:
        return max(0.0, min(wait(state), limit - (state.seconds_since_start or 0.0)))

    return bounded


class BatchApplier:
    """Owns one MySQL connection (one per thread) and applies batches of records through it."""

    def __init__(
        self,
        target: MySQLTarget,
        tables: Tables,
        policy: Policy,
        *,
        retry_max_wait: float = 30.0,
        give_up_after: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        guard: GuardSettings | None = None,
        events: Events | None = None,
    ) -> None:
        self.target = target
        self.events = events  # the outbox rows of each batch (docs/events.md); None writes none
        self.tables = tables
        self.policy = policy
        self.guard = guard if guard is not None else GuardSettings()
        self._guard_totals: tuple[int, int] | None = None  # (tripped domains, held records), for the gauges
        self._guard_totals_read = float("-inf")
        self._connection: Connection | None = None
        self._sleep = sleep
        self.last_timing: BatchTiming | None = None
        self._lookups: iem.Lookups | None = None  # found on a connection's first batch
        self._planned = self._hot = 0.0  # perf_counter marks of the last transaction's phases
        self._give_up_after = give_up_after
        self._deadline: float | None = None  # time.monotonic() when the call in hand gives up
        self._retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            wait=_within(give_up_after, wait_exponential(multiplier=0.1, max=retry_max_wait) + wait_random(0, 0.5)),
            stop=stop_after_delay(give_up_after) if give_up_after else stop_never,
            sleep=self._wait_for_database,
            before_sleep=self._before_retry,
            reraise=True,
        )

    def apply(self, records: Sequence[Record], *, release: int | None = None) -> BatchResult:
        """All records in one transaction; a record the database refuses is isolated, the rest commit.

        `release`: the audit run of a `guard release` whose held records these are: applied as if new, their
        ledger rows updated from `held` to their real outcome and the run, the guard not asked again.
        Transient failures are retried (forever unless `give_up_after`); a FatalError propagates.
        """
        if not records:
            return BatchResult()
        try:
            return BatchResult(self._retry(self._apply_once, records, release))
        except PermanentError as exc:
            if len(records) == 1:
                return BatchResult(failed=[(records[0], str(exc))])
        log.warning("a batch of %d records was refused; applying them one by one to find the bad ones", len(records))
        result = BatchResult()
        for record in records:
            single = self.apply([record], release=release)
            result.outcomes += single.outcomes
            result.failed += single.failed
        return result

    def _apply_once(self, records: Sequence[Record], release: int | None = None) -> list[Outcome]:
        started = time.perf_counter()
        connection = None
        try:
            connection = self._connect()
            try:
                plan = self._transaction(connection, records, release, lock_guard_first=False)
            except GuardMoved:
                metrics.GUARD_REWALKS.inc()
                log.debug("the domain guard's counts moved under this batch; walking it again with them locked")
                connection.rollback()
                plan = self._transaction(connection, records, release, lock_guard_first=True)
            connection.commit()
        except BaseException as exc:
            if not isinstance(exc, Exception):  # interrupted: closing rolls back, without waiting on a silent server
                self.close()
                raise
            self._rollback()
            error = translate(exc)
            if isinstance(error, TransientError):
                self.close()
            elif error is not exc and (connection is None or isinstance(error, FatalError)):
                # No record can stop a connection being made: that, like a missing table, is the settings' fault.
                error = FatalError(f"{error} ({setting_to_check(exc, self.target, self.tables.prefix)})")
            if error is exc:
                raise
            raise error from exc
        planned, hot = self._planned, self._hot
        self.last_timing = BatchTiming(len(records), planned - started, hot - planned, time.perf_counter() - hot)
        self._observe(self.last_timing, plan.outcomes)
        if plan.guard is not None:
            self._report_guard(plan.guard)
        return plan.outcomes

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

    def _transaction(self, connection, records, release: int | None, lock_guard_first: bool) -> Plan:
        """Read, walk, write: the batch's own rows first, then the rows every batch shares (campaign and list
        counters, the guard's domain rows) last before commit, so their locks are held for the shortest time.
        The guard's rows are locked just before commit unless `lock_guard_first` (after GuardMoved): then the
        walk itself sees the locked counts. Sets `_planned` and `_hot` (perf_counter marks) for BatchTiming."""
        t = self.tables
        with connection.cursor() as cursor:
            reads = self._read(cursor, records, release)
            guard = None if release else self._guard_batch(cursor, records, reads, lock=lock_guard_first)
            plan = self._walk(records, reads, guard)
            self._planned = time.perf_counter()
            self._write_own_rows(cursor, plan, release)
            if guard is None or not guard.added:
                self._hot = time.perf_counter()
                self._write_shared_counters(cursor, plan)
                return plan
            if not lock_guard_first:
                # stands_with needs only the batch's own windows; a re-walk needs the 7 days before them.
                locked = self._guard_states(cursor, records, reads, lock=True, history=False)
                if not guard.stands_with(locked.states):
                    locked = self._guard_states(cursor, records, reads, lock=True)
                    rewalked = self._walk(records, reads, locked).guard
                    if rewalked is None or not rewalked.same_decisions(guard):
                        raise GuardMoved()
                    plan.guard = guard = rewalked
            self._hot = time.perf_counter()
            self._write_shared_counters(cursor, plan)
            guard_store.write(cursor, t, guard, int(time.time()))
            if self.events is not None and guard.trips:
                self.events.for_trips(cursor, guard.trips.values())
            if guard.trips or time.monotonic() - self._guard_totals_read > GAUGES_EVERY:
                self._guard_totals = guard_store.totals(cursor, t)
                self._guard_totals_read = time.monotonic()
        return plan

    def _read(self, cursor, records: Sequence[Record], release: int | None) -> dict:
        """Read, locked, every row the batch's records may touch: plan_batch's keyword arguments."""
        t = self.tables
        known = ledger.known(cursor, t, records)
        if release:  # their ledger rows say `held`; these are the records to apply now
            known -= {r.fingerprint for r in records}
        fresh = [r for r in records if r.fingerprint not in known]
        bounces = [r for r in fresh if isinstance(r, BounceRecord) and r.list_ids]
        complaints = [
            r for r in fresh if isinstance(r, ComplaintRecord) and self.policy.complaint_acts(r.feedback_type)
        ]
        if self._lookups is None:
            self._lookups = iem.find_lookups(cursor, t)
        candidates = iem.find_active_subscribers(
            cursor, t, sorted({r.rcpt for r in bounces}), (i for r in bounces for i in r.list_ids), self._lookups
        )
        linked, complaint_rows = read_complaint_rows(cursor, t, self.policy, complaints)
        candidates += complaint_rows
        requests = iem.pending_requests(
            cursor, t, [c.subscriberid for c in complaint_rows] + [row.subscriberid for row in linked]
        )
        bounce_rows = iem.existing_bounces(cursor, t, (c.subscriberid for c in candidates), self._lookups)
        statids = [r.statid for r in bounces] + [r.statid or (r.link.statid if r.link else 0) for r in complaints]
        return {"known": known, "candidates": candidates, "bounce_rows": bounce_rows,
                "stats_tables": iem.stats_tables(cursor, t, statids), "linked": linked, "requests": requests}

    def _guard_batch(self, cursor, records, reads: dict, *, lock: bool) -> GuardBatch | None:
        """The guard's view for this batch's walk; None when PMTABOUNCE_GUARD=off."""
        return self._guard_states(cursor, records, reads, lock=lock) if self.guard.enabled else None

    def _guard_states(self, cursor, records, reads: dict, *, lock: bool, history: bool = True) -> GuardBatch:
        hard = [r for r in records if isinstance(r, BounceRecord) and r.fingerprint not in reads["known"]
                and self.policy.classify(r.category) == "hard"]
        domains = hard_domains(hard, self.policy.classify)
        if not domains:
            return GuardBatch(self.guard, {})
        if lock:
            guard_store.lock_domains(cursor, self.tables, domains)
        windows = [self.guard.window_of(r.time_logged) for r in hard]
        return GuardBatch(self.guard, guard_store.read_states(cursor, self.tables, domains, min(windows), max(windows),
                                                              history=history))

    def _walk(self, records, reads: dict, guard: GuardBatch | None) -> Plan:
        return plan_batch(records, policy=self.policy, guard=guard, **reads)

    def _write_own_rows(self, cursor, plan: Plan, release: int | None) -> None:
        """Rows no other batch needs: the ledger, bounce rows, the subscriber rows this batch locked and their
        unsubscribe rows."""
        t = self.tables
        if release:
            guard_store.settle(cursor, t, plan.new_outcomes, release)
            released = Counter(domain_of(o.record.rcpt) for o in plan.new_outcomes)
            guard_store.add_held(cursor, t, {domain: -count for domain, count in released.items()})
        else:
            ledger.record(cursor, t, plan.new_outcomes)
        iem.insert_bounces(cursor, t, plan.bounce_rows)
        iem.disable_subscribers(cursor, t, plan.disable)
        iem.unsubscribe_subscribers(cursor, t, plan.unsubscribe)
        iem.replace_unsubscribe_rows(cursor, t, plan.unsubscribe_rows)
        times = {o.record.fingerprint: o.record.time_logged for o in plan.outcomes if o.outcome == "duplicate"}
        ledger.count_repeats(cursor, t, plan.repeats, times)
        if self.events is not None:
            self.events.for_outcomes(cursor, plan.new_outcomes)

    def _write_shared_counters(self, cursor, plan: Plan) -> None:
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

    def _connect(self):
        left = None if self._deadline is None else self._deadline - time.monotonic()
        if self._connection is None and left is not None:
            left = max(left, 0.1)
            self._connection = connect(self.target, timeout=min(left, 10.0), read_timeout=left)
        elif self._connection is None:
            self._connection = connect(self.target)
        elif left is not None:
            bound_io(self._connection, left)
        return self._connection

    def _rollback(self) -> None:
        if self._connection is not None:
            try:
                self._connection.rollback()
            except Exception:  # the connection is already gone; close() below forgets it
                self.close()

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                pass
            self._connection = None
        self._lookups = None  # a reconnect may follow an ALTER that renamed an index
        if self.events is not None:
            self.events.forget()

    def check_tables(self) -> None:
        """At start: connect, waiting out an outage as a batch would, and check that IEM's tables exist
        under the prefix. Raises FatalError (wrong prefix, login or grants), or TransientError once
        `give_up_after` has passed."""
        self._retry(self._check_tables_once)

    def _retry(self, attempt: Callable, *args):
        """`attempt(*args)` under the retry policy. With `give_up_after`, every database call of every
        attempt waits at most the time left (a partitioned server answers nothing, for a minute),
        and giving up raises GaveUp with the seconds really spent."""
        if self._give_up_after is None:
            return self._retrying(attempt, *args)
        started = time.monotonic()
        self._deadline = started + self._give_up_after
        try:
            return self._retrying(attempt, *args)
        except TransientError as exc:
            raise GaveUp(str(exc), time.monotonic() - started) from exc
        finally:
            self._deadline = None

    def _check_tables_once(self) -> None:
        try:
            connection = self._connect()
            with connection.cursor() as cursor:
                iem.require_tables(cursor, self.tables, self.target.safe_url())
            connection.rollback()
        except FatalError:
            raise
        except Exception as exc:
            error = translate(exc)
            if isinstance(error, TransientError):
                self.close()
            elif isinstance(error, FatalError) and error is not exc:
                error = FatalError(f"{error} ({setting_to_check(exc, self.target, self.tables.prefix)})")
            if error is exc:
                raise
            raise error from exc

    def ledger_extent(self) -> ledger.Extent | None:
        """The ledger's estimated size and oldest row, for the metrics; None if the database does not answer."""
        try:
            connection = self._connect()
            with connection.cursor() as cursor:
                found = ledger.extent(cursor, self.tables)
            connection.commit()
            return found
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
            connection = self._connect()
            with connection.cursor() as cursor:
                totals = guard_store.totals(cursor, self.tables)
            connection.rollback()
        except Exception:
            self.close()
            return
        self._guard_totals, self._guard_totals_read = totals, time.monotonic()
        metrics.GUARD_TRIPPED_DOMAINS.set(totals[0])
        metrics.GUARD_HELD.set(totals[1])

    def ping(self) -> bool:
        """Readiness: can we reach the database right now?"""
        try:
            self._connect().ping(reconnect=False)
            return True
        except Exception:
            self.close()
            return False

    def _wait_for_database(self, seconds: float) -> None:
        """The pause before the next try of a batch, cut short once the database answers a probe.

        After a long outage the backoff has grown to PMTABOUNCE_RETRY_MAX_WAIT; a probe every
        PROBE_SECONDS (a connect and a ping, not the batch) resumes within about that once it is back.
        """
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._sleep(min(left, PROBE_SECONDS))
            if deadline - time.monotonic() > 0 and self.ping():
                log.info("the database answers again; retrying now instead of in %.1f s",
                         deadline - time.monotonic())
                return

    def _before_retry(self, state) -> None:
        metrics.RETRIES.labels("database").inc()
        error = state.outcome.exception()
        fields = {"event": "retry", "retry_attempt": state.attempt_number, "error_class": type(error).__name__}
        if isinstance(error, CommittedElsewhere):
            log.info("another worker committed the same record first; applying the batch again (%s)",
                     error, extra=fields)
            return
        log.warning(
            "database not available (%s); trying again in %.1f s (attempt %d)",
            error, state.next_action.sleep if state.next_action else 0, state.attempt_number, extra=fields,
        )


def read_complaint_rows(
    cursor, t: Tables, policy: Policy, complaints: Sequence[ComplaintRecord]
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
