"""The worker's life: batches off the queue, acks after commit, reconnects with backoff,
rides out database outages, and stops cleanly on SIGTERM or SIGINT.

What a message means and what becomes of it is decided in handle.py; the
frames sent to RabbitMQ are in amqp.py. The database is reached through
BatchApplier alone (no MySQL driver here, as no pika there).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from tenacity import Retrying, retry_if_exception_type
from tenacity.wait import wait_exponential, wait_random

from ..common import broker, health, metrics
from ..common.config import Settings
from ..common.errors import FatalError, TransientError
from ..common.guard import GuardSettings
from ..common.instance import instance_name
from ..common.shutdown import GRACE_SECONDS, AbandonableCalls, CallAbandoned, stop_on_signals
from ..store import events
from ..store.db import Tables
from .amqp import Consumer
from .apply import BatchApplier
from .handle import DEAD_LETTER_REASONS, DeadLetterGuard, Handled, handle_batch
from .plan import COMPLAINT_OUTCOMES, OUTCOMES
from .relay import QUIET_SECONDS, Pace, Relay, start_thread

log = logging.getLogger("pmtabounce.worker")

SUMMARY_SECONDS = 10.0
PING_SECONDS = 5.0  # how often an idle worker checks the database, for /readyz
LEDGER_SECONDS = 60.0  # how often the ledger's size and oldest row are read for the metrics
HUNG_SECONDS = 5.0  # a database call silent this long makes /readyz fail (a partition raises nothing)
FINISH_SECONDS = 10.0  # a worker exiting when idle lets its relay send what is due for at most this long
PAUSE_SLICE = 0.25  # a retry pause looks for a stop request this often


class ShutdownRequested(Exception):
    """A stop request arrived during a retry pause: in-flight messages go back unacked."""


def run_worker(settings: Settings, exit_when_idle: float | None = None, relay: bool = True) -> int:
    """Consume until SIGTERM/SIGINT (or `exit_when_idle` seconds with no message); the exit code.
    `relay`: also send the outbox's events from a thread of this process (worker/relay.py)."""
    worker = Worker(settings, exit_when_idle, relay=relay)
    with stop_on_signals(worker.stopping, log=log, then="finishing the batch in hand, then exiting",
                         on_stop=worker.database_calls.stop_requested):
        return worker.run()


