"""The decision stream's events: routing keys, stable ids and the CloudEvents 1.0 envelope (pure).

One event per decision that changed IEM or the domain guard (docs/events.md).
The envelope is CloudEvents 1.0 in structured content mode: the whole event
is one JSON object, `content-type: application/cloudevents+json`, as the
AMQP protocol binding's structured mode (section 3.1) allows. We write its
few attributes ourselves: the released `cloudevents` SDK (1.x) has HTTP and
Kafka bindings only, and its AMQP binding (in the unreleased 2.x core) maps
attributes onto AMQP 1.0 application properties, which pika's AMQP 0-9-1 does
not have.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone

import orjson

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"
DATA_SCHEMA = "urn:pmtabounce:events:1"  # the version of `data`'s shape; a change that breaks readers bumps it
TYPE_PREFIX = "org.pmtabounce."
SOURCE = "/pmtabounce"

# Every routing key the stream carries; `bounce.<decision>.<what>` with decision hard, soft or ignore.
BOUNCE_KEYS = tuple(f"bounce.{d}.{w}" for d in ("hard", "soft", "ignore") for w in ("disabled", "recorded", "held"))
ROUTING_KEYS = (*BOUNCE_KEYS, "complaint.unsubscribed", "undo.reverted", "guard.tripped", "guard.released",
                "guard.discarded")
# What a bounce outcome means on the stream; outcomes absent here changed nothing (no event).
BOUNCE_WHAT = {"disabled": "disabled", "applied": "recorded", "held": "held"}


def bounce_key(decision: str, outcome: str) -> str | None:
    """The routing key of a bounce's outcome (`bounce.hard.disabled`), None when it changed nothing."""
    what = BOUNCE_WHAT.get(outcome)
    return f"bounce.{decision}.{what}" if what else None


def event_id(*parts: object) -> str:
    """A stable id (UUID text) from what makes the event unique: the same parts give the same id on every
    retry and every re-send, so a receiver can drop repeats."""
    digest = hashlib.md5("\x1f".join(str(p) for p in parts).encode(), usedforsecurity=False).digest()
    return str(uuid.UUID(bytes=digest))


def envelope(key: str, ident: str, data: dict, when: float, subject: str = "") -> bytes:
    """The CloudEvents 1.0 JSON of one decision (`key` one of ROUTING_KEYS, `when` Unix seconds)."""
    event: dict[str, object] = {
        "specversion": SPEC_VERSION,
        "id": ident,
        "source": SOURCE,
        "type": TYPE_PREFIX + key,
        "time": datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "dataschema": DATA_SCHEMA,
    }
    if subject:
        event["subject"] = subject
    event["data"] = data
    return orjson.dumps(event)


def routing_key_of(body: bytes) -> str:
    """The routing key an envelope was written for (its `type` without our prefix)."""
    return str(orjson.loads(body)["type"]).removeprefix(TYPE_PREFIX)


def retry_delay(attempts: int, cap: float) -> float:
    """Seconds before try `attempts + 1`: 1, 2, 4, … doubling, at most `cap`."""
    return float(min(cap, 2.0 ** max(0, attempts - 1)))
