"""The export file: one JSON object per dead letter, per line, that gives back the very same message.

The body is kept as its exact text when it is UTF-8 (so an operator can read
and fix it) and as base64 otherwise; either way it comes back byte for byte.
AMQP header values JSON has no type for are tagged: {"$timestamp": 1700000000},
{"$bytes": "<base64>"}, {"$decimal": "1.5"}; a table that could be mistaken for
a tag is wrapped in {"$table": {...}}.
"""

from __future__ import annotations

import base64
import calendar
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

import orjson

from .message import X_DELIVERY_COUNT, DeadLetterMessage

FORMAT = "pmtabounce-dead-letter/1"
_TAGS = ("$timestamp", "$bytes", "$decimal", "$table")


class ExportFileError(ValueError):
    """A line of an export file that cannot be turned back into a message."""


def to_line(letter: DeadLetterMessage, queue: str) -> bytes:
    """One dead letter as one JSON line (with the newline)."""
    try:
        body, encoding = letter.body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        body, encoding = base64.b64encode(letter.body).decode("ascii"), "base64"
    properties = dict(letter.properties)
    headers = {k: v for k, v in letter.headers.items() if k != X_DELIVERY_COUNT}
    if headers or "headers" in properties:
        properties["headers"] = headers
    entry = {
        "format": FORMAT,
        "message_id": letter.id,
        "queue": queue,
        "body": body,
        "body_encoding": encoding,
        "properties": {name: amqp_to_json(value) for name, value in properties.items()},
    }
    return orjson.dumps(entry) + b"\n"


def from_line(line: bytes | str, number: int = 0) -> DeadLetterMessage:
    """A line written by `to_line` back to the message (body and properties; no delivery tag)."""
    try:
        entry = orjson.loads(line)
        encoding = entry.get("body_encoding", "utf-8")
        if encoding == "base64":
            body = base64.b64decode(entry["body"], validate=True)
        elif encoding == "utf-8":
            body = entry["body"].encode("utf-8")
        else:
            raise ExportFileError(f"line {number}: unknown body_encoding {encoding!r}")
        properties = {name: json_to_amqp(value) for name, value in (entry.get("properties") or {}).items()}
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        if isinstance(exc, ExportFileError):
            raise
        raise ExportFileError(f"line {number}: not a dead letter written by `dlq export` ({exc})") from None
    return DeadLetterMessage(body, properties)


def read_lines(path: Path) -> Iterator[DeadLetterMessage]:
    """Every dead letter in an export file, in file order; blank lines are skipped."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield from_line(line, number)


def amqp_to_json(value):
    """An AMQP field value (as pika decodes it) to plain JSON, tagging what JSON cannot say."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return {"$timestamp": calendar.timegm(moment.utctimetuple())}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        return int(value)  # pika's `long` is an int subclass
    if isinstance(value, dict):
        table = {str(k): amqp_to_json(v) for k, v in value.items()}
        return {"$table": table} if len(table) == 1 and next(iter(table)) in _TAGS else table
    if isinstance(value, (list, tuple)):
        return [amqp_to_json(v) for v in value]
    raise TypeError(f"an AMQP value of type {type(value).__name__} has no JSON form")


def json_to_amqp(value):
    """The inverse of amqp_to_json: what pika will encode as the same AMQP value."""
    if isinstance(value, list):
        return [json_to_amqp(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (tag, inner), = value.items()
        if tag == "$timestamp":
            return datetime.fromtimestamp(int(inner), timezone.utc)
        if tag == "$bytes":
            return base64.b64decode(inner, validate=True)
        if tag == "$decimal":
            return Decimal(inner)
        if tag == "$table":
            return {k: json_to_amqp(v) for k, v in inner.items()}
    return {k: json_to_amqp(v) for k, v in value.items()}


class ExportWriter:
    """Appends lines to an export file; `sync()` returns once they are on disk.

    `dlq export --take` removes a message from the queue only after sync()
    covered its line, so a crash at any point loses nothing.
    """

    def __init__(self, path: Path, *, append: bool = False) -> None:
        self.path = path
        self._handle: BinaryIO = path.open("ab" if append else "xb")
        _sync_directory(path)
        self.written = 0

    def write(self, letter: DeadLetterMessage, queue: str) -> None:
        self._handle.write(to_line(letter, queue))
        self.written += 1

    def sync(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self.sync()
        self._handle.close()

    def __enter__(self) -> ExportWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _sync_directory(path: Path) -> None:
    """A new file's name is durable only once its directory is synced."""
    descriptor = os.open(path.resolve().parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
