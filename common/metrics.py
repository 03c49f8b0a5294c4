"""Every Prometheus metric, declared once with its meaning. Base units, `pmtabounce_` prefix,
and never an address or an id as a label."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS_READ = Counter(
    "pmtabounce_records_read_total", "Bounce records read from accounting files", ["role"]
)
RECORDS_REJECTED = Counter(
    "pmtabounce_records_rejected_total", "Accounting rows rejected as unreadable (kept in NAME.rejected)", ["role"]
)
RECORDS_PUBLISHED = Counter("pmtabounce_records_published_total", "Records published to RabbitMQ")
RECORDS_CONFIRMED = Counter("pmtabounce_records_confirmed_total", "Published records confirmed by RabbitMQ")
PUBLISH_NACKED = Counter("pmtabounce_publish_nacked_total", "Publishes nacked or returned by RabbitMQ, then sent again")
FILES_DONE = Counter("pmtabounce_files_done_total", "Accounting files finished (renamed or deleted)", ["role"])
RECORDS_PROCESSED = Counter(
    "pmtabounce_records_processed_total", "Records applied to IEM, by outcome and record (bounce, complaint)",
    ["outcome", "record"],
)
RETRIES = Counter("pmtabounce_retries_total", "Retries after a transient failure", ["kind"])
DEAD_LETTERED = Counter("pmtabounce_dead_lettered_total", "Messages dead-lettered, by reason", ["reason"])
BATCH_DURATION = Histogram(
    "pmtabounce_batch_duration_seconds",
    "Time to apply one batch to IEM, commit included",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    "pmtabounce_batch_records", "Records per applied batch", buckets=(1, 10, 50, 100, 250, 500, 1000, 2500)
)
OLDEST_PENDING_FILE_AGE = Gauge(
    "pmtabounce_oldest_pending_file_age_seconds", "Age of the oldest accounting file not yet done"
)
PENDING_FILES = Gauge("pmtabounce_pending_files", "Accounting files waiting in the bounce directory")
LAST_SUCCESS = Gauge(
    "pmtabounce_last_success_timestamp_seconds", "Unix time of the last committed batch or confirmed file"
)
GUARD_TRIPS = Counter("pmtabounce_guard_trips_total", "Times the domain guard tripped a recipient domain")
GUARD_TRIPPED_DOMAINS = Gauge(
    "pmtabounce_guard_tripped_domains", "Recipient domains whose hard bounces the guard holds now (at the last batch)"
)
GUARD_HELD = Gauge(
    "pmtabounce_guard_held_records", "Records held by the domain guard, waiting for `guard release` or `discard`"
)
GUARD_REWALKS = Counter(
    "pmtabounce_guard_rewalks_total",
    "Batches walked again with the guard's rows locked, because another worker's commit moved the counts",
)