class Tally:
    """What the batches came to since the last INFO summary."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.outcomes: Counter = Counter()
        self.dead: Counter = Counter()
        self.batches = 0
        self.since = time.monotonic()

    def add(self, handled: Handled) -> None:
        self.batches += 1
        self.outcomes.update(o.outcome for o in handled.outcomes)
        self.dead.update(d.error for d in handled.dead)

    def report(self, every: float = 0.0) -> None:
        elapsed = time.monotonic() - self.since
        if elapsed < every:
            return
        if self.batches:
            outcomes = ", ".join(f"{name} {count}" for name, count in sorted(self.outcomes.items()))
            dead = sum(self.dead.values())
            log.info(
                "in the last %.0f s: %d records in %d batches (%s); %d dead-lettered",
                elapsed, sum(self.outcomes.values()) + dead, self.batches, outcomes or "none applied", dead,
                extra={"event": "summary", "batches": self.batches, "outcomes": dict(self.outcomes),
                       "dead_lettered": dead},
            )
        self.reset()


class Worker:
    """Consumes the work queue until told to stop; survives broker and database outages on its own."""

    def __init__(self, settings: Settings, exit_when_idle: float | None = None, relay: bool = True) -> None:
        self.settings = settings
        self.relay = relay
        self.relay_stop = threading.Event()
        self.relay_sender: Relay | None = None
        self.pace = Pace()  # what the relay thread gives way to: the batch in hand, bounces flowing
        self.amqp_url = settings.amqp  # a missing URL is a ConfigError now, not after connecting
        self.nodes = broker.Nodes(self.amqp_url, "worker")
        self.topology = settings.topology
        self.exit_when_idle = exit_when_idle
        tables = Tables(settings.table_prefix)
        self.applier = BatchApplier(
            settings.mysql, tables, settings.policy,
            retry_max_wait=settings.retry_max_wait, sleep=self._database_pause,
            guard=GuardSettings.from_settings(settings), events=events.from_settings(settings, tables),
        )
        self.guard = DeadLetterGuard()
        self.name = instance_name()
        self.stopping = threading.Event()
        self.database_calls = AbandonableCalls("the database", log=log)
        self.idle = False
        self.consumer: Consumer | None = None
        self.database_ok = False
        self.database_down = False
        self.broker_down = False
        self.database_checked = 0.0
        self.tally = Tally()
        self.flushed_at = time.perf_counter()
        self.ledger_read = -LEDGER_SECONDS

    def run(self) -> int:
        _series_at_zero()
        server = health.serve(self.settings.metrics_port, self.not_ready, metrics.registry_for("worker"))
        log.info(
            "worker %s consuming %s at %s in batches of up to %d, applying to %s",
            self.name, self.topology.queue, broker.safe_url(self.amqp_url),
            self.settings.batch_size, self.settings.mysql.safe_url(),
        )
        try:
            with self.database_calls.call(), self._said_if_silent():
                self.applier.check_tables()
                self.applier.read_guard_gauges(every=0)
            self._database_answered()
            if self.relay:
                self.relay_sender = start_thread(self.settings, self.relay_stop, self.pace)
            while not (self.stopping.is_set() or self.idle):
                self.consumer = self._connect()
                if self.consumer is not None:
                    self._serve(self.consumer)
            return 0
        except ShutdownRequested:
            log.info("stopped while waiting to retry; unacknowledged messages go back to the queue")
            return 0
        except CallAbandoned:
            log.info("stopped during a database call that did not answer; unacknowledged messages go back "
                     "to the queue")
            return 0
        except FatalError as exc:
            log.critical("worker stops: %s. Unacknowledged messages go back to the queue.", exc,
                         extra={"event": "fatal", "error_class": type(exc).__name__})
            return 1
        finally:
            relay = self.relay_sender
            if self.idle and relay is not None and relay.stopped is None:  # --exit-when-idle: what was held goes
                if not relay.finish(FINISH_SECONDS, self.stopping) and not self.stopping.is_set():
                    log.info("the relay did not send every event due within %.0f s of going idle; they wait in "
                             "the outbox for the next worker or `pmtabounce relay`", FINISH_SECONDS)
            self.relay_stop.set()
            if relay is not None and relay.thread is not None:
                # The relay's call in hand (a webhook, or a database call on a silent server) gets the same grace
                # as the worker's own; a daemon thread left behind loses nothing: its claimed rows are sent again
                # once their lease runs out, and its open transaction is rolled back (at-least-once).
                relay.thread.join(GRACE_SECONDS)
                if relay.thread.is_alive():
                    log.info("the relay's call in hand did not end within %.0f s; its events are sent again later",
                             GRACE_SECONDS)
            self.applier.close()
            self.tally.report()
            if server is not None:
                server.shutdown()

    def not_ready(self) -> str | None:
        """/readyz: None when consuming on an open channel with the database answering lately (and the relay
        thread, when there is one, not ended by a FatalError: events would wait unsent), else why not.

        A database call waiting HUNG_SECONDS or more (a partition: the socket open, nothing answering,
        nothing raised) makes it not ready at once, naming the database, even before RabbitMQ is reached."""
        if self.database_calls.waiting_for() >= HUNG_SECONDS:
            return f"the database at {self.settings.mysql.safe_url()} has not answered a call for {HUNG_SECONDS:g} s"
        consumer = self.consumer
        if consumer is None or not consumer.consuming():
            return f"not consuming {self.topology.queue} (no open RabbitMQ channel)"
        if not self.database_ok:
            return f"the database at {self.settings.mysql.safe_url()} does not answer"
        if self.relay_sender is not None and self.relay_sender.stopped:
            return (f"its relay thread stopped ({self.relay_sender.stopped}); committed events wait in the outbox: "
                    "fix that and restart the worker, or send them with `pmtabounce relay`")
        return None

    def _connect(self) -> Consumer | None:
        """Connect, declare and start consuming, retrying with backoff; None if asked to stop meanwhile."""
        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            wait=wait_exponential(multiplier=0.5, max=self.settings.retry_max_wait) + wait_random(0, 0.5),
            sleep=self._pause,
            before_sleep=self._before_reconnect,
            reraise=True,
        )
        try:
            consumer = retrying(Consumer.open, self.nodes, self.topology, self.settings.batch_size)
        except ShutdownRequested:
            return None
        if self.broker_down:
            log.info("connected to RabbitMQ again; consuming")
            self.broker_down = False
        return consumer

    def _serve(self, consumer: Consumer) -> None:
        """Batches until stopped or idle; a lost connection ends it and run() reconnects."""
        try:
            while not self._should_stop(consumer):
                consumer.wait()
                if consumer.batch_ready():
                    self._flush(consumer)
                self._look_after(consumer)
            consumer.cancel()
            while consumer.received:  # up to two batches were prefetched
                self._flush(consumer)
        except TransientError as exc:  # from the broker: the database's are retried inside the applier
            self.broker_down = True
            self.nodes.lost()
            if self.stopping.is_set():
                log.warning("RabbitMQ connection failed while stopping (%s); messages not yet acknowledged "
                            "go back to the queue", exc)
                return
            metrics.RETRIES.labels("broker").inc()
            log.warning(
                "RabbitMQ connection or channel failed (%s); reconnecting%s. Messages not yet acknowledged "
                "go back to the queue and come again (the ledger makes repeats harmless)", exc,
                ", starting with the next node" if len(self.nodes) > 1 else "",
            )
        finally:
            consumer.close()
            self.consumer = None
            self.pace.quiet()  # no bounce flows through a worker without its consumer: the relay sends

    def _should_stop(self, consumer: Consumer) -> bool:
        if self.stopping.is_set():
            return True
        if self.exit_when_idle is None or consumer.received:
            return False
        if time.monotonic() - consumer.quiet_since >= self.exit_when_idle:
            log.info("no messages for %.0f s: exiting as asked (--exit-when-idle)", self.exit_when_idle)
            self.idle = True
        return self.idle

    def _flush(self, consumer: Consumer) -> None:
        """Apply what was received; dead-letter (confirmed) what cannot be applied; then ack it all."""
        deliveries = consumer.take()
        if not deliveries:
            return
        started = time.perf_counter()
        self.pace.batch_started()
        try:
            with self.database_calls.call():
                handled = handle_batch(deliveries, self.applier, self.guard)
        finally:
            self.pace.batch_ended()
        self._database_answered()
        for dead in handled.dead:
            consumer.dead_letter(dead, self.name)
            metrics.DEAD_LETTERED.labels(dead.error).inc()
            log.error("dead-lettered %s: %s", dead.where or "a message with no source", dead.reason,
                      extra={"event": "dead_lettered", "source": dead.where, "outcome": dead.error})
        consumer.ack(handled.tags)
        self.tally.add(handled)
        waited, self.flushed_at = started - self.flushed_at, time.perf_counter()
        log.debug(
            "batch of %d committed and acked in %.0f ms, after %.0f ms waiting for messages (%d dead-lettered)",
            len(deliveries), (self.flushed_at - started) * 1000, waited * 1000, len(handled.dead),
        )

    @contextmanager
    def _said_if_silent(self) -> Iterator[None]:
        """The start-up check: if the database has not answered in HUNG_SECONDS, say that we wait for it."""
        timer = threading.Timer(HUNG_SECONDS, log.warning, (
            "waiting for the database at %s: no answer for %g s (consuming starts once it answers)",
            self.settings.mysql.safe_url(), HUNG_SECONDS))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _look_after(self, consumer: Consumer) -> None:
        """Between batches: the periodic summary, the ledger's size, the guard's gauges, and a database check
        while idle (for /readyz)."""
        self.tally.report(SUMMARY_SECONDS)
        if not consumer.received and time.monotonic() - consumer.quiet_since >= QUIET_SECONDS:
            self.pace.quiet()
        if self.settings.metrics_port and time.monotonic() - self.ledger_read >= LEDGER_SECONDS:
            self.ledger_read = time.monotonic()
            with self.database_calls.call():  # a silent server: abandonable on SIGTERM, seen by /readyz
                extent = self.applier.ledger_extent()
            if extent is not None:
                metrics.LEDGER_ROWS.set(extent.rows)
                metrics.LEDGER_OLDEST.set(extent.oldest or 0)
        with self.database_calls.call():
            self.applier.read_guard_gauges()
        if not consumer.received and time.monotonic() - self.database_checked >= PING_SECONDS:
            with self.database_calls.call():
                self.database_ok = self.applier.ping()
            self.database_checked = time.monotonic()

    def _database_answered(self) -> None:
        if self.database_down:
            log.info("the database answers again; carrying on")
            self.database_down = False
        self.database_ok = True
        self.database_checked = time.monotonic()

    def _database_pause(self, seconds: float) -> None:
        """BatchApplier's retry pause: keeps the AMQP connection alive (heartbeats) while MySQL is away."""
        self.database_ok = False
        self.database_down = True
        with self.database_calls.outside():
            self._pause(seconds)

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            if self.consumer is not None:
                self.consumer.sleep(min(left, PAUSE_SLICE))
            else:
                self.stopping.wait(left)
        if self.stopping.is_set():
            raise ShutdownRequested()

    def _before_reconnect(self, state) -> None:
        metrics.RETRIES.labels("broker").inc()
        self.broker_down = True
        log.warning(
            "cannot reach RabbitMQ (%s); trying again in %.1f s",
            state.outcome.exception(), state.next_action.sleep,
            extra={"event": "retry", "retry_attempt": state.attempt_number, "error_class": "TransientError"},
        )


def _series_at_zero() -> None:
    """Every label value of the worker's counters, at 0 from the start (metrics.start_at_zero says why)."""
    metrics.start_at_zero(metrics.DEAD_LETTERED, DEAD_LETTER_REASONS)
    metrics.start_at_zero(metrics.RECORDS_PROCESSED, [*((o, "bounce") for o in OUTCOMES),
                                                      *((o, "complaint") for o in COMPLAINT_OUTCOMES)])
    metrics.start_at_zero(metrics.RETRIES, ("database", "broker"))
