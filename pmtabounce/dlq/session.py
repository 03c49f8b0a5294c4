"""The dead-letter queue over AMQP: hold its messages without taking them, remove one, publish with confirms.

How browsing stays harmless (RabbitMQ 3.10 quorum queues, checked against
the real broker): one consumer with a prefetch of exactly the queue's depth
receives every message, unacknowledged; closing its channel hands them all
back in their original order. `basic.get` followed by closing, or nacking
while the consumer is still active, shuffles them, so neither is used. The
queue takes them back a moment after the close, so a release waits until it
counts them again. The queue counts each hand-back in `x-delivery-count`;
nothing else about a message changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker, NackError, UnroutableError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, retry_if_result, stop_after_delay, wait_fixed

from ..common import broker
from ..common.broker import INTERNAL_ERROR, RESOURCE_LOCKED
from ..common.config import Settings
from ..common.errors import FatalError
from ..common.topology import Topology
from .message import DeadLetterMessage

log = logging.getLogger("pmtabounce.dlq")

MAX_HELD = 65535  # the largest prefetch AMQP allows: what one command sees of a longer queue
QUIET_SECONDS = 2.0  # a browse ends early when the broker has sent nothing for this long
SETTLE_SECONDS = 5.0  # how long a release waits for the queue to count the handed-back messages
PROPERTY_NAMES = (
    "content_type", "content_encoding", "headers", "delivery_mode", "priority", "correlation_id",
    "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id", "cluster_id",
)
# Not republished: user_id (RabbitMQ accepts it only from that very login) and expiration
# (a message put back must not vanish on a timer), as the worker does when it dead-letters.
NOT_REPUBLISHED = ("user_id", "expiration")


class QueueInUse(Exception):
    """Another `pmtabounce dlq` holds the dead-letter queue right now."""


class PublishRefused(FatalError):
    """RabbitMQ did not take a message we published (nacked, or no queue bound)."""


def properties_dict(properties: pika.BasicProperties) -> dict:
    """Every property that is set, as a plain dict (headers as pika decoded them)."""
    return {name: getattr(properties, name) for name in PROPERTY_NAMES if getattr(properties, name) is not None}


def _last_result(state: RetryCallState) -> int:
    """tenacity's answer once it stops retrying: what the last attempt returned, not a RetryError."""
    outcome = state.outcome
    assert outcome is not None, "tenacity stops only after an attempt"
    return outcome.result()


