"""What the worker says to RabbitMQ: one connection's channels, deliveries, acks and dead letters.

The worker's loop (consume.py) decides when; this module holds the pika calls.
Deliveries come in through a callback into a list; nothing is acked here but
what the loop hands back after its transaction committed.
"""

from __future__ import annotations

import functools
import time

import pika
from pika.exceptions import ConsumerCancelled

from ..common import broker
from ..common.instance import consumer_tag
from ..common.topology import H_SOURCE_FILE, H_SOURCE_LINE, Topology
from .handle import DeadLetterVerdict, Delivery, ack_plan, dead_letter_headers

COLLECT_SECONDS = 0.05  # how long a part-filled batch waits for more messages
# Room for two batches: the next one arrives while this one is in the database,
# instead of after its ack (a gap of tens of milliseconds per batch).
PREFETCH_BATCHES = 2


def _translated(method):
    """pika's failures leave this module as our error types (common/broker.py translates them)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with broker.translated():
            return method(*args, **kwargs)

    return wrapper


class Consumer:
    """One connection's worth of consuming: its channels, deliveries not yet handled, and unacked tags."""

    def __init__(self, connection: pika.BlockingConnection, topology: Topology, batch_size: int) -> None:
        self.connection = connection
        self.topology = topology
        self.batch_size = batch_size
        self.channel = connection.channel()
        broker.declare_topology(self.channel, topology)
        self.channel.basic_qos(prefetch_count=PREFETCH_BATCHES * batch_size)
        self.dead_channel = connection.channel()
        self.dead_channel.confirm_delivery()
        self.received: list[tuple[Delivery, pika.BasicProperties]] = []
        self.in_hand: dict[int, pika.BasicProperties] = {}
        self.outstanding: set[int] = set()
        self.quiet_since = time.monotonic()
        self.tag = self.channel.basic_consume(topology.queue, self._on_message, consumer_tag=consumer_tag("worker"))

    @classmethod
    def open(cls, nodes: broker.Nodes, topology: Topology, batch_size: int) -> Consumer:
        """Connect to the first of `nodes` that answers, declare the topology (idempotent) and start consuming.

        Raises FatalError (login, virtual host, permissions, a queue with other arguments) or TransientError.
        """
        connection = broker.connect(nodes, "worker")
        try:
            with broker.translated(nodes.urls[nodes.current]):
                return cls(connection, topology, batch_size)
        except BaseException:
            broker.close_quietly(connection)
            raise

    def _on_message(self, _channel, method, properties: pika.BasicProperties, body: bytes) -> None:
        self.received.append((Delivery(method.delivery_tag, body, _source(properties)), properties))
        self.outstanding.add(method.delivery_tag)
        self.quiet_since = time.monotonic()

    @_translated
    def wait(self, seconds: float = COLLECT_SECONDS) -> None:
        """Take in what the broker sends (messages, heartbeats) for up to `seconds`; no waiting
        while a whole batch is already here."""
        self.connection.process_data_events(time_limit=0 if len(self.received) >= self.batch_size else seconds)
        if self.tag not in self.channel.consumer_tags:
            raise ConsumerCancelled("RabbitMQ cancelled the consumer (queue deleted, or its node went down)")

    def batch_ready(self) -> bool:
        if not self.received:
            return False
        return len(self.received) >= self.batch_size or time.monotonic() - self.quiet_since >= COLLECT_SECONDS

    def take(self) -> list[Delivery]:
        """The oldest deliveries, one batch at most, in delivery order."""
        taken, self.received = self.received[: self.batch_size], self.received[self.batch_size :]
        self.in_hand.update((d.tag, properties) for d, properties in taken)
        return [d for d, _ in taken]

    @_translated
    def dead_letter(self, dead: DeadLetterVerdict, worker: str) -> None:
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

    @_translated
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

    @_translated
    def sleep(self, seconds: float) -> None:
        self.connection.sleep(seconds)

    def consuming(self) -> bool:
        return self.channel.is_open and self.tag in self.channel.consumer_tags

    @_translated
    def cancel(self) -> None:
        """No more deliveries; those received but not yet handled go back to the queue (pika nacks them)."""
        if self.consuming():
            with broker.answered_within(self.connection):  # a stop must not wait on a broker gone silent
                self.channel.basic_cancel(self.tag)

    def close(self) -> None:
        """Unacked messages return to the queue when the connection closes."""
        broker.close_quietly(self.connection)


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
