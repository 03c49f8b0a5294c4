"""The one way to the database: `Database.transaction()` under a failure policy named where it is chosen.

    database = Database(settings.mysql, Tables(settings.table_prefix), ONE_SHOT)
    with database.transaction() as session:
        ledger.history(session.cursor, session.tables, address)

Two policies. ONE_SHOT, for an operator's command: the first failure is fatal
(FatalError naming the URL, password masked, and the setting to check), and a
server that does not answer is found out within CONNECT_SECONDS, not after
PyMySQL's minute. WaitItOut, for work that must get done (a worker's batch, a
release, an undo): transient failures (store/db.py translate) are retried with
tenacity's backoff, each wait logged, bounded by `give_up_after` (then GaveUp)
and cut short by a stop request (common/shutdown.py's event, then
StopRequested). Every PyMySQL connection of the product is made here or in
db.connect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay, stop_never
from tenacity.wait import wait_exponential, wait_random

from ..common import metrics
from ..common.config import MySQLTarget
from ..common.errors import CommittedElsewhere, FatalError, GaveUp, StopRequested, TransientError
from .db import DENIED, Connection, Cursor, Tables, bound_io, connect, error_number, setting_to_check, translate

log = logging.getLogger("pmtabounce.database")

T = TypeVar("T")

CONNECT_SECONDS = 5.0  # a one-shot command's first connection: refused or silent, it is said within this
STATEMENT_SECONDS = 60.0  # one statement's answer (PyMySQL's read timeout): a silent server mid-run
PROBE_SECONDS = 1.0  # how often a retry pause checks whether the database is back


@dataclass(frozen=True)
class Session:
    """One transaction's handle: the cursor to run statements on and the table names to run them against."""

    cursor: Cursor
    tables: Tables


__all__ = ["CONNECT_SECONDS", "ONE_SHOT", "Cursor", "Database", "OneShot", "Session", "WaitItOut"]


@dataclass(frozen=True)
class OneShot:
    """An operator's command: the first failure is fatal, named with the setting to check.

    `connect_seconds` bounds reaching the server (a refused port or a silent one);
    `statement_seconds` bounds each statement's answer afterwards (a mid-run outage)."""

    connect_seconds: float = CONNECT_SECONDS
    statement_seconds: float = STATEMENT_SECONDS
    hint: str = ""  # added to every fatal message: what the command needs (`prune needs DELETE on …`)
    denied_hint: str = ""  # added when the server denied a statement (1142, 1143): the grants to apply


ONE_SHOT = OneShot()


@dataclass(frozen=True)
class WaitItOut:
    """Work that must get done: transient failures are retried with backoff (each wait logged), for ever or
    until `give_up_after` seconds (then GaveUp), and a wait ends early on `stop` (then StopRequested).

    `reach_at_once`: a database never reached yet is fatal at once, as ONE_SHOT (an operator's command that
    would otherwise wait in silence for a wrong URL); once reached, an outage is waited out.
    `sleep`: the pause between tries (the worker's keeps its AMQP connection alive meanwhile); by default
    it waits on `stop`. Each pause is cut short once the database answers a probe (every PROBE_SECONDS)."""

    max_wait: float = 30.0
    give_up_after: float | None = None
    stop: threading.Event | None = None
    sleep: Callable[[float], None] | None = None
    reach_at_once: bool = False
    connect_seconds: float = 10.0
    statement_seconds: float = STATEMENT_SECONDS
    denied_hint: str = ""  # added when the server denied a statement (1142, 1143): the grants to apply


Policy = OneShot | WaitItOut


