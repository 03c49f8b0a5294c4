"""`pmtabounce producer [--once] [DIR]`: the directory lock, signals and health around the producer's loop."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..common import health, metrics
from ..common.bouncedir import DirectoryLock, require_workable
from ..common.config import Settings
from ..common.shutdown import stop_on_signals
from .loop import Producer

log = logging.getLogger("pmtabounce.producer")


def run_producer(settings: Settings, directory: Path, *, once: bool = False) -> int:
    """Publish the bounce directory until SIGTERM/SIGINT (or, with `once`, until it is empty); the exit code.

    FatalError at once if the directory cannot be read and written (a file is marked done there)."""
    require_workable(directory)
    with stop_on_signals(log=log, then="reading no more, waiting for outstanding confirms, then exiting") as stop:
        return _run(settings, directory, once, stop)


def _run(settings: Settings, directory: Path, once: bool, stop: threading.Event) -> int:
    producer: Producer | None = None

    def not_ready() -> str | None:
        if producer is None:
            return f"waiting for the lock on {directory}"
        return None if producer.ready else "not connected to RabbitMQ (publishing is paused)"

    metrics.start_at_zero(metrics.RETRIES, ("broker",))  # its other labelled counters start at 0 on import
    server = health.serve(settings.metrics_port, not_ready, metrics.registry_for("producer"))
    lock = DirectoryLock(directory)
    try:
        if not _take_lock(lock, directory, stop):
            return 0
        producer = Producer(settings, directory, once=once, stop=stop)
        return producer.run()
    finally:
        lock.release()
        if server is not None:
            server.shutdown()
            server.server_close()


def _take_lock(lock: DirectoryLock, directory: Path, stop: threading.Event) -> bool:
    """Wait while another process works the directory; False if told to stop meanwhile."""
    if lock.acquire(wait=False):
        return True
    log.info("waiting: %s is being worked by another process (pid %s); taking over when it stops",
             directory, lock.holder())
    if not lock.acquire(wait=True, should_stop=stop.is_set):
        log.info("stopped while waiting for %s", directory)
        return False
    log.info("took over %s", directory)
    return True

