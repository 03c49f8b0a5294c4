"""`process` reads the next batch while the database applies the one in hand.

A thread parses the accounting file (CSV, records, fingerprints: the
Python half of a batch's cost) into chunks of at most one batch of records,
each with the rejected rows met among them, in file order, through a queue of
`depth` chunks: memory stays a few batches whatever the file's size, and the
database and the parser each get a core. Everything the file does to the
database, its rejects file and its summary is still done by the caller's
thread, in file order, exactly as without the thread.

With `prefetch`, the thread also reads from the database, on a connection of
its own, what each chunk's batch reads without locks (worker/apply.py
ReadsAhead): the database answers it while the batches before are applied.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any

from .common.accounting import AccountingFile, Record, RejectedRow

Item = Record | RejectedRow
_END = object()  # the file is read through: its counts are final
# While the reader parses, the database side comes back from every socket wait needing the interpreter
# lock; Python hands it over only every switch interval (5 ms by default), 20-odd times a batch.
SWITCH_INTERVAL = 0.0005


_switching = [0, 0.0]  # readers running, and the interpreter's switch interval before the first
_SWITCHING = threading.Lock()  # readers start and stop on several threads


def _fast_switches(change: int) -> None:
    """SWITCH_INTERVAL while any reader runs (two overlap when one starts the next file's); then the
    interval as it was."""
    with _SWITCHING:
        if change > 0 and _switching[0] == 0:
            _switching[1] = sys.getswitchinterval()
            sys.setswitchinterval(min(_switching[1], SWITCH_INTERVAL))
        _switching[0] += change
        if _switching[0] == 0:
            sys.setswitchinterval(_switching[1])


class ReadAhead:
    """Iterate `source`'s items, read by a thread `depth` chunks of `batch_size` records ahead.

    An error reading the file (OSError, and anything else the parser raises) is raised by the
    iteration where the file's items stop, as a plain read would. Use as a context manager: leaving
    the block, early or not, stops the thread. `consumer_waited` and `reader_waited` (seconds) say
    how long the caller waited for records and the thread for room in the queue: the overlap.

    `prefetch(records)`, called by the thread with each chunk's records, returns what the caller finds in
    `ahead` while it iterates that chunk (None before the first, or without `prefetch`). A chunk the caller
    is already waiting for (a file's first) is handed over at once, without: it would only wait longer.
    """

    def __init__(self, source: AccountingFile, batch_size: int, depth: int = 2,
                 prefetch: Callable[[Sequence[Record]], Any] | None = None) -> None:
        """`then`, when set, is called by the thread once the file is read through, and what it returns (the
        next file's reader) started (entered): its first chunks are then ready, and read ahead, when the caller
        comes to it. Whoever made that reader exits it."""
        self.source = source
        self.then: Callable[[], ReadAhead | None] | None = None
        self._state = threading.Lock()  # __enter__ may come from another reader's thread, __exit__ from the caller's
        self._started = self._closed = False
        self.batch_size = max(1, batch_size)
        self.prefetch = prefetch
        self.ahead: Any = None
        self._consumer_waiting = threading.Event()
        self.consumer_waited = 0.0
        self.reader_waited = 0.0
        self._chunks: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._read, name=f"read {source.name}", daemon=True)

    def __enter__(self) -> ReadAhead:
        """Start the thread, once (a reader started early by the file before it is entered again by its
        caller); never after __exit__."""
        with self._state:
            if not (self._started or self._closed):
                self._started = True
                _fast_switches(+1)
                self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        with self._state:  # left once only (a caller and a closing run both may leave it)
            running, self._closed = self._started and not self._closed, True
        if not running:
            return
        self._cancel.set()
        try:  # a reader blocked on a full queue sees the cancel at its next try
            while True:
                self._chunks.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=1.0)
        _fast_switches(-1)

    def __iter__(self) -> Iterator[Item]:
        while True:
            started = time.perf_counter()
            self._consumer_waiting.set()
            chunk = self._chunks.get()
            self._consumer_waiting.clear()
            self.consumer_waited += time.perf_counter() - started
            if chunk is _END:
                return
            if isinstance(chunk, BaseException):
                raise chunk
            chunk, self.ahead = chunk
            yield from chunk

    def _read(self) -> None:
        chunk: list[Item] = []
        records = 0
        try:
            for item in self.source:
                chunk.append(item)
                if not isinstance(item, RejectedRow):
                    records += 1
                    if records >= self.batch_size:
                        if not self._put(self._with_ahead(chunk)):
                            return
                        chunk, records = [], 0
            if chunk and not self._put(self._with_ahead(chunk)):
                return
            following = self.then() if self.then is not None and not self._cancel.is_set() else None
            if following is not None:
                following.__enter__()
            self._put(_END)
        except BaseException as exc:  # handed to the caller's thread, which raises it where the file stops
            self._put(exc)

    def _with_ahead(self, chunk: list[Item]) -> tuple[list[Item], Any]:
        if self.prefetch is None or self._cancel.is_set() or (
                self._consumer_waiting.is_set() and self._chunks.empty()):
            return chunk, None
        return chunk, self.prefetch([item for item in chunk if not isinstance(item, RejectedRow)])

    def _put(self, chunk: object) -> bool:
        """Into the queue once there is room; False when the caller has left (nothing more is wanted)."""
        started = time.perf_counter()
        try:
            while not self._cancel.is_set():
                try:
                    self._chunks.put(chunk, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False
        finally:
            self.reader_waited += time.perf_counter() - started
