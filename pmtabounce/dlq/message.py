"""A dead letter as an operator sees it: why it died, when, where it came from, whom it is about.

No pika here: a message arrives as its body and a plain dict of its AMQP
properties, so every rule about reading dead letters is tested without a broker.
Two kinds of dead letter meet in the queue: those a worker published with our
headers (H_REASON, H_ERROR, H_DEAD_AT, H_WORKER), and those RabbitMQ itself
dead-lettered (delivery limit, rejected, expired), which carry only `x-death`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property

import orjson

from ..common.topology import (
    H_DEAD_AT,
    H_ERROR,
    H_HISTORY,
    H_REASON,
    H_REPLAYS,
    H_SOURCE_FILE,
    H_SOURCE_LINE,
    H_WORKER,
)

# RabbitMQ's own count of how often a quorum queue handed this message out and got it back.
# It belongs to the queue, not to the message: never exported, never republished.
X_DELIVERY_COUNT = "x-delivery-count"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Death:
    """One entry of the death history: ours (a worker's verdict) or RabbitMQ's (`x-death`)."""

    by: str  # "worker" or "broker"
    reason: str  # the class: invalid_message, database_refused, rejected, delivery_limit, expired, ...
    text: str  # readable
    at: datetime | None
    where: str = ""  # the worker (host:pid), or the queue it died in
    count: int = 1


@dataclass(frozen=True)
class DeadLetterMessage:
    """One message of the dead-letter queue as read back (browsed, or from an export file line).

    `body` and `properties` are exactly what RabbitMQ holds; `tag` is its delivery
    tag while a `dlq` command holds it (0 when read from a file). Not to be confused
    with worker.handle.DeadLetterVerdict, a worker's decision to dead-letter a delivery.
    """

    body: bytes
    properties: dict = field(repr=False)
    tag: int = 0

    @property
    def headers(self) -> dict:
        return self.properties.get("headers") or {}

    @cached_property
    def id(self) -> str:
        """The message id (the record fingerprint); a poison message without one gets a hash of its body."""
        return self.properties.get("message_id") or body_id(self.body)

    @cached_property
    def identity(self) -> tuple[str, str]:
        """Two dead letters with the same identity are the same message, whatever their headers say."""
        return self.id, hashlib.blake2b(self.body, digest_size=16).hexdigest()

    @cached_property
    def deaths(self) -> list[Death]:
        """Newest first: our worker's verdict (if any), then RabbitMQ's x-death entries."""
        deaths = [_worker_death(self.headers)] if H_ERROR in self.headers or H_REASON in self.headers else []
        return deaths + [_broker_death(entry) for entry in self.headers.get("x-death") or [] if isinstance(entry, dict)]

    @property
    def reason(self) -> str:
        """Why, as a class an operator filters by."""
        return self.deaths[0].reason if self.deaths else UNKNOWN

    @property
    def reason_text(self) -> str:
        return self.deaths[0].text if self.deaths else "no reason recorded"

    @property
    def died_at(self) -> datetime | None:
        if not self.deaths or not self.deaths[0].at:
            return _to_datetime(self.properties.get("timestamp"))
        at = self.deaths[0].at
        # RabbitMQ (3.10) keeps the first time in an x-death entry it counts up again; a message that
        # died again after a replay died after that replay, so the replay time is the closer answer.
        replayed = _to_datetime(self.history[0].get("replayed-at")) if self.history else None
        return replayed if self.deaths[0].by == "broker" and replayed and replayed > at else at

    @property
    def replays(self) -> int:
        return _to_int(self.headers.get(H_REPLAYS)) or 0

    @property
    def returned(self) -> int:
        """How often browsing (ours or a console's) has handed it out and put it back."""
        return _to_int(self.headers.get(X_DELIVERY_COUNT)) or 0

    @property
    def history(self) -> list[dict]:
        """Earlier deaths, moved aside by `dlq replay` (newest first)."""
        return [entry for entry in self.headers.get(H_HISTORY) or [] if isinstance(entry, dict)]

    @cached_property
    def record(self) -> dict:
        """The body as a JSON object, or {} for a body that is not one (poison)."""
        try:
            data = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def source_file(self) -> str:
        return str(self.headers.get(H_SOURCE_FILE) or self.record.get("file") or "")

    @property
    def source_line(self) -> int | None:
        return _to_int(self.headers.get(H_SOURCE_LINE)) or _to_int(self.record.get("line"))

    @property
    def source(self) -> str:
        if not self.source_file:
            return ""
        return f"{self.source_file}:{self.source_line}" if self.source_line else self.source_file

    @property
    def rcpt(self) -> str:
        value = self.record.get("rcpt")
        return value if isinstance(value, str) else ""

    @property
    def category(self) -> str:
        value = self.record.get("category")
        return value if isinstance(value, str) else ""


def body_id(body: bytes) -> str:
    """A stable id for a message that came without one."""
    return "body-" + hashlib.blake2b(body, digest_size=12).hexdigest()


def _worker_death(headers: dict) -> Death:
    reason = str(headers.get(H_ERROR) or UNKNOWN)
    return Death(
        by="worker",
        reason=reason,
        text=str(headers.get(H_REASON) or reason),
        at=_to_datetime(headers.get(H_DEAD_AT)),
        where=str(headers.get(H_WORKER) or ""),
    )


def _broker_death(entry: dict) -> Death:
    reason = str(entry.get("reason") or UNKNOWN)
    queue = str(entry.get("queue") or "?")
    count = _to_int(entry.get("count")) or 1
    times = "once" if count == 1 else f"{count} times"
    return Death(
        by="broker",
        reason=reason,
        text=f"RabbitMQ dead-lettered it from {queue}: {_BROKER_REASONS.get(reason, reason)} ({times})",
        at=_to_datetime(entry.get("time")),
        where=queue,
        count=count,
    )


_BROKER_REASONS = {
    "rejected": "a consumer rejected it without requeueing",
    "delivery_limit": "delivered too often without an ack (a worker kept failing on it)",
    "expired": "its time to live ran out",
    "maxlen": "the queue was full",
}


def _to_datetime(value) -> datetime | None:
    """Unix seconds (int, float or digits) or an AMQP timestamp (pika: UTC, naive before 1.4) to aware UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    number = _to_float(value)
    if number is None or number <= 0:
        return None
    try:
        return datetime.fromtimestamp(number, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _to_float(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _to_int(value) -> int | None:
    number = _to_float(value)
    return int(number) if number is not None else None
