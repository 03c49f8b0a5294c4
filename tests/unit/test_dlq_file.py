"""The export file gives back the very same message: body bytes, every property, every header type."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import orjson
import pytest

from pmtabounce.dlq.export_file import (
    ExportFileError,
    ExportWriter,
    amqp_to_json,
    from_line,
    json_to_amqp,
    read_lines,
    to_line,
)
from pmtabounce.dlq.message import DeadLetterMessage

HEADERS = {
    "x-death": [{"count": 2, "reason": "delivery_limit", "queue": "q", "routing-keys": ["bounce"],
                 "time": datetime(2024, 11, 19, 10, 0, 5, tzinfo=timezone.utc)}],
    "x-pmtabounce-line": 12,
    "big": 2**40,
    "ratio": 0.25,
    "flag": False,
    "nothing": None,
    "raw": b"\x00\xff\x10",
    "money": Decimal("12.50"),
    "looks-like-a-tag": {"$bytes": "not really"},
    "text": "café ✓",
}
PROPERTIES = {"content_type": "application/json", "delivery_mode": 2, "message_id": "m1", "timestamp": 1_700_000_000,
              "priority": 3, "correlation_id": "c", "app_id": "pmtabounce", "type": "bounce", "headers": HEADERS}


@pytest.mark.parametrize("body", [
    b'{"v":1,"rcpt":"ann@example.com"}',
    "ünïcödé text\n\ttabs".encode(),
    b"\xff\xfe\x00 not utf-8",
    b"",
])
def test_a_line_gives_back_the_same_body_and_properties(body):
    line = to_line(DeadLetterMessage(body, PROPERTIES), "dlq")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = from_line(line)
    assert back.body == body
    assert back.properties == PROPERTIES


def test_text_bodies_stay_readable_and_others_are_base64():
    readable = orjson.loads(to_line(DeadLetterMessage(b'{"rcpt":"a@b"}', {}), "dlq"))
    assert (readable["body"], readable["body_encoding"]) == ('{"rcpt":"a@b"}', "utf-8")
    binary = orjson.loads(to_line(DeadLetterMessage(b"\xff", {}), "dlq"))
    assert (binary["body"], binary["body_encoding"]) == ("/w==", "base64")


def test_the_queue_delivery_counter_is_not_exported():
    line = to_line(DeadLetterMessage(b"x", {"headers": {"x-delivery-count": 4, "keep": 1}}), "dlq")
    assert from_line(line).headers == {"keep": 1}


def test_the_line_names_the_message_even_without_a_message_id():
    entry = orjson.loads(to_line(DeadLetterMessage(b"poison", {}), "dlq"))
    assert entry["message_id"].startswith("body-") and "message_id" not in entry["properties"]


@pytest.mark.parametrize("value", [
    {"$timestamp": 5}, {"$table": {"$bytes": "x"}}, {"a": {"$decimal": "1.5"}}, [{"$bytes": "AA=="}], {"$other": 1},
])
def test_tagged_json_survives_a_round_trip(value):
    assert amqp_to_json(json_to_amqp(value)) == value


@pytest.mark.parametrize("line, message", [
    (b"not json", "not a dead letter"),
    (b'{"body": "x", "body_encoding": "rot13"}', "unknown body_encoding"),
    (b'{"body": "***", "body_encoding": "base64"}', "not a dead letter"),
    (b'{"properties": {}}', "not a dead letter"),
])
def test_lines_that_are_not_ours_are_refused_with_the_line_number(line, message):
    with pytest.raises(ExportFileError, match=f"line 3: {message}"):
        from_line(line, 3)


def test_the_writer_never_overwrites_unless_asked_to_append(tmp_path):
    path = tmp_path / "out.jsonl"
    with ExportWriter(path) as writer:
        writer.write(DeadLetterMessage(b"one", {}), "dlq")
    with pytest.raises(FileExistsError):
        ExportWriter(path)
    with ExportWriter(path, append=True) as writer:
        writer.write(DeadLetterMessage(b"two", {}), "dlq")
    path.write_bytes(path.read_bytes() + b"\n\n")
    assert [letter.body for letter in read_lines(path)] == [b"one", b"two"]
