"""The worker's RabbitMQ side: consume in batches, ack after commit, dead-letter with confirms,
reconnect with backoff, and stop cleanly on SIGTERM or SIGINT.

What a message means and what becomes of it is decided in handle.py; this
module only moves messages and acknowledgements. pika lives here; the
database is reached through BatchApplier alone.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pika
from pika.exceptions import AMQPError, ChannelClosedByBroker, ConsumerCancelled
from tenacity import Retrying, retry_if_exception_type
from tenacity.wait import wait_exponential, wait_random

from ..common import broker, health, metrics
from ..common.config import Settings
from ..common.errors import FatalError
from ..common.topology import H_SOURCE_FILE, H_SOURCE_LINE, Topology
from .apply import BatchApplier
from .db import Tables
from .handle import DeadLetter, DeadLetterGuard, Delivery, Handled, ack_plan, dead_letter_headers, handle_batch

log = logging.getLogger("pmtabounce.worker")

COLLECT_SECONDS = 0.05  # how long a part-filled batch waits for more messages
SUMMARY_SECONDS = 10.0
PING_SECONDS = 5.0  # how often an idle worker checks the database, for /readyz
PAUSE_SLICE = 0.25  # a retry pause looks for a stop request this often
REFUSALS = {403: "access refused", 406: "a queue or exchange exists with other arguments"}


class ShutdownRequested(Exception):
    """A stop request arrived during a retry pause: in-flight messages go back unacked."""


def run_worker(settings: Settings, exit_when_idle: float | None = None) -> int:
    """Consume until SIGTERM/SIGINT (or `exit_when_idle` seconds with no message); the exit code."""
    worker = Worker(settings, exit_when_idle)
    # pika logs every lost connection at ERROR with a traceback; our one-line warning says it plainly.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    with stop_on_signals(worker.stopping.set):
        return worker.run()


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """The first SIGTERM or SIGINT asks for a clean stop; a second one ends the process at once."""

    def on_signal(signum: int, _frame) -> None:
        log.info("%s received: finishing the batch in hand, then exiting", signal.Signals(signum).name)
        signal.signal(signum, signal.SIG_DFL)
        stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class Consumer:
    """One connection's worth of consuming: its channels, deliveries not yet handled, and unacked tags."""

    def __init__(self, connection: pika.BlockingConnection, topology: Topology, prefetch: int) -> None:
        self.connection = connection
        self.topology = topology
        self.prefetch = prefetch
        self.channel = connection.channel()
        broker.declare_topology(self.channel, topology)
        self.channel.basic_qos(prefetch_count=prefetch)
        self.dead_channel = connection.channel()
        self.dead_channel.confirm_delivery()
        self.received: list[tuple[Delivery, pika.BasicProperties]] = []
        self.in_hand: dict[int, pika.BasicProperties] = {}
        self.outstanding: set[int] = set()
        self.quiet_since = time.monotonic()
        self.tag = self.channel.basic_consume(topology.queue, self._on_message)

    @classmethod
    def open(cls, settings: Settings, topology: Topology) -> Consumer:
        connection = broker.connect(settings.amqp, "worker")
        try:
            return cls(connection, topology, settings.batch_size)
        except ChannelClosedByBroker as exc:
            _close_quietly(connection)
            if exc.reply_code in REFUSALS:
                raise FatalError(f"RabbitMQ refused the worker's set-up ({REFUSALS[exc.reply_code]}): "
                                 f"{exc.reply_text}") from None
            raise
        except BaseException:
            _close_quietly(connection)
            raise

    def _on_message(self, _channel, method, properties: pika.BasicProperties, body: bytes) -> None:
        self.received.append((Delivery(method.delivery_tag, body, _source(properties)), properties))
        self.outstanding.add(method.delivery_tag)
        self.quiet_since = time.monotonic()

    def wait(self, seconds: float) -> None:
        """Take in what the broker sends (messages, heartbeats) for up to `seconds`."""
        self.connection.process_data_events(time_limit=seconds)
        if self.tag not in self.channel.consumer_tags:
            raise ConsumerCancelled("RabbitMQ cancelled the consumer (queue deleted, or its node went down)")

    def batch_ready(self) -> bool:
        if not self.received:
            return False
        return len(self.received) >= self.prefetch or time.monotonic() - self.quiet_since >= COLLECT_SECONDS

    def take(self) -> list[Delivery]:
        taken, self.received = self.received, []
        self.in_hand.update((d.tag, properties) for d, properties in taken)
        return [d for d, _ in taken]

    def dead_letter(self, dead: DeadLetter, worker: str) -> None:
        """Publish a copy to the dead-letter exchange; returns once RabbitMQ has confirmed it."""
        original = self.in_hand[dead.delivery.tag]
        headers = dead_letter_headers(original.headers, dead, worker, time.time())
        self.dead_channel.basic_publish(
            self.topology.dead_exchange,
            self.topology.routing_key,
            dead.delivery.body,
            _dead_letter_properties(original, headers),
            mandatory=True,
        )

    def ack(self, tags: list[int]) -> None:
        up_to, singles = ack_plan(tags, self.outstanding)
        if up_to is not None:
            self.channel.basic_ack(up_to, multiple=True)
        for tag in singles:
            self.channel.basic_ack(tag)
        done = {t for t in self.outstanding if up_to is not None and t <= up_to}.union(singles)
        self.outstanding -= done
        for tag in done:
            self.in_hand.pop(tag, None)
        self.quiet_since = time.monotonic()

    def sleep(self, seconds: float) -> None:
        self.connection.sleep(seconds)

    def consuming(self) -> bool:
        return self.channel.is_open and self.tag in self.channel.consumer_tags

    def cancel(self) -> None:
        """No more deliveries; those received but not yet handled go back to the queue (pika nacks them)."""
        if self.consuming():
            self.channel.basic_cancel(self.tag)

    def close(self) -> None:
        """Unacked messages return to the queue when the connection closes."""
        _close_quietly(self.connection)


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
            )
        self.reset()


