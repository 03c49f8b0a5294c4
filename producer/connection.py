"""The producer's link to RabbitMQ: topology declared, then one confirm-mode channel on pika's asynchronous adapter.

`BrokerLink.open` runs the shared I/O loop until the channel is ready or the
attempt failed, raising TransientError (try again) or FatalError (an operator
must act: credentials, virtual host, a queue declared with other arguments).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pika
from pika import exceptions as amqp
from pika import frame, spec

from ..common import queue_migration
from ..common.broker import (
    ANSWER_SECONDS,
    Nodes,
    abandon,
    close_quietly,
    connect,
    declare_topology,
    parameters,
    translate,
    translated,
)
from ..common.topology import Topology

log = logging.getLogger("pmtabounce.producer")


def declare(nodes: Nodes, topology: Topology) -> None:
    """Declare exchanges and queues on a short blocking connection; idempotent. Raises our error types.

    A work queue an older version declared with x-arguments is used as it is (the exchange still routes
    to it), with a warning: the upgrade order (docs/upgrading.md) lets the producer run until `setup` moves it.
    """
    connection = connect(nodes, "producer")
    try:
        with translated(nodes.urls[nodes.current]):
            declare_topology(connection.channel(), topology, work_queue=False)
            if queue_migration.declare_queue(connection, topology.queue, topology):
                log.warning("queue %s still has the x-arguments of an older version; publishing to it as it is "
                            "until `pmtabounce setup` moves it to the policy", topology.queue)
    finally:
        close_quietly(connection)


class BatchingConnection(pika.SelectConnection):
    """A SelectConnection that can gather many publishes into one socket write.

    pika writes every frame with its own send(): three system calls per
    message, which capped the producer near 5,000 messages/s. Inside
    `batched()` the frames are held and written as one buffer when it ends,
    in the same order.
    """

    def __init__(self, *args, **kwargs) -> None:
        self._held: list[bytes] | None = None
        self._publish_frames: dict[tuple, bytes] = {}  # a Basic.Publish method frame, marshaled once
        super().__init__(*args, **kwargs)

    @contextmanager
    def batched(self) -> Iterator[None]:
        if self._held is not None:
            yield
            return
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            if held and self.is_open:
                super()._output_marshaled_frames([b"".join(held)])

    def _send_message(self, channel_number: int, method_frame, content: tuple) -> None:
        """pika's own, but inside `batched()` a publish's method frame (the same exchange, routing key
        and flags for every record) is marshaled once, not per message, and a message's three frames go
        out as one piece; the bytes are pika's (a unit test compares them)."""
        properties, body = content
        if (self._held is None or type(method_frame) is not spec.Basic.Publish or not body
                or len(body) > self._body_max_length):
            super()._send_message(channel_number, method_frame, content)
            return
        key = (channel_number, method_frame.exchange, method_frame.routing_key, method_frame.mandatory,
               method_frame.immediate)
        method = self._publish_frames.get(key)
        if method is None:
            method = self._publish_frames[key] = frame.Method(channel_number, method_frame).marshal()
        self._held.append(method + frame.Header(channel_number, len(body), properties).marshal()
                          + frame.Body(channel_number, body).marshal())

    def _output_marshaled_frames(self, marshaled_frames) -> None:
        if self._held is None:
            super()._output_marshaled_frames(marshaled_frames)
        else:
            self._held.extend(marshaled_frames)


class BrokerLink:
    """One SelectConnection and its channel on the producer's I/O loop."""

    def __init__(self, nodes: Nodes, loop, on_lost: Callable[[BaseException], None]) -> None:
        self.nodes = nodes
        self._loop = loop
        self._on_lost = on_lost
        self._connection: BatchingConnection | None = None
        self._ready = False
        self._closing = False
        self._error: BaseException | None = None

    @property
    def is_open(self) -> bool:
        return self._open_connection() is not None

    def _open_connection(self) -> BatchingConnection | None:
        connection = self._connection
        return connection if connection is not None and connection.is_open else None

    def open(self, setup: Callable[[object, Callable[[], None]], None]) -> None:
        """Connect to the first node that answers and open a channel; `setup(channel, ready)` must call
        `ready()` once the channel is usable. Raises TransientError or FatalError."""
        self._setup = setup
        self.nodes.first_answering(self._open_on)

    def _open_on(self, url: str) -> None:
        self._ready, self._closing, self._error = False, False, None
        self._connection = BatchingConnection(
            parameters(url, "producer"),
            on_open_callback=self._opened,
            on_open_error_callback=self._failed,
            on_close_callback=self._closed,
            custom_ioloop=self._loop,
        )
        self._loop.start()  # until ready or failed
        if not self._ready:
            raise translate(self._error or amqp.AMQPConnectionError("connection attempt ended"), url)

    def close(self) -> None:
        """Close on purpose; the loop stops once the broker agreed, or after ANSWER_SECONDS without an answer.

        Nothing is lost by not waiting longer: a file is marked done only after its confirms.
        """
        self._closing = True
        connection = self._open_connection()
        if connection is not None:
            self._close_within(connection)
        else:
            self._loop.stop()

    def drop(self, reason: BaseException) -> None:
        """Close the connection as if it were lost: the producer reconnects."""
        connection = self._open_connection()
        if connection is not None:
            self._error = reason
            self._close_within(connection)

    def _close_within(self, connection: BatchingConnection) -> None:
        connection.close()
        self._loop.call_later(ANSWER_SECONDS, lambda: abandon(connection, ANSWER_SECONDS))

    def _opened(self, connection) -> None:
        connection.channel(on_open_callback=self._channel_opened)

    def _channel_opened(self, channel) -> None:
        channel.add_on_close_callback(self._channel_closed)
        self._setup(channel, self._channel_ready)

    def _channel_ready(self) -> None:
        self._ready = True
        self._loop.stop()

    def _failed(self, _connection, exc: BaseException) -> None:
        self._error = exc
        self._connection = None
        self._loop.stop()

    def _channel_closed(self, _channel, exc: BaseException) -> None:
        # One channel per connection: without it the connection is no use, and
        # reconnecting declares the topology again.
        if self.is_open:
            log.warning("RabbitMQ closed the publishing channel: %s", exc)
            self.drop(exc)

    def _closed(self, _connection, exc: BaseException) -> None:
        self._connection = None
        was_ready, self._ready = self._ready, False
        if not was_ready:
            self._error = self._error or exc
        elif not self._closing:
            self._on_lost(self._error or exc)
        self._loop.stop()
