"""Publishing bounce records with pipelined publisher confirms on one channel of pika's asynchronous adapter.

Messages go out without waiting; confirms come back later, often one frame for
many messages. Each message is reported confirmed exactly once. A nacked or
returned (unroutable) message is held and sent again after a growing pause,
never dropped, and whatever was unconfirmed when a channel dies is sent again
on the next one.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pika
from pika.spec import Basic

from ..common import metrics
from ..common.accounting import Record
from ..common.complaint import ComplaintRecord
from ..common.message import CONTENT_TYPE, encode
from ..common.topology import H_SOURCE_FILE, H_SOURCE_LINE, Topology
from .checkpoint import Pending
from .confirms import Unconfirmed

log = logging.getLogger("pmtabounce.producer")

APP_ID = "pmtabounce-producer"
MESSAGE_TYPE = "bounce"  # the AMQP `type` property; a complaint's is "complaint"
PERSISTENT = 2
FIRST_PAUSE = 0.1
REPORT_SECONDS = 30.0
# Refusal rounds in a row on one channel before asking for a new connection. A quorum queue that lost
# its leader nacks what one channel sends it until that channel is gone (3.10, seen in the cluster test:
# ten seconds of nacks after the election, none on a new connection), so this is small; the pause grows
# across connections, so a queue that stays full is not reconnected to in a loop.
STUCK_AFTER = 3


@dataclass(slots=True, eq=False)
class Outgoing:
    """One message ready to (re)publish, with the progress entry to settle once it is confirmed."""

    body: bytes
    properties: pika.BasicProperties
    file: str
    line: int
    token: Pending


def outgoing(record: Record, token: Pending, now: int) -> Outgoing:
    """The message for one record: persistent, its fingerprint as message_id, its source in the headers."""
    properties = pika.BasicProperties(
        content_type=CONTENT_TYPE,
        delivery_mode=PERSISTENT,
        message_id=record.fingerprint,
        type="complaint" if isinstance(record, ComplaintRecord) else MESSAGE_TYPE,
        app_id=APP_ID,
        timestamp=now,
        headers={H_SOURCE_FILE: record.source_file, H_SOURCE_LINE: record.source_line},
    )
    return Outgoing(encode(record), properties, record.source_file, record.source_line, token)


class ConfirmingPublisher:
    """Sends messages on a confirm-mode channel; `on_confirmed` hears about each safe message once."""

    def __init__(
        self,
        topology: Topology,
        loop,
        on_confirmed: Callable[[list[Outgoing]], None],
        on_stuck: Callable[[str], None],
        max_pause: float,
    ) -> None:
        self._exchange = topology.exchange
        self._queue = topology.queue
        self._routing_key = topology.routing_key
        self._loop = loop
        self._on_confirmed = on_confirmed
        self._on_stuck = on_stuck
        self._max_pause = max_pause
        self._channel: pika.channel.Channel | None = None
        self._unconfirmed: Unconfirmed[Outgoing] = Unconfirmed()
        self._again: deque[Outgoing] = deque()
        self._refusals = 0  # refusals in a row, for the pause before sending again
        self._rounds_here = 0  # refusal rounds in a row on this channel
        self._timer = None
        self._return_reason = ""
        self._why = ""
        self._refusing = False
        self._unreported = 0  # refused since the last warning
        self._next_report = 0.0
        self._waiting_since: float | None = None  # since when a confirm is due and none came (monotonic)

    @property
    def ready(self) -> bool:
        channel = self._channel
        return channel is not None and channel.is_open

    @property
    def outstanding(self) -> int:
        """Messages not yet confirmed: in flight, or waiting to be sent again."""
        return len(self._unconfirmed) + len(self._again)

    def enable(self, channel, on_ready: Callable[[], None]) -> None:
        """Put a freshly opened channel in confirm mode; `on_ready` runs once the broker agreed."""

        def selected(_frame) -> None:
            self._channel = channel
            self._rounds_here = 0
            self._unconfirmed = Unconfirmed()
            self._send_again()
            on_ready()

        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=selected)

    def detach(self) -> int:
        """The channel is gone: what it left unconfirmed goes first on the next one. Returns how many wait."""
        self._channel = None
        if self._timer is not None:
            self._loop.remove_timeout(self._timer)  # the new channel sends them at once
            self._timer = None
        self._again.extendleft(reversed(self._unconfirmed.drain()))
        return len(self._again)

    def publish_all(self, messages: Iterable[Outgoing]) -> int:
        """Publish without waiting, written to the socket together (see BatchingConnection); returns how many."""
        channel, unconfirmed = self._channel, self._unconfirmed
        if channel is None:
            return 0  # not ready: `messages` is not iterated, so nothing is read and lost
        exchange, routing_key = self._exchange, self._routing_key
        count = 0
        with channel.connection.batched():
            for message in messages:
                channel.basic_publish(exchange, routing_key, message.body, message.properties, mandatory=True)
                unconfirmed.add(message)
                count += 1
        metrics.RECORDS_PUBLISHED.inc(count)
        if count and self._waiting_since is None:
            self._waiting_since = time.monotonic()
        return count

    def confirms_silent_for(self, now: float) -> float:
        """Seconds (monotonic `now`) that messages have waited with no ack from RabbitMQ, across reconnects
        (nacks do not count); 0 when none wait.

        A quorum queue confirms a message once a majority of its members have it: with half or more of
        them down it acks nothing (RabbitMQ 3.10 nacks, or leaves unconfirmed), and this grows until they
        come back.
        """
        return 0.0 if self._waiting_since is None else now - self._waiting_since

    def _on_confirm(self, frame) -> None:
        method = frame.method
        confirmed, refused = self._unconfirmed.confirm(
            method.delivery_tag, multiple=method.multiple, ack=isinstance(method, Basic.Ack)
        )
        if confirmed or not self.outstanding:
            self._waiting_since = time.monotonic() if self.outstanding else None
        if confirmed:
            self._refusals = self._rounds_here = 0
            if self._refusing:
                log.info("RabbitMQ takes messages again")
                self._refusing, self._next_report, self._unreported = False, 0.0, 0
            metrics.RECORDS_CONFIRMED.inc(len(confirmed))
            self._on_confirmed(confirmed)
        if refused:
            self._refuse(refused, "unroutable: " + self._return_reason if self._return_reason else "nacked")

    def _on_return(self, _channel, method, properties, _body) -> None:
        headers = properties.headers or {}
        file, line = headers.get(H_SOURCE_FILE), headers.get(H_SOURCE_LINE)
        self._unconfirmed.mark_returned(lambda m: m.line == line and m.file == file)
        self._return_reason = f"{method.reply_code} {method.reply_text}"
        log.debug("%s line %s returned by RabbitMQ: %s", file, line, self._return_reason)

    def _refuse(self, refused: list[Outgoing], why: str) -> None:
        metrics.PUBLISH_NACKED.inc(len(refused))
        self._again.extend(refused)
        self._return_reason, self._why = "", why
        self._refusing = True
        self._unreported += len(refused)
        if self._timer is None:
            pause = min(self._max_pause, FIRST_PAUSE * 2**self._refusals)
            self._refusals += 1
            self._rounds_here += 1
            self._timer = self._loop.call_later(pause, self._send_again)
            self._report_refusals(why, pause)

    def _report_refusals(self, why: str, pause: float) -> None:
        """One warning, then one every REPORT_SECONDS while it goes on: a full queue must not flood the log."""
        now = time.monotonic()
        if now < self._next_report:
            return
        self._next_report = now + REPORT_SECONDS
        log.warning(
            "RabbitMQ did not take %d message(s) (%s); sending them again, next try in %.1f s. If this goes on, "
            "check that queue %s exists, is bound to exchange %s and is not full.",
            self._unreported, why, pause, self._queue, self._exchange,
        )
        self._unreported = 0

    def _send_again(self) -> None:
        self._timer = None
        if not self.ready:
            return  # enable() sends them once a channel is back
        if self._rounds_here >= STUCK_AFTER:
            # A new connection declares the topology again (a deleted queue or binding comes back) and a new
            # channel forgets a quorum queue's "full" signal that clearing its length limit never lifts (3.10).
            self._rounds_here = 0
            self._on_stuck(self._why)
            return
        again, self._again = self._again, deque()
        self.publish_all(again)
