"""Noticing new accounting files: inotify (through watchdog) to react at once, a rescan for what it misses.

inotify misses files on network filesystems and when its queue overflows, and
it can be unavailable (the per-user watch limit): the periodic rescan covers
all of that. The observer runs in its own thread and only sets a flag, which
the producer's I/O loop reads; nothing crosses threads but that Event.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from ..common import metrics
from ..common.bouncedir import pending_files

log = logging.getLogger("pmtabounce.producer")


class _CsvArrived(FileSystemEventHandler):
    def __init__(self, changed: threading.Event) -> None:
        self._changed = changed

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = os.fsdecode(event.dest_path or event.src_path)
        if path.lower().endswith(".csv"):
            self._changed.set()


class DirectoryWatch:
    """Says when the directory is worth listing again, and lists it in processing order."""

    def __init__(self, directory: Path, rescan_seconds: float) -> None:
        self.directory = directory
        self._rescan_seconds = rescan_seconds
        self._changed = threading.Event()
        self._changed.set()  # list it once at start
        self._next_rescan = 0.0
        self._observer: BaseObserver | None = None

    def start(self) -> None:
        observer = Observer()
        try:
            observer.schedule(_CsvArrived(self._changed), str(self.directory), recursive=False)
            observer.start()
        except OSError as exc:
            log.warning("cannot watch %s for new files (%s); looking every %.0f s instead",
                        self.directory, exc, self._rescan_seconds)
            return
        self._observer = observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def poke(self) -> None:
        """List the directory again at the next chance."""
        self._changed.set()

    def due(self, now: float) -> bool:
        return self._changed.is_set() or now >= self._next_rescan

    def scan(self, now: float) -> list[Path]:
        """The pending files, oldest name first; also refreshes the backlog gauges."""
        self._changed.clear()
        self._next_rescan = now + self._rescan_seconds
        files = pending_files(self.directory)
        metrics.PENDING_FILES.set(len(files))
        metrics.OLDEST_PENDING_FILE_AGE.set(_oldest_age(files))
        return files


def _oldest_age(files: list[Path]) -> float:
    times = []
    for path in files:
        try:
            times.append(path.stat().st_mtime)
        except OSError:
            continue
    return max(0.0, time.time() - min(times)) if times else 0.0
