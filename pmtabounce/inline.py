"""`pmtabounce process`: what the original cron addon did, done right, with no broker.

Files in natural order; every record applied in batches, each batch one
transaction; a file is marked done only after all of its records are
committed. A crash and a re-run give the same database: the ledger absorbs
whatever is applied again.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from .common import metrics
from .common.accounting import AccountingFile, Record, RejectedRow, record_cells
from .common.bouncedir import LOCK_WAIT, DirectoryLock, RejectFile, mark_done, pending_files, require_workable
from .common.config import Settings
from .common.errors import FatalError, GaveUp, TransientError
from .common.guard import GuardSettings
from .common.shutdown import AbandonableCalls, CallAbandoned, stop_on_signals
from .read_ahead import ReadAhead
from .store import events
from .store.db import Tables
from .summary import Summary
from .worker.apply import BatchApplier, ReadsAhead

log = logging.getLogger("pmtabounce.process")


class StopRequested(Exception):
    """SIGTERM/SIGINT arrived: what was committed stays, the file in hand is not marked done."""


def process_directory(
    settings: Settings,
    directory: Path,
    *,
    applier: BatchApplier | None = None,
    on_batch: Callable[[int], None] | None = None,
    give_up_after: float | None = None,
    lock_wait: float = LOCK_WAIT,
) -> Summary:
    """Process every pending file of `directory` once; returns what was done.

    A database outage is waited out, for ever by default; with `give_up_after`
    seconds (a cron job that must end) it stops with a FatalError instead, the
    file in hand not marked done, so the next run takes it up again. Another
    process working the directory is waited for up to `lock_wait` seconds, then
    FatalError. A directory this process cannot read and write is a FatalError
    before anything is read or committed; a file that cannot be read is left
    for the next run and, once the others are done, named in a FatalError.
    The first SIGTERM/SIGINT lets the batch in hand commit (a database call silent for
    shutdown.GRACE_SECONDS is abandoned, uncommitted) and returns what was done, the file in hand
    not marked done; a second ends the process at once (common/shutdown.py).
    """
    require_workable(directory)
    lock = _take_lock(directory, lock_wait)
    stop = threading.Event()
    calls = AbandonableCalls("the database", log=log)
    applier = applier or BatchApplier(
        settings.mysql, Tables(settings.table_prefix), settings.policy,
        retry_max_wait=settings.retry_max_wait, give_up_after=give_up_after,
        guard=GuardSettings.from_settings(settings), sleep=_pause_until(stop, calls),
        events=events.from_settings(settings, Tables(settings.table_prefix)),
    )
    summary = Summary()
    ahead = ReadsAhead(applier)
    try:
        with stop_on_signals(stop, log=log, on_stop=calls.stop_requested,
                             then="finishing the batch in hand, then stopping (a second signal stops at once)"):
            _reach_database(applier, give_up_after, calls)
            failed = _process_files(pending_files(directory), applier, settings, summary, on_batch, give_up_after,
                                    calls, stop, ahead)
    except (StopRequested, CallAbandoned) as stopped:
        _say_stopped(stopped, summary)
        return summary
    finally:
        applier.close()
        ahead.close()
        lock.release()
    if failed:
        raise FatalError(f"could not process {', '.join(failed)} in {directory} (see above); they are not marked "
                         "done, the next run takes them up again")
    return summary


def _say_stopped(stopped: BaseException, summary: Summary) -> None:
    summary.stopped = True
    abandoned = ("a database call that did not answer was abandoned (nothing of it was committed; the next "
                 "run takes the file up again)")
    log.info("stopped on request after %d files; %s", summary.files,
             stopped if isinstance(stopped, StopRequested) else abandoned,
             extra={"event": "stopped", "files": summary.files})


def _pause_until(stop: threading.Event, calls: AbandonableCalls) -> Callable[[float], None]:
    """BatchApplier's retry pause: cut short by a stop request, which then ends the run (StopRequested)."""

    def pause(seconds: float) -> None:
        with calls.outside():
            if stop.wait(seconds):
                raise StopRequested("stopped while waiting for the database; the file in hand is not marked done, the "
                                    "next run takes it up again")

    return pause


def _take_lock(directory: Path, lock_wait: float) -> DirectoryLock:
    lock = DirectoryLock(directory)
    if not lock.acquire(wait=False):
        log.info("waiting up to %g s: %s is being worked by another process (pid %s)",
                 lock_wait, directory, lock.holder())
        if not lock.acquire(timeout=lock_wait):
            raise FatalError(f"{directory} is still being worked by another process (pid {lock.holder()}) after "
                             f"{lock_wait:g} s; nothing was done (--lock-wait sets how long to wait)")
    return lock


