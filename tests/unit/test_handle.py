"""handle.py without a broker or a database: what a batch comes to, and how it is acked."""

from __future__ import annotations

import pytest
from pmtabounce.common.errors import FatalError
from pmtabounce.common.message import encode
from pmtabounce.common.record import BounceRecord
from pmtabounce.common.topology import H_DEAD_AT, H_ERROR, H_REASON, H_SOURCE_FILE, H_WORKER
from pmtabounce.worker.apply import BatchResult
from pmtabounce.worker.handle import (
    DATABASE_REFUSED,
    INVALID_MESSAGE,
    DeadLetterGuard,
    DeadLetterVerdict,
    Delivery,
    ack_plan,
    dead_letter_headers,
    handle_batch,
)
from pmtabounce.worker.plan import Outcome


def record(n: int) -> BounceRecord:
    return BounceRecord("b", 1_700_000_000 + n, f"user{n}@example.com", "5.1.1", "smtp;550 no such user",
                        "bad-mailbox", (1,), 0, "bounces.csv", n + 1)


class RecordingApplier:
    """Applies everything, except the rcpts it is told the database refuses."""

    def __init__(self, refuse: set[str] = frozenset()) -> None:
        self.refuse = refuse
        self.batches: list[list[BounceRecord]] = []

    def apply(self, records):
        self.batches.append(list(records))
        result = BatchResult()
        for r in records:
            if r.rcpt in self.refuse:
                result.failed.append((r, "MySQL error 1644: refused by a trigger"))
            else:
                result.outcomes.append(Outcome(r, "disabled", "hard", 1, 1))
        return result


def deliveries(bodies: list[bytes]) -> list[Delivery]:
    return [Delivery(tag, body, f"bounces.csv line {tag}") for tag, body in enumerate(bodies, start=1)]


def test_valid_messages_are_applied_in_one_call_in_delivery_order():
    applier = RecordingApplier()
    handled = handle_batch(deliveries([encode(record(n)) for n in range(5)]), applier, DeadLetterGuard())
    assert [[r.rcpt for r in batch] for batch in applier.batches] == [[f"user{n}@example.com" for n in range(5)]]
    assert [o.outcome for o in handled.outcomes] == ["disabled"] * 5
    assert handled.dead == []
    assert handled.tags == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "body, words",
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"v": 99}', "unknown schema version 99"),
        (encode(record(1)).replace(b'"type":"b"', b'"type":"d"'), "is not a bounce"),
        (encode(record(1)).replace(b'"list_ids":[1]', b'"list_ids":["x"]'), "list_ids"),
    ],
)
def test_a_message_that_does_not_decode_is_dead_lettered_with_a_readable_reason(body, words):
    applier = RecordingApplier()
    handled = handle_batch(deliveries([encode(record(0)), body, encode(record(2))]), applier, DeadLetterGuard())
    assert [r.rcpt for r in applier.batches[0]] == ["user0@example.com", "user2@example.com"]
    [dead] = handled.dead
    assert (dead.delivery.tag, dead.error, dead.where) == (2, INVALID_MESSAGE, "bounces.csv line 2")
    assert words in dead.reason
    assert handled.tags == [1, 2, 3]


def test_a_record_the_database_refuses_is_dead_lettered_with_the_databases_reason():
    applier = RecordingApplier(refuse={"user1@example.com"})
    handled = handle_batch(deliveries([encode(record(n)) for n in range(3)]), applier, DeadLetterGuard())
    [dead] = handled.dead
    assert (dead.delivery.tag, dead.error, dead.where) == (2, DATABASE_REFUSED, "bounces.csv line 2")
    assert "refused by a trigger" in dead.reason
    assert [o.record.rcpt for o in handled.outcomes] == ["user0@example.com", "user2@example.com"]


def test_the_same_record_twice_in_a_batch_maps_each_failure_to_its_own_delivery():
    applier = RecordingApplier(refuse={"user1@example.com"})
    body = encode(record(1))
    handled = handle_batch(deliveries([body, encode(record(0)), body]), applier, DeadLetterGuard())
    assert sorted(d.delivery.tag for d in handled.dead) == [1, 3]


def test_a_batch_of_only_invalid_messages_still_acks_them_all():
    handled = handle_batch(deliveries([b"x", b"y"]), RecordingApplier(), DeadLetterGuard())
    assert [d.error for d in handled.dead] == [INVALID_MESSAGE, INVALID_MESSAGE]
    assert handled.tags == [1, 2]


def test_the_guard_stops_a_long_run_of_dead_letters_before_any_is_published():
    guard = DeadLetterGuard(limit=3)
    with pytest.raises(FatalError, match="4 messages in a row"):
        handle_batch(deliveries([b"x"] * 4), RecordingApplier(), guard)


def test_the_guard_counts_across_batches_and_a_good_record_resets_it():
    guard = DeadLetterGuard(limit=3)
    handle_batch(deliveries([b"x", b"x"]), RecordingApplier(), guard)
    handle_batch(deliveries([b"x", encode(record(0)), b"x"]), RecordingApplier(), guard)
    assert guard.in_a_row == 1
    handle_batch(deliveries([b"x", b"x"]), RecordingApplier(), guard)
    with pytest.raises(FatalError):
        handle_batch(deliveries([b"x"]), RecordingApplier(), guard)


def test_dead_letter_headers_keep_the_originals_and_say_why_when_and_who():
    dead = DeadLetterVerdict(Delivery(7, b"{}"), INVALID_MESSAGE, "invalid message: " + "x" * 5000, "f.csv line 3")
    headers = dead_letter_headers({H_SOURCE_FILE: "f.csv", "x-delivery-count": 2}, dead, "host:42", 1700000000.7)
    assert headers[H_SOURCE_FILE] == "f.csv"
    assert headers["x-delivery-count"] == 2
    assert headers[H_ERROR] == INVALID_MESSAGE
    assert headers[H_REASON].startswith("invalid message: x") and len(headers[H_REASON]) == 1000
    assert (headers[H_DEAD_AT], headers[H_WORKER]) == (1700000000, "host:42")
    assert dead_letter_headers(None, dead, "h:1", 0)[H_ERROR] == INVALID_MESSAGE


@pytest.mark.parametrize(
    "to_ack, outstanding, expected",
    [
        ([1, 2, 3], [1, 2, 3], (3, [])),
        ([1, 2, 3], [1, 2, 3, 4, 5], (3, [])),  # 4 and 5 arrived meanwhile: not covered
        ([2, 3], [1, 2, 3], (None, [2, 3])),  # 1 is still in hand: multiple would ack it too
        ([1, 3], [1, 2, 3], (1, [3])),
        ([5, 6, 7], [5, 6, 7], (7, [])),
        ([1, 2], [2], (2, [])),  # 1 was acked already: never twice
        ([], [1, 2], (None, [])),
    ],
)
def test_ack_plan_uses_multiple_only_over_an_unbroken_run(to_ack, outstanding, expected):
    assert ack_plan(to_ack, outstanding) == expected
