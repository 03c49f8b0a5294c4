"""The producer's BatchingConnection writes exactly the bytes pika would, while marshaling a publish's method
frame once per exchange, routing key and flags instead of once per message."""

from __future__ import annotations

import pika
import pytest
from pika import spec
from pmtabounce.producer.connection import BatchingConnection


@pytest.fixture
def connection(monkeypatch):
    """A connection that never connects (its I/O loop never runs); what it would write is kept."""
    written: list[bytes] = []
    monkeypatch.setattr(pika.SelectConnection, "_output_marshaled_frames",
                        lambda self, frames: written.extend(frames))
    monkeypatch.setattr(BatchingConnection, "is_open", True)  # batched() writes only to an open connection
    conn = BatchingConnection(pika.ConnectionParameters("127.0.0.1", 1))
    conn._body_max_length = 4096 - 8  # set by Connection.Tune on a real connection
    conn.written = written
    yield conn
    conn.ioloop.close()


def properties(line: int) -> pika.BasicProperties:
    return pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=f"id{line}",
                                type="bounce", app_id="pmtabounce-producer", timestamp=1732000000 + line,
                                headers={"x-source-file": "bounces.csv", "x-source-line": line})


MESSAGES = [  # (exchange, routing key, mandatory, body): the cache must tell each method frame apart
    ("pmtabounce", "bounce", True, b'{"v":1,"line":1}'),
    ("pmtabounce", "bounce", True, b'{"v":1,"line":2}'),
    ("pmtabounce", "other", True, b'{"v":1,"line":3}'),
    ("pmtabounce-dead", "bounce", True, b'{"v":1,"line":4}'),
    ("pmtabounce", "bounce", False, b'{"v":1,"line":5}'),
    ("pmtabounce", "bounce", True, b"x" * 10000),  # more than one body frame: pika's own path
    ("pmtabounce", "bounce", True, b""),  # no body frame at all
]


def send(connection: BatchingConnection, line: int, exchange: str, key: str, mandatory: bool, body: bytes) -> None:
    publish = spec.Basic.Publish(exchange=exchange, routing_key=key, mandatory=mandatory)
    connection._send_method(1, publish, (properties(line), body))


def test_batched_publishes_are_the_bytes_pika_writes_one_by_one(connection):
    for line, message in enumerate(MESSAGES):
        send(connection, line, *message)
    one_by_one = b"".join(connection.written)
    connection.written.clear()

    with connection.batched():
        for line, message in enumerate(MESSAGES):
            send(connection, line, *message)
    assert b"".join(connection.written) == one_by_one
    assert len(connection._publish_frames) == 4  # one per (exchange, routing key, mandatory) met