def _reach_database(applier: BatchApplier, give_up_after: float | None, calls: AbandonableCalls) -> None:
    """Before any file: a wrong login or table prefix is said now, not when the first file arrives."""
    try:
        with calls.call():
            applier.check_tables()
    except TransientError as exc:
        raise FatalError(f"gave up after {_waited(exc, give_up_after)} without the database ({exc}); no file was "
                         "touched and the next run takes them up") from None


def _waited(exc: TransientError, give_up_after: float | None) -> str:
    """The time really spent waiting for the database, as the operator reads it."""
    return f"{exc.waited:.1f} s" if isinstance(exc, GaveUp) else f"{give_up_after:g} s"


def _process_files(paths: list[Path], applier: BatchApplier, settings: Settings, summary: Summary,
                   on_batch: Callable[[int], None] | None, give_up_after: float | None,
                   calls: AbandonableCalls, stop: threading.Event, ahead: ReadsAhead) -> list[str]:
    """Each file in turn (`_process_one`); the names of those a file error stopped. Each file's reader is
    started by the reader of the file before once that one has read its file through (_Readers), so that
    the first batches of the next file are parsed (and read ahead) while the last ones of this file are
    applied; files are still applied, and marked done, one after the other."""
    failed: list[str] = []
    readers = _Readers(paths, settings, ahead)
    try:
        for number, path in enumerate(paths):
            if not _process_one(path, applier, settings, summary, on_batch, give_up_after, calls, stop, ahead,
                                readers.reader(number)):
                failed.append(path.name)
            readers.done(number)
    finally:
        readers.close()
    return failed


class _Readers:
    """The readers of `paths`: the file in hand's, and at most one more, the next file's, which the reader of
    the file in hand starts once it has read its file through (or the caller, coming to a file already read
    through). Memory and threads stay those of two files however many are pending."""

    def __init__(self, paths: list[Path], settings: Settings, ahead: ReadsAhead) -> None:
        self.paths, self.settings, self.ahead = paths, settings, ahead
        self._made: dict[int, ReadAhead] = {}
        self._current = 0  # the file in hand
        self._read_through: set[int] = set()  # files whose reader has reached their end
        self._lock = threading.Lock()  # the caller's thread and the readers' threads come here

    def reader(self, number: int) -> ReadAhead | None:
        """The reader of file `number`, the file in hand from now on; the next file's is started at once
        when this one's reader has already read its file through."""
        with self._lock:
            self._current = number
            reading = self._made_for(number)
            following = self._made_for(number + 1) if number in self._read_through else None
        if following is not None:
            following.__enter__()
        return reading

    def _made_for(self, number: int) -> ReadAhead | None:
        if number >= len(self.paths):
            return None
        if number not in self._made:
            made = self._made[number] = _reader(self.paths[number], self.settings, self.ahead)
            made.then = functools.partial(self._then, number)
        return self._made[number]

    def _then(self, number: int) -> ReadAhead | None:
        """Called by file `number`'s reader at its end: the next file's reader, to start, if `number` is the
        file in hand (else the caller starts it when it comes to `number`)."""
        with self._lock:
            self._read_through.add(number)
            return self._made_for(number + 1) if number == self._current else None

    def done(self, number: int) -> None:
        """File `number` is through: its reader, already left by process_file, is forgotten."""
        with self._lock:
            self._made.pop(number, None)
            self._read_through.discard(number)

    def close(self) -> None:
        """Stop every reader made and not done (a stop request, an error, a file started early); a reader
        that would start one later finds it closed."""
        with self._lock:
            made, self._made, self._current = list(self._made.values()), {}, len(self.paths)
        for reading in made:
            reading.__exit__(None, None, None)


def _reader(path: Path, settings: Settings, ahead: ReadsAhead | None) -> ReadAhead:
    """The reader thread of one file (not started), reading each batch ahead with `ahead`."""
    return ReadAhead(AccountingFile(path), settings.batch_size, prefetch=ahead.read if ahead is not None else None)


def _process_one(path: Path, applier: BatchApplier, settings: Settings, summary: Summary,
                 on_batch: Callable[[int], None] | None, give_up_after: float | None,
                 calls: AbandonableCalls, stop: threading.Event, ahead: ReadsAhead | None = None,
                 reading: ReadAhead | None = None) -> bool:
    """One file; False if a file error stopped it (logged; it stays for the next run), True otherwise.
    Raises StopRequested once a stop request has let the batch in hand commit."""
    if stop.is_set():
        raise StopRequested(f"{path.name} and the files after it were not started; the next run takes them up")
    try:
        process_file(path, applier, settings, summary, on_batch=on_batch, calls=calls, stop=stop, ahead=ahead,
                     reading=reading)
    except TransientError as exc:
        raise FatalError(
            f"gave up after {_waited(exc, give_up_after)} without the database ({exc}); {path.name} is not marked "
            "done and the next run takes it up again"
        ) from None
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and exc.filename is not None and Path(exc.filename) == path:
            log.info("%s was taken away since the directory was listed", path.name)
            return True
        log.error("%s could not be processed (%s); it is not marked done", path.name, exc)
        return False
    return True


