"""Moving dead letters out to a file and back in, without losing or doubling one."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .export_file import ExportWriter
from .message import X_DELIVERY_COUNT, DeadLetterMessage
from .replay import Republisher

SYNC_EVERY = 200  # lines per fsync when taking messages out: each is removed only after its fsync


def export_letters(
    queue: Republisher, letters: Sequence[DeadLetterMessage], writer: ExportWriter, queue_name: str, *,
    take: bool, stop: threading.Event | None = None,
) -> int:
    """Write the letters; with `take`, remove each from the queue once its line is on disk.

    Returns how many were written (and, with `take`, removed). A stop request ends
    it between two chunks, with every written line synced and its message removed.
    """
    written = 0
    for start in range(0, len(letters), SYNC_EVERY):
        if stop is not None and stop.is_set():
            break
        chunk = letters[start:start + SYNC_EVERY]
        for letter in chunk:
            writer.write(letter, queue_name)
        writer.sync()
        if take:
            for letter in chunk:
                queue.remove(letter)
        written += len(chunk)
    return written


@dataclass
class ImportResult:
    published: int = 0
    already_there: int = 0


def import_letters(
    queue: Republisher, letters: Iterable[DeadLetterMessage], present: Iterable[DeadLetterMessage], exchange: str
) -> ImportResult:
    """Publish the file's letters into the dead-letter queue, each confirmed before the next.

    A letter whose identity (id and body) is already in the queue is not published
    again, counting copies: importing the same file twice, or after an interrupted
    `export --take`, leaves one of each.
    """
    in_queue = Counter(letter.identity for letter in present)
    result = ImportResult()
    for letter in letters:
        if in_queue[letter.identity] > 0:
            in_queue[letter.identity] -= 1
            result.already_there += 1
            continue
        headers = {k: v for k, v in letter.headers.items() if k != X_DELIVERY_COUNT}
        properties = {**letter.properties, "headers": headers} if "headers" in letter.properties else letter.properties
        queue.publish(exchange, letter.body, properties)
        result.published += 1
    return result
