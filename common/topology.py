"""RabbitMQ names and arguments, as data: `setup` declares them, everyone else refers to them."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Our own headers on messages.
H_SOURCE_FILE = "x-pmtabounce-file"
H_SOURCE_LINE = "x-pmtabounce-line"
H_REASON = "x-pmtabounce-reason"  # why a worker dead-lettered it
H_ERROR = "x-pmtabounce-error"  # short class of the failure: invalid, permanent, ...
H_DEAD_AT = "x-pmtabounce-dead-at"  # Unix seconds
H_WORKER = "x-pmtabounce-worker"  # host:pid that dead-lettered it
H_REPLAYS = "x-pmtabounce-replays"  # how often the DLQ tool replayed it
H_HISTORY = "x-pmtabounce-history"  # earlier deaths, moved aside by the DLQ tool on replay


@dataclass(frozen=True)
class Topology:
    """Exchange and queue names under one prefix, so they read well in the management console."""

    prefix: str = "pmtabounce"
    delivery_limit: int = 20

    @property
    def exchange(self) -> str:
        return f"{self.prefix}.bounces"

    @property
    def queue(self) -> str:
        return f"{self.prefix}.bounces"

    @property
    def routing_key(self) -> str:
        return "bounce"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.dead-letter"

    @property
    def dead_queue(self) -> str:
        return f"{self.prefix}.dead-letter"

    @property
    def migration_queue(self) -> str:
        """Holds the work queue's messages while `setup` re-creates it without x-arguments."""
        return f"{self.prefix}.bounces.migrating"

    @property
    def policy_name(self) -> str:
        return f"{self.prefix}.bounces"

    def policy_pattern(self) -> str:
        """The work queue and its migration queue, nothing else (policy patterns are regular expressions)."""
        return f"^{re.escape(self.prefix)}\\.bounces(\\.migrating)?$"

    def policy_definition(self) -> dict:
        """What the broker does with a message nobody can handle, as a policy: changeable without a new queue.

        A quorum queue counts deliveries: a message that kills workers again and again is
        dead-lettered after `delivery_limit` tries. At-least-once dead-lettering (RabbitMQ 3.10+)
        keeps it until the dead-letter queue confirms, and needs overflow=reject-publish.
        """
        return {
            "delivery-limit": self.delivery_limit,
            "dead-letter-exchange": self.dead_exchange,
            "dead-letter-routing-key": self.routing_key,
            "dead-letter-strategy": "at-least-once",
            "overflow": "reject-publish",
        }

    @property
    def events_exchange(self) -> str:
        """The decision stream (docs/events.md): a topic exchange, routing keys as common/events.py names them."""
        return f"{self.prefix}.events"

    @property
    def unrouted_exchange(self) -> str:
        """The decision stream's alternate exchange: what no binding of the stream takes goes here."""
        return f"{self.prefix}.events.unrouted"

    @property
    def unrouted_queue(self) -> str:
        """Keeps every event no operator's queue is bound for, so none is lost before someone binds."""
        return f"{self.prefix}.events.unrouted"

    def events_arguments(self) -> dict:
        """RabbitMQ's alternate exchange: a message no binding routes goes there instead of being dropped."""
        return {"alternate-exchange": self.unrouted_exchange}

    def queue_arguments(self) -> dict:
        """Only what a policy cannot set: the queue type is fixed at declaration."""
        return {"x-queue-type": "quorum"}

    def dead_queue_arguments(self) -> dict:
        return {"x-queue-type": "quorum"}