def process_file(
    path: Path,
    applier: BatchApplier,
    settings: Settings,
    summary: Summary,
    *,
    on_batch: Callable[[int], None] | None = None,
    calls: AbandonableCalls | None = None,
    stop: threading.Event | None = None,
    ahead: ReadsAhead | None = None,
    reading: ReadAhead | None = None,
) -> None:
    """Every record of `path` applied in batches, then the file marked done (`settings.done_action`).

    `calls`: database calls a stop request may abandon; `stop`: checked after each committed batch,
    raising StopRequested with the file not marked done; `ahead`: reads each batch's lock-free part on the
    reader thread (worker/apply.py Ahead), or None; `reading`: the file's reader, perhaps started already
    (by default one of its own). Raises TransientError (gave up), FatalError, OSError.
    """
    reading = reading or _reader(path, settings, ahead)
    source = reading.source
    calls = calls or AbandonableCalls("the database", log=log)
    rejects = RejectFile(path, None)
    batch: list[Record] = []

    def flush() -> None:
        with calls.call():
            result = applier.apply(batch, ahead=reading.ahead)
        summary.add(result.outcomes)
        for record, reason in result.failed:
            log.error("%s line %d: the database refused this record: %s", path.name, record.source_line, reason,
                      extra={"event": "database_refused", "file": path.name, "line": record.source_line})
            reject(RejectedRow(path.name, record.source_line, f"database refused: {reason}",
                               record_cells(record, source.header)))
            summary.failed += 1
        if on_batch:
            on_batch(len(batch))
        batch.clear()
        if stop is not None and stop.is_set():
            raise StopRequested(f"every batch read from {path.name} is committed; it is not marked done and the "
                                "next run takes it up again")

    def reject(row: RejectedRow) -> None:
        rejects.header = source.header or []
        rejects.add(row)

    try:
        with reading:
            _apply_items(reading, batch, settings.batch_size, summary, flush, reject, path)
    finally:
        rejects.close()
        log.debug("%s read ahead: the database side waited %.0f ms for records, the reader %.0f ms for the "
                  "database; batches read ahead so far: %d used, %d refused", path.name,
                  reading.consumer_waited * 1000, reading.reader_waited * 1000, applier.ahead_used,
                  applier.ahead_refused)
    _file_done(path, settings, summary, source, rejects)


def _file_done(path: Path, settings: Settings, summary: Summary, source: AccountingFile, rejects: RejectFile) -> None:
    """Every record of `path` is committed: mark it done (`settings.done_action`), count it and say so."""
    try:
        mark_done(path, settings.done_action)
    except OSError as exc:
        raise FatalError(f"every record of {path} is committed, but it cannot be "
                         f"{'deleted' if settings.done_action == 'delete' else 'renamed'} ({exc.strerror or exc}); "
                         "the next run finds its records already applied") from None
    summary.files += 1
    metrics.FILES_DONE.labels("process").inc()
    counts = source.counts
    note = f"; {rejects.count} rejected rows kept in {rejects.path.name}" if rejects.count else ""
    log.info(
        "%s done: %d bounces, %d complaints, %d other rows skipped%s",
        path.name, counts.bounces, counts.complaints, counts.skipped, note,
        extra={"event": "file_done", "file": path.name, "bounces": counts.bounces, "complaints": counts.complaints,
               "skipped": counts.skipped, "rejected": rejects.count},
    )


def _apply_items(items: ReadAhead, batch: list[Record], batch_size: int, summary: Summary,
                 flush: Callable[[], None], reject: Callable[[RejectedRow], None], path: Path) -> None:
    """The file's items in order: a rejected row kept and counted, records flushed a batch at a time."""
    read = metrics.RECORDS_READ.labels("process")
    for item in items:
        if isinstance(item, RejectedRow):
            log.error("%s line %d: rejected: %s", path.name, item.source_line, item.reason,
                      extra={"event": "rejected", "file": path.name, "line": item.source_line})
            reject(item)
            summary.rejected += 1
            metrics.RECORDS_REJECTED.labels("process").inc()
            continue
        batch.append(item)
        summary.records += 1
        read.inc()
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
