"""Reading a dead letter: why, when, where from, whom about; ids for poison messages."""

from __future__ import annotations

from datetime import datetime, timezone

from pmtabounce.common.topology import (
    H_DEAD_AT,
    H_ERROR,
    H_HISTORY,
    H_REASON,
    H_REPLAYS,
    H_SOURCE_FILE,
    H_SOURCE_LINE,
    H_WORKER,
)

from pmtabounce.dlq.message import UNKNOWN, DeadLetterMessage, body_id

BODY = b'{"v":1,"type":"b","rcpt":"ann@example.com","category":"bad-mailbox","file":"in-body.csv","line":7}'
DEAD_AT = 1_732_000_000
X_DEATH_TIME = datetime(2024, 11, 19, 10, 0, 0)  # naive UTC, as pika before 1.4 gives AMQP timestamps


def worker_letter(**headers) -> DeadLetterMessage:
    return DeadLetterMessage(BODY, {"message_id": "f" * 32, "headers": {
        H_REASON: "the database refused it: MySQL error 1644: no", H_ERROR: "database_refused",
        H_DEAD_AT: DEAD_AT, H_WORKER: "host:42", H_SOURCE_FILE: "bounces.csv", H_SOURCE_LINE: 12, **headers,
    }})


def broker_letter(reason: str = "delivery_limit", count: int = 1, **headers) -> DeadLetterMessage:
    death = {"reason": reason, "queue": "pmtabounce.bounces", "count": count, "time": X_DEATH_TIME,
             "exchange": "pmtabounce.bounces", "routing-keys": ["bounce"]}
    return DeadLetterMessage(BODY, {"headers": {"x-death": [death], **headers}})


def test_a_worker_dead_letter_says_why_when_and_by_whom():
    letter = worker_letter()
    assert (letter.reason, letter.reason_text) == ("database_refused", "the database refused it: MySQL error 1644: no")
    assert letter.died_at == datetime.fromtimestamp(DEAD_AT, timezone.utc)
    assert (letter.deaths[0].by, letter.deaths[0].where) == ("worker", "host:42")
    assert (letter.source, letter.rcpt, letter.category) == ("bounces.csv:12", "ann@example.com", "bad-mailbox")


def test_a_broker_dead_letter_is_read_from_x_death():
    letter = broker_letter("delivery_limit", count=3)
    assert letter.reason == "delivery_limit"
    assert "pmtabounce.bounces" in letter.reason_text and "3 times" in letter.reason_text
    assert letter.died_at == X_DEATH_TIME.replace(tzinfo=timezone.utc)
    assert letter.source == "in-body.csv:7"  # no source headers: the body says where it came from


def test_our_verdict_comes_before_an_older_x_death():
    letter = worker_letter(**broker_letter("rejected").headers)
    assert [d.by for d in letter.deaths] == ["worker", "broker"]
    assert letter.reason == "database_refused"


def test_a_broker_death_after_a_replay_is_dated_by_the_replay():
    # RabbitMQ keeps the first time in an x-death entry it counts up; the message died after the replay.
    replayed_at = int(X_DEATH_TIME.replace(tzinfo=timezone.utc).timestamp()) + 3600
    letter = broker_letter(count=2, **{H_HISTORY: [{"replayed-at": replayed_at}], H_REPLAYS: 1})
    assert letter.died_at == datetime.fromtimestamp(replayed_at, timezone.utc)
    assert letter.replays == 1


def test_a_message_with_no_death_recorded():
    letter = DeadLetterMessage(b"x", {"timestamp": DEAD_AT})
    assert (letter.reason, letter.reason_text) == (UNKNOWN, "no reason recorded")
    assert letter.died_at == datetime.fromtimestamp(DEAD_AT, timezone.utc)
    assert DeadLetterMessage(b"x", {}).died_at is None


def test_poison_messages_get_a_stable_id_from_their_body():
    poison = DeadLetterMessage(b"\xff\xfe not json", {})
    assert poison.id == body_id(b"\xff\xfe not json") == DeadLetterMessage(b"\xff\xfe not json", {"headers": {}}).id
    assert poison.id != DeadLetterMessage(b"\xff\xfe not json!", {}).id
    assert (poison.record, poison.rcpt, poison.source) == ({}, "", "")
    assert worker_letter().id == "f" * 32


def test_identity_tells_same_id_different_body_apart():
    first = DeadLetterMessage(b"a", {"message_id": "same"})
    assert first.identity == DeadLetterMessage(b"a", {"message_id": "same", "headers": {"x": 1}}).identity
    assert first.identity != DeadLetterMessage(b"b", {"message_id": "same"}).identity


def test_header_values_of_odd_types_do_not_break_reading():
    letter = DeadLetterMessage(b"[1, 2]", {"headers": {H_DEAD_AT: b"1732000000", H_SOURCE_LINE: "x", H_REPLAYS: True,
                                                H_ERROR: "invalid_message", "x-death": ["not a table"]}})
    assert letter.died_at == datetime.fromtimestamp(DEAD_AT, timezone.utc)
    assert (letter.source_line, letter.replays, letter.record) == (None, 0, {})
    assert [d.by for d in letter.deaths] == ["worker"]
