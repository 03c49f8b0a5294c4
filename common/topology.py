"""RabbitMQ names and arguments, as data: `setup` declares them, everyone else refers to them."""

from __future__ import annotations

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

    def queue_arguments(self) -> dict:
        # A quorum queue counts deliveries: a message that kills workers again
        # and again is dead-lettered by the broker after `delivery_limit` tries.
        # at-least-once dead-lettering (3.10+) keeps it until the DLQ confirms;
        # it needs overflow=reject-publish.
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_exchange,
            "x-dead-letter-routing-key": self.routing_key,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def dead_queue_arguments(self) -> dict:
        return {"x-queue-type": "quorum"}