class DeadLetterQueue:
    """One session on the dead-letter queue, holding the lock that keeps other `dlq` commands out."""

    def __init__(self, connection: pika.BlockingConnection, topology: Topology, lock_wait: float) -> None:
        self.connection = connection
        self.topology = topology
        self.name = topology.dead_queue
        self._browse_channel: BlockingChannel | None = None
        self._held = 0  # delivered to us on the browse channel, not removed
        self._publish_channel: BlockingChannel | None = None
        self._lock(lock_wait)

    @classmethod
    @contextmanager
    def open(cls, settings: Settings, lock_wait: float = 10.0) -> Iterator[DeadLetterQueue]:
        """Connect and take the lock; closing returns every message still held to the queue."""
        topology = settings.topology
        connection = broker.connect(settings.amqp, "dlq")  # our error types: a wrong login is fatal
        try:
            yield cls(connection, topology, lock_wait)
        finally:
            broker.close_quietly(connection)

    def _lock(self, wait: float) -> None:
        """An exclusive queue is a lock the broker keeps for us: it goes when our connection goes,
        however the process ends. Two `dlq` commands at once would each see only part of the queue."""
        lock_name = f"{self.name}.in-use"

        def declare() -> None:
            channel = self.connection.channel()
            try:
                channel.queue_declare(lock_name, exclusive=True, auto_delete=True,
                                      arguments={"x-queue-type": "classic"})
            except ChannelClosedByBroker as exc:
                if exc.reply_code == RESOURCE_LOCKED:
                    raise QueueInUse() from None
                raise

        try:
            Retrying(retry=retry_if_exception_type(QueueInUse), stop=stop_after_delay(wait), wait=wait_fixed(1.0),
                     reraise=True)(declare)
        except QueueInUse:
            raise FatalError(
                f"another `pmtabounce dlq` command is working on {self.name} (it holds {lock_name}; "
                "the management console shows its connection); try again when it has finished"
            ) from None

    def depth(self) -> int:
        """Messages ready in the dead-letter queue (not counting any we hold)."""
        channel = self.connection.channel()
        try:
            with broker.translated():  # no queue: NOT_FOUND, a FatalError saying to run setup
                return channel.queue_declare(self.name, passive=True).method.message_count
        finally:
            if channel.is_open:
                channel.close()

    def browse(self, quiet: float = QUIET_SECONDS) -> list[DeadLetterMessage]:
        """Every message now in the queue (up to MAX_HELD), in queue order, held unacknowledged.

        Until `remove` or `release`, no other consumer gets them.
        """
        self.release()
        wanted = min(self.depth(), MAX_HELD)
        if not wanted:
            self._check_empty()
            return []
        letters: list[DeadLetterMessage] = []
        channel = self.connection.channel()
        channel.basic_qos(prefetch_count=wanted)

        def on_message(_channel, method, properties, body) -> None:
            letters.append(DeadLetterMessage(body, properties_dict(properties), method.delivery_tag))

        channel.basic_consume(self.name, on_message)
        self._browse_channel = channel
        last_count, last_change = 0, time.monotonic()
        while len(letters) < wanted and time.monotonic() - last_change < quiet:
            self.connection.process_data_events(time_limit=0.1)
            if len(letters) != last_count:
                last_count, last_change = len(letters), time.monotonic()
        self._held = len(letters)
        return letters

    def _check_empty(self) -> None:
        """A depth of 0 is also what RabbitMQ answers for a quorum queue below quorum, whatever it holds
        (rabbit_quorum_queue:stat cannot reach the leader), and a consumer there waits a minute for an
        INTERNAL_ERROR; `basic.get` answers at once: empty, or refused. Raises FatalError when refused.
        A message that arrived meanwhile is handed back at once by closing the channel.
        """
        channel = self.connection.channel()
        try:
            channel.basic_get(self.name)
        except ConnectionClosedByBroker as exc:
            if exc.reply_code != INTERNAL_ERROR:
                raise
            raise FatalError(
                f"RabbitMQ cannot read {self.name} ({exc.reply_code} {exc.reply_text}): the quorum queue is below "
                "quorum, and then it counts 0 messages whatever it holds; nothing was read or removed. "
                "See `pmtabounce status`, and run the command again once more than half of its nodes are online"
            ) from None
        finally:
            if channel.is_open:
                channel.close()

    def remove(self, letter: DeadLetterMessage) -> None:
        """Take one held message out of the queue for good."""
        channel = self._browse_channel
        assert channel is not None, "a message is removed only after browse() held it"
        channel.basic_ack(letter.tag)
        self._held -= 1

    def release(self) -> None:
        """Hand every held message back, in order (closing the channel, not nacking: see the module doc).

        Returns once the queue counts them again: the quorum queue takes them back a moment after the
        channel is closed, and the next browse, ours or the next command's, must see them all.
        """
        channel, self._browse_channel = self._browse_channel, None
        if channel is None:
            return
        if channel.is_open:
            channel.close()
        held, self._held = self._held, 0
        depth = Retrying(
            retry=retry_if_result(lambda ready: ready < held), stop=stop_after_delay(SETTLE_SECONDS),
            wait=wait_fixed(0.05), sleep=self.connection.sleep, retry_error_callback=_last_result,
        )(self.depth)
        if depth < held:
            log.warning("%s counts %d ready messages %.0f s after %d were handed back; a command run right "
                        "now may see fewer than there are", self.name, depth, SETTLE_SECONDS, held)

    def publish(self, exchange: str, body: bytes, properties: dict) -> None:
        """Publish persistently and return once RabbitMQ has confirmed it; PublishRefused otherwise."""
        channel = self._publish_channel
        if channel is None or not channel.is_open:
            channel = self._publish_channel = self.connection.channel()
            channel.confirm_delivery()
        kept = {k: v for k, v in properties.items() if k not in NOT_REPUBLISHED}
        kept["delivery_mode"] = pika.DeliveryMode.Persistent
        try:
            channel.basic_publish(
                exchange, self.topology.routing_key, body, pika.BasicProperties(**kept), mandatory=True
            )
        except UnroutableError:
            raise PublishRefused(f"RabbitMQ returned the message: no queue is bound to {exchange} "
                                 "(run `pmtabounce setup`)") from None
        except NackError:
            raise PublishRefused(f"RabbitMQ refused the message published to {exchange} "
                                 "(is the queue full?)") from None

    def sleep(self, seconds: float) -> None:
        """Wait while keeping the connection alive (heartbeats)."""
        self.connection.sleep(seconds)
