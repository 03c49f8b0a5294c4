"""Reading ahead in a thread: parsing a file is Python work, applying a batch is mostly waiting
for MySQL (the socket read lets go of the GIL), so the two overlap."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(items: Iterable[T], chunk: int, depth: int = 2) -> Iterator[list[T]]:
    """Lists of up to `chunk` items, in order, read by a thread at most `depth` lists ahead."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():
            try:
                ready.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            batch: list[T] = []
            for item in items:
                batch.append(item)
                if len(batch) >= chunk:
                    if not put(batch):
                        return
                    batch = []
            if batch and not put(batch):
                return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failed(exc))

    reader = threading.Thread(target=read, name="pmtabounce-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            value = ready.get()
            if value is _DONE:
                return
            if isinstance(value, _Failed):
                raise value.error
            yield value
    finally:
        stop.set()
        reader.join()
