"""Every Prometheus metric, declared once with its meaning. Base units, `pmtabounce_` prefix,
and never an address or an id as a label.

The metrics are declared outside any registry; each role's health server
exports only its own (registry_for), so a worker never shows a pending-files
gauge of 0 that would read as truth on a dashboard.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

RECORDS_READ = Counter(
    "pmtabounce_records_read_total", "Bounce records read from accounting files", ["role"], registry=None
)
RECORDS_REJECTED = Counter(
    "pmtabounce_records_rejected_total", "Accounting rows rejected as unreadable (kept in NAME.rejected)",
    ["role"], registry=None,
)
RECORDS_PUBLISHED = Counter("pmtabounce_records_published_total", "Records published to RabbitMQ", registry=None)
RECORDS_CONFIRMED = Counter(
    "pmtabounce_records_confirmed_total", "Published records confirmed by RabbitMQ", registry=None
)
PUBLISH_NACKED = Counter(
    "pmtabounce_publish_nacked_total", "Publishes nacked or returned by RabbitMQ, then sent again", registry=None
)
FILES_DONE = Counter(
    "pmtabounce_files_done_total", "Accounting files finished (renamed or deleted)", ["role"], registry=None
)
RECORDS_PROCESSED = Counter(
    "pmtabounce_records_processed_total", "Records applied to IEM, by outcome and record (bounce, complaint)",
    ["outcome", "record"], registry=None,
)
RETRIES = Counter("pmtabounce_retries_total", "Retries after a transient failure", ["kind"], registry=None)
DEAD_LETTERED = Counter(
    "pmtabounce_dead_lettered_total", "Messages dead-lettered, by reason", ["reason"], registry=None
)
BATCH_DURATION = Histogram(
    "pmtabounce_batch_duration_seconds",
    "Time to apply one batch to IEM, commit included",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=None,
)
BATCH_SIZE = Histogram(
    "pmtabounce_batch_records", "Records per applied batch", buckets=(1, 10, 50, 100, 250, 500, 1000, 2500),
    registry=None,
)
OLDEST_PENDING_FILE_AGE = Gauge(
    "pmtabounce_oldest_pending_file_age_seconds", "Age of the oldest accounting file not yet done", registry=None
)
PENDING_FILES = Gauge("pmtabounce_pending_files", "Accounting files waiting in the bounce directory", registry=None)
LAST_SUCCESS = Gauge(
    "pmtabounce_last_success_timestamp_seconds", "Unix time of the last committed batch or confirmed file",
    registry=None,
)
GUARD_TRIPS = Counter(
    "pmtabounce_guard_trips_total", "Times the domain guard tripped a recipient domain", registry=None
)
GUARD_TRIPPED_DOMAINS = Gauge(
    "pmtabounce_guard_tripped_domains", "Recipient domains whose hard bounces the guard holds now (read every 10 s)",
    registry=None,
)
GUARD_HELD = Gauge(
    "pmtabounce_guard_held_records", "Records held by the domain guard, waiting for `guard release` or `discard`",
    registry=None,
)
GUARD_REWALKS = Counter(
    "pmtabounce_guard_rewalks_total",
    "Batches walked again with the guard's rows locked, because another worker's commit moved the counts",
    registry=None,
)
LEDGER_ROWS = Gauge(
    "pmtabounce_ledger_rows", "Rows in the ledger (InnoDB's estimate from information_schema, read every minute)",
    registry=None,
)
LEDGER_OLDEST = Gauge(
    "pmtabounce_ledger_oldest_row_timestamp_seconds",
    "Unix time the ledger's oldest row was applied (what prune keeps)",
    registry=None,
)
EVENTS_SENT = Counter(
    "pmtabounce_events_sent_total", "Outbox events delivered, by target (stream: RabbitMQ confirmed it; "
    "webhook: the receiver answered 2xx)", ["target"], registry=None,
)
EVENTS_RETRIED = Counter(
    "pmtabounce_events_retried_total", "Tries of an outbox event that did not deliver it and left it to try again",
    ["target"], registry=None,
)
EVENTS_PARKED_TOTAL = Counter(
    "pmtabounce_events_parked_total", "Outbox events parked after their last allowed try, by target",
    ["target"], registry=None,
)
EVENTS_WAITING = Gauge(
    "pmtabounce_outbox_waiting", "Outbox events committed and not yet delivered, by target (read every 10 s)",
    ["target"], registry=None,
)
EVENTS_PARKED = Gauge(
    "pmtabounce_outbox_parked", "Outbox events parked, waiting for `pmtabounce webhooks retry` or `drop`, by "
    "target (read every 10 s)", ["target"], registry=None,
)
EVENT_TARGETS = ("stream", "webhook")
for _metric in (EVENTS_SENT, EVENTS_RETRIED, EVENTS_PARKED_TOTAL, EVENTS_WAITING, EVENTS_PARKED):
    for _target in EVENT_TARGETS:  # every series from the start, so a rate() or an alert sees 0, not nothing
        _metric.labels(_target)
EVENT_METRICS = (EVENTS_SENT, EVENTS_RETRIED, EVENTS_PARKED_TOTAL, EVENTS_WAITING, EVENTS_PARKED)

# What each role that serves /metrics exports: what it does, nothing it does not.
ROLES = {
    "producer": (RECORDS_READ, RECORDS_REJECTED, RECORDS_PUBLISHED, RECORDS_CONFIRMED, PUBLISH_NACKED,
                 FILES_DONE, RETRIES, PENDING_FILES, OLDEST_PENDING_FILE_AGE, LAST_SUCCESS),
    "worker": (RECORDS_PROCESSED, RETRIES, DEAD_LETTERED, BATCH_DURATION, BATCH_SIZE, LAST_SUCCESS,
               GUARD_TRIPS, GUARD_TRIPPED_DOMAINS, GUARD_HELD, GUARD_REWALKS, LEDGER_ROWS, LEDGER_OLDEST,
               *EVENT_METRICS),
    "relay": (RETRIES, *EVENT_METRICS),
}


def start_at_zero(counter: Counter, label_sets: Iterable[str | tuple[str, ...]]) -> None:
    """Create `counter`'s series for these label values now, at 0. A series that first appears at 1 is never
    seen by increase() or rate() (no earlier sample): the first dead letter after a start would not alert."""
    for labels in label_sets:
        counter.labels(*((labels,) if isinstance(labels, str) else labels))


def registry_for(role: str) -> CollectorRegistry:
    """A registry with `role`'s metrics ("producer", "worker" or "relay") and the process/Python collectors.

    Raises KeyError for another role.
    """
    registry = CollectorRegistry(auto_describe=True)
    for collector in (*ROLES[role], PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry
