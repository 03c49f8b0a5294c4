"""The one queue message type: a bounce record as orjson, with a schema version.

Queue content is untrusted: `decode` validates every field and raises
InvalidMessage with a reason an operator can read.
"""

from __future__ import annotations

import orjson

from .errors import InvalidMessage
from .record import BOUNCE_TYPES, INT32_MAX, BounceRecord

SCHEMA_VERSION = 1
CONTENT_TYPE = "application/json"
MAX_BODY = 256 * 1024


def encode(record: BounceRecord) -> bytes:
    return orjson.dumps(
        {
            "v": SCHEMA_VERSION,
            "type": record.type,
            "time": record.time_logged,
            "rcpt": record.rcpt,
            "status": record.dsn_status,
            "diag": record.dsn_diag,
            "category": record.category,
            "list_ids": list(record.list_ids),
            "statid": record.statid,
            "file": record.source_file,
            "line": record.source_line,
        }
    )


def decode(body: bytes) -> BounceRecord:
    if len(body) > MAX_BODY:
        raise InvalidMessage(f"message body is {len(body)} bytes, more than {MAX_BODY}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"message body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidMessage("message body is not a JSON object")
    if type(data.get("v")) is not int or data["v"] != SCHEMA_VERSION:  # true and 1.0 equal 1 in Python
        raise InvalidMessage(f"unknown schema version {data.get('v')!r} (this worker reads {SCHEMA_VERSION})")
    kind = _field(data, "type", str)
    if kind not in BOUNCE_TYPES:
        raise InvalidMessage(f"record type {kind!r} is not a bounce (b or rb)")
    rcpt = _field(data, "rcpt", str).strip()
    if not rcpt or len(rcpt) > 255:
        raise InvalidMessage("rcpt is empty or longer than 255 characters")
    list_ids = _field(data, "list_ids", list)
    if not all(type(i) is int and 0 < i <= INT32_MAX for i in list_ids):
        raise InvalidMessage("list_ids must be positive whole numbers")
    return BounceRecord(
        type=kind,
        time_logged=_number(data, "time", 1),
        rcpt=rcpt,
        dsn_status=_field(data, "status", str),
        dsn_diag=_field(data, "diag", str),
        category=_field(data, "category", str),
        list_ids=tuple(sorted(set(list_ids))),
        statid=_number(data, "statid", 0),
        source_file=_field(data, "file", str),
        source_line=_number(data, "line", 0),
    )


def _field(data: dict, name: str, kind: type):
    value = data.get(name)
    if not isinstance(value, kind):
        raise InvalidMessage(f"field {name!r} is missing or not a {kind.__name__}")
    return value


def _number(data: dict, name: str, low: int) -> int:
    value = data.get(name)
    if type(value) is not int or not low <= value <= INT32_MAX:
        raise InvalidMessage(f"field {name!r} must be a whole number from {low} to {INT32_MAX}")
    return value