class Worker:
    """Consumes the work queue until told to stop; survives broker and database outages on its own."""

    def __init__(self, settings: Settings, exit_when_idle: float | None = None) -> None:
        self.settings = settings
        self.amqp_url = settings.amqp  # a missing URL is a ConfigError now, not after connecting
        self.topology = Topology(settings.queue_prefix, settings.delivery_limit)
        self.exit_when_idle = exit_when_idle
        self.applier = BatchApplier(
            settings.mysql, Tables(settings.table_prefix), settings.policy,
            retry_max_wait=settings.retry_max_wait, sleep=self._database_pause,
        )
        self.guard = DeadLetterGuard()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        self.idle = False
        self.consumer: Consumer | None = None
        self.database_ok = False
        self.database_down = False
        self.broker_down = False
        self.database_checked = 0.0
        self.tally = Tally()

    def run(self) -> int:
        server = health.serve(self.settings.metrics_port, ready=self.ready)
        log.info(
            "worker %s consuming %s at %s in batches of up to %d, applying to %s",
            self.name, self.topology.queue, broker.safe_url(self.amqp_url),
            self.settings.batch_size, self.settings.mysql.safe_url(),
        )
        try:
            while not (self.stopping.is_set() or self.idle):
                self.consumer = self._connect()
                if self.consumer is not None:
                    self._serve(self.consumer)
            return 0
        except ShutdownRequested:
            log.info("stopped while waiting to retry; unacknowledged messages go back to the queue")
            return 0
        except FatalError as exc:
            log.error("worker stops: %s. Unacknowledged messages go back to the queue.", exc)
            return 1
        finally:
            self.applier.close()
            self.tally.report()
            if server is not None:
                server.shutdown()

    def ready(self) -> bool:
        """/readyz: consuming on an open channel, and the database answered lately."""
        consumer = self.consumer
        return consumer is not None and consumer.consuming() and self.database_ok

    def _connect(self) -> Consumer | None:
        """Connect, declare and start consuming, retrying with backoff; None if asked to stop meanwhile."""
        retrying = Retrying(
            retry=retry_if_exception_type(AMQPError),
            wait=wait_exponential(multiplier=0.5, max=self.settings.retry_max_wait) + wait_random(0, 0.5),
            sleep=self._pause,
            before_sleep=self._before_reconnect,
            reraise=True,
        )
        try:
            consumer = retrying(Consumer.open, self.settings, self.topology)
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
                consumer.wait(COLLECT_SECONDS)
                if consumer.batch_ready():
                    self._flush(consumer)
                self._look_after(consumer)
            consumer.cancel()
            self._flush(consumer)
        except AMQPError as exc:
            metrics.RETRIES.labels("broker").inc()
            self.broker_down = True
            log.warning(
                "RabbitMQ connection or channel failed (%s); reconnecting. Messages not yet acknowledged "
                "go back to the queue and come again (the ledger makes repeats harmless)", _describe(exc),
            )
        finally:
            consumer.close()
            self.consumer = None

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
        handled = handle_batch(deliveries, self.applier, self.guard)
        self._database_answered()
        for dead in handled.dead:
            consumer.dead_letter(dead, self.name)
            metrics.DEAD_LETTERED.labels(dead.error).inc()
            log.error("dead-lettered %s: %s", dead.where or "a message with no source", dead.reason)
        consumer.ack(handled.tags)
        self.tally.add(handled)
        log.debug(
            "batch of %d committed and acked in %.0f ms (%d dead-lettered)",
            len(deliveries), (time.perf_counter() - started) * 1000, len(handled.dead),
        )

    def _look_after(self, consumer: Consumer) -> None:
        """Between batches: the periodic summary, and a database check while idle (for /readyz)."""
        self.tally.report(SUMMARY_SECONDS)
        if not consumer.received and time.monotonic() - self.database_checked >= PING_SECONDS:
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
            "cannot reach RabbitMQ at %s (%s); trying again in %.1f s",
            broker.safe_url(self.amqp_url), _describe(state.outcome.exception()), state.next_action.sleep,
        )


def _source(properties: pika.BasicProperties) -> str:
    """Names a message for logs without its body: source file and line, else its message id."""
    headers = properties.headers or {}
    if H_SOURCE_FILE in headers:
        return f"{headers[H_SOURCE_FILE]} line {headers.get(H_SOURCE_LINE, '?')}"
    return f"message {properties.message_id}" if properties.message_id else ""


def _dead_letter_properties(original: pika.BasicProperties, headers: dict) -> pika.BasicProperties:
    # Not copied: expiration (a dead letter must stay) and user_id (RabbitMQ checks it against our login).
    return pika.BasicProperties(
        content_type=original.content_type,
        content_encoding=original.content_encoding,
        headers=headers,
        delivery_mode=pika.DeliveryMode.Persistent,
        priority=original.priority,
        correlation_id=original.correlation_id,
        reply_to=original.reply_to,
        message_id=original.message_id,
        timestamp=original.timestamp,
        type=original.type,
        app_id=original.app_id,
    )


def _describe(exc: BaseException | None) -> str:
    text = str(exc) if exc is not None else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _close_quietly(connection: pika.BlockingConnection) -> None:
    try:
        if connection.is_open:
            connection.close()
    except AMQPError:  # already gone: the broker returns unacked messages either way
        pass
