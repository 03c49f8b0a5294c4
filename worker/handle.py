"""What one batch of queue messages comes to: decode, apply, and which to ack or dead-letter.

No pika here. The consumer hands in delivery tags and bodies and gets back
decisions; everything it then does with the broker follows from them. Keeping
the two apart lets these rules be tested without a broker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..common.errors import FatalError, InvalidMessage
from ..common.message import decode
from ..common.topology import H_DEAD_AT, H_ERROR, H_REASON, H_WORKER
from ..store.rows import Record
from .apply import BatchResult
from .plan import Outcome

# The short class of a dead letter: a metric label and the H_ERROR header.
INVALID_MESSAGE = "invalid_message"
DATABASE_REFUSED = "database_refused"
DEAD_LETTER_REASONS = (INVALID_MESSAGE, DATABASE_REFUSED)  # every value of pmtabounce_dead_lettered_total{reason}

# So many dead letters in a row is not bad data but a fault of ours (a broken
# trigger, a bad deploy of the producer): stop rather than empty the queue into the DLQ.
DEAD_LETTERS_IN_A_ROW = 100
MAX_REASON = 1000


class Applier(Protocol):
    def apply(self, records: Sequence[Record]) -> BatchResult: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as the consumer received it; `source` names it for logs (file and line)."""

    tag: int
    body: bytes
    source: str = ""


@dataclass(frozen=True, slots=True)
class DeadLetterVerdict:
    """A worker's verdict that one delivery can never apply: published to the dead-letter exchange with why."""

    delivery: Delivery
    error: str  # INVALID_MESSAGE or DATABASE_REFUSED
    reason: str  # for an operator to read
    where: str  # source file and line, or the message id


@dataclass
class Handled:
    """The batch after its transaction committed: every tag may be acked once the dead letters are confirmed."""

    outcomes: list[Outcome] = field(default_factory=list)
    dead: list[DeadLetterVerdict] = field(default_factory=list)
    tags: list[int] = field(default_factory=list)


class DeadLetterGuard:
    """Counts dead letters in delivery order; a long unbroken run is fatal, not data."""

    def __init__(self, limit: int = DEAD_LETTERS_IN_A_ROW) -> None:
        self.limit = limit
        self.in_a_row = 0

    def check(self, deliveries: Sequence[Delivery], dead: Sequence[DeadLetterVerdict]) -> None:
        reasons = {d.delivery.tag: d.reason for d in dead}
        for delivery in deliveries:
            if delivery.tag not in reasons:
                self.in_a_row = 0
                continue
            self.in_a_row += 1
            if self.in_a_row > self.limit:
                raise FatalError(
                    f"{self.in_a_row} messages in a row could not be applied (the last: {reasons[delivery.tag]}); "
                    "this looks like a fault of the system, not of the data, so the worker stops and "
                    "leaves them in the queue"
                )


def handle_batch(deliveries: Sequence[Delivery], applier: Applier, guard: DeadLetterGuard) -> Handled:
    """Decode every delivery, apply the valid ones in one transaction (delivery order kept), sort out the rest.

    Raises FatalError (from the applier, or from the guard) before anything may be acked.
    """
    decoded: list[tuple[Delivery, Record]] = []
    dead: list[DeadLetterVerdict] = []
    for delivery in deliveries:
        try:
            decoded.append((delivery, decode(delivery.body)))
        except InvalidMessage as exc:
            dead.append(DeadLetterVerdict(delivery, INVALID_MESSAGE, f"invalid message: {exc}", delivery.source))
    result = applier.apply([record for _, record in decoded])
    # The applier hands back the very record objects it was given, so identity finds their delivery.
    delivery_of = {id(record): delivery for delivery, record in decoded}
    for record, reason in result.failed:
        where = f"{record.source_file} line {record.source_line}"
        refused = f"the database refused it: {reason}"
        dead.append(DeadLetterVerdict(delivery_of[id(record)], DATABASE_REFUSED, refused, where))
    guard.check(deliveries, dead)
    return Handled(result.outcomes, dead, [d.tag for d in deliveries])


def dead_letter_headers(original: Mapping | None, dead: DeadLetterVerdict, worker: str, now: float) -> dict:
    """The original headers plus why, when and by whom the message was dead-lettered."""
    headers = dict(original or {})
    headers.update(
        {
            H_REASON: dead.reason[:MAX_REASON],
            H_ERROR: dead.error,
            H_DEAD_AT: int(now),
            H_WORKER: worker,
        }
    )
    return headers


def ack_plan(to_ack: Iterable[int], outstanding: Iterable[int]) -> tuple[int | None, list[int]]:
    """How to ack `to_ack` in as few frames as is safe.

    An ack with multiple=True covers every unacked tag up to it, so it may only
    reach as far as the unbroken run of `to_ack` from the lowest outstanding tag;
    anything past a gap is acked one by one, and a tag no longer outstanding not
    at all (acking it twice would close the channel). Returns (multiple_up_to, singles).
    """
    wanted = set(to_ack)
    pending = sorted(outstanding)
    up_to = None
    for tag in pending:
        if tag not in wanted:
            break
        up_to = tag
    singles = [t for t in pending if t in wanted and (up_to is None or t > up_to)]
    return up_to, singles