class Database:
    """The connection of one thread to one IEM database, and the failure policy every transaction runs under.

    `transaction()` is one attempt; `run(work)` is `work(session)` in a transaction under the policy
    (retried as a whole when it waits out). Not shared between threads."""

    def __init__(self, target: MySQLTarget, tables: Tables, policy: Policy = ONE_SHOT, *,
                 log: logging.Logger = log) -> None:
        self.target = target
        self.log = log  # retries and recoveries are said in the caller's logger (pmtabounce.worker, .undo)
        self.tables = tables
        self.policy = policy
        self.connections = 0  # connections made so far: what is cached per connection is read again on a new one
        self._connection: Connection | None = None
        self._deadline: float | None = None  # time.monotonic() when the run in hand gives up
        self._retrying: Retrying | None = None
        if isinstance(policy, WaitItOut):
            self._retrying = Retrying(
                retry=retry_if_exception_type(TransientError),
                wait=_within(policy.give_up_after,
                             wait_exponential(multiplier=0.1, max=policy.max_wait) + wait_random(0, 0.5)),
                stop=stop_after_delay(policy.give_up_after) if policy.give_up_after else stop_never,
                sleep=self._wait_for_database,
                before_sleep=self._before_retry,
                reraise=True,
            )

    def describe(self) -> str:
        """The URL without its password, for messages."""
        return self.target.safe_url()

    @contextmanager
    def transaction(self, *, commit: bool = True) -> Iterator[Session]:
        """One transaction: yields a Session, then commits (or rolls back when not `commit`: a dry run, a read).

        A failure rolls back and is raised as one of our kinds (db.translate): under ONE_SHOT every
        database failure as a FatalError naming the URL and the setting to check; otherwise a fatal one or
        one met before any connection as a FatalError with that hint, a transient one (the connection
        closed, the next attempt connects again) as TransientError. An interruption (KeyboardInterrupt,
        shutdown.CallAbandoned) closes the connection without waiting on the server."""
        connection = None
        try:
            connection = self._connect()
            with connection.cursor() as cursor:
                yield Session(cursor, self.tables)
            if commit:
                connection.commit()
            else:
                connection.rollback()
        except BaseException as exc:
            if not isinstance(exc, Exception):  # interrupted: closing rolls back, without waiting on a silent server
                self.close()
                raise
            self._rollback()
            error = self._translated(exc, reached=connection is not None)
            if error is exc:
                raise
            raise error from exc

    def run(self, work: Callable[[Session], T], *, commit: bool = True) -> T:
        """`work(session)` in one transaction under the policy; its result.

        Raises FatalError; under WaitItOut also GaveUp (after `give_up_after`, with the seconds spent) and
        StopRequested (a stop request during a wait); whatever `work` raises that is not a database error."""
        if self._retrying is None:
            return self._attempt(work, commit)
        policy = self.policy
        assert isinstance(policy, WaitItOut)
        started = time.monotonic()
        if policy.give_up_after is not None:
            self._deadline = started + policy.give_up_after
        try:
            return self._retrying(self._attempt, work, commit)
        except TransientError as exc:
            if policy.give_up_after is None or isinstance(exc, GaveUp):
                raise
            raise GaveUp(str(exc), time.monotonic() - started) from exc
        finally:
            self._deadline = None

    def _attempt(self, work: Callable[[Session], T], commit: bool) -> T:
        with self.transaction(commit=commit) as session:
            return work(session)

    def ping(self) -> bool:
        """Can we reach the database right now? (readiness, and the probe of a retry pause)"""
        try:
            self._connect().ping(reconnect=False)
            return True
        except Exception:
            self.close()
            return False

    def close(self) -> None:
        """Close the connection (the server rolls back what was not committed); the next transaction connects."""
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                pass
            self._connection = None

    def _connect(self) -> Connection:
        policy = self.policy
        left = None if self._deadline is None else max(self._deadline - time.monotonic(), 0.1)
        if self._connection is None:
            if self.connections == 0 and (isinstance(policy, OneShot) or policy.reach_at_once):
                timeout = read = CONNECT_SECONDS if isinstance(policy, WaitItOut) else policy.connect_seconds
            else:
                timeout = policy.connect_seconds if left is None else min(left, policy.connect_seconds)
                read = policy.statement_seconds if left is None else left
            self._connection = connect(self.target, timeout=timeout, read_timeout=read)
            self.connections += 1
            bound_io(self._connection, policy.statement_seconds if left is None else left)
        elif left is not None:
            bound_io(self._connection, left)
        return self._connection

    def _rollback(self) -> None:
        if self._connection is not None:
            try:
                self._connection.rollback()
            except Exception:  # the connection is already gone: forget it
                self.close()

    def _translated(self, exc: Exception, *, reached: bool) -> BaseException:
        """`exc` as one of our kinds, with the setting to check when an operator must act."""
        error = translate(exc)
        if error is exc:
            return exc
        unreached = not reached and self.connections == 0
        one_shot = isinstance(self.policy, OneShot) or (unreached and self.policy.reach_at_once)
        if isinstance(error, TransientError):
            self.close()
            if not one_shot:
                return error
        elif not (one_shot or not reached or isinstance(error, FatalError)):
            return error  # refused data (PermanentError): the caller isolates the record
        # No record can stop a connection being made: that, like a missing table, is the settings' fault.
        hint = setting_to_check(exc, self.target, self.tables.prefix)
        if self.policy.denied_hint and error_number(exc) in DENIED:
            hint += f"; {self.policy.denied_hint}"
        extra = self.policy.hint if isinstance(self.policy, OneShot) and self.policy.hint else ""
        where = "" if self.describe() in hint else f" at {self.describe()}"
        return FatalError(f"{error}{where} ({hint}{'; ' + extra if extra else ''})")

    def _wait_for_database(self, seconds: float) -> None:
        """The pause before the next try, cut short once the database answers a probe, or by a stop request.

        After a long outage the backoff has grown to max_wait; a probe every PROBE_SECONDS (a connect and
        a ping, not the work) resumes within about that once it is back."""
        policy = self.policy
        assert isinstance(policy, WaitItOut)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if policy.sleep is not None:
                policy.sleep(min(left, PROBE_SECONDS))
            elif policy.stop is not None and policy.stop.wait(min(left, PROBE_SECONDS)):
                raise StopRequested("stopped while waiting for the database")
            elif policy.stop is None:
                time.sleep(min(left, PROBE_SECONDS))
            if policy.stop is not None and policy.stop.is_set():
                raise StopRequested("stopped while waiting for the database")
            if deadline - time.monotonic() > 0 and self.ping():
                self.log.info("the database answers again; retrying now instead of in %.1f s",
                         deadline - time.monotonic())
                return

    def _before_retry(self, state: RetryCallState) -> None:
        metrics.RETRIES.labels("database").inc()
        error = state.outcome.exception() if state.outcome else None
        fields = {"event": "retry", "retry_attempt": state.attempt_number, "error_class": type(error).__name__}
        if isinstance(error, CommittedElsewhere):
            self.log.info("another worker committed the same record first; applying the batch again (%s)",
                     error, extra=fields)
            return
        self.log.warning(
            "database not available (%s); trying again in %.1f s (attempt %d)",
            error, state.next_action.sleep if state.next_action else 0, state.attempt_number, extra=fields,
        )


def _within(limit: float | None, wait: Callable[[RetryCallState], float]) -> Callable[[RetryCallState], float]:
    """tenacity wait: `wait`, but never sleeping past `limit` seconds since the first attempt, so
    `--give-up-after S` ends within S plus one attempt, not S plus a backoff of up to max_wait."""
    if limit is None:
        return wait

    def bounded(state: RetryCallState) -> float:
        return max(0.0, min(wait(state), limit - (state.seconds_since_start or 0.0)))

    return bounded
