"""How far a file got, so a restart after kill -9 republishes as little as possible.

FileProgress is pure bookkeeping: items (published records and rejected rows)
are added in line order and settled in any order; its prefix is the last line
such that it and every item before it is settled. The sidecar file
`.NAME.pmtabounce-checkpoint` keeps that prefix, with the size NAME.rejected
had at that point, across restarts.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import orjson

from ..common.accounting import open_no_follow

log = logging.getLogger("pmtabounce.producer")

SUFFIX = ".pmtabounce-checkpoint"
VERSION = 1


class Pending:
    """One item after the prefix: where it starts, and NAME.rejected's size once it is handled."""

    __slots__ = ("line", "rejected_bytes", "settled")

    def __init__(self, line: int, rejected_bytes: int, settled: bool = False) -> None:
        self.line = line
        self.rejected_bytes = rejected_bytes
        self.settled = settled


class FileProgress:
    """The contiguous settled prefix of one file's items.

    `line` and `rejected_bytes` describe the prefix; `backlog` counts the items
    after it (in flight, or settled but waiting for an earlier one), which is
    what bounds memory and what a restart would send again.
    """

    def __init__(self, line: int = 0, rejected_bytes: int = 0) -> None:
        self.line = line
        self.rejected_bytes = rejected_bytes
        self.advanced = 0  # items that left the backlog into the prefix, ever
        self._after: deque[Pending] = deque()

    @property
    def backlog(self) -> int:
        return len(self._after)

    @property
    def complete(self) -> bool:
        """Everything added so far is settled."""
        return not self._after

    def add(self, line: int, rejected_bytes: int) -> Pending:
        """A record just published from `line`; settle the returned entry once it is confirmed."""
        entry = Pending(line, rejected_bytes)
        self._after.append(entry)
        return entry

    def add_settled(self, line: int, rejected_bytes: int) -> None:
        """An item safe at once (a row written to NAME.rejected)."""
        self._after.append(Pending(line, rejected_bytes, settled=True))
        self._advance()

    def settle(self, entry: Pending) -> None:
        entry.settled = True
        self._advance()

    def _advance(self) -> None:
        after = self._after
        while after and after[0].settled:
            head = after.popleft()
            self.line = head.line
            self.rejected_bytes = head.rejected_bytes
            self.advanced += 1


@dataclass(frozen=True)
class Checkpoint:
    """Lines up to `line` are safe; NAME.rejected was `rejected_bytes` long then; NAME was `size` bytes."""

    line: int
    rejected_bytes: int
    size: int


def checkpoint_path(source: Path) -> Path:
    """Hidden and not `*.csv`, so it is never mistaken for input."""
    return source.with_name(f".{source.name}{SUFFIX}")


def save_checkpoint(source: Path, checkpoint: Checkpoint) -> None:
    """Write to a temporary file and rename over the old one: a crash leaves the old or the new, never half."""
    path = checkpoint_path(source)
    temporary = path.with_name(path.name + ".tmp")
    data = {"v": VERSION, "file": source.name, "line": checkpoint.line,
            "rejected_bytes": checkpoint.rejected_bytes, "size": checkpoint.size}
    # A fresh file, never through a link someone put at the temporary name (its target would be overwritten).
    temporary.unlink(missing_ok=True)
    with open(temporary, "xb", opener=open_no_follow) as handle:
        handle.write(orjson.dumps(data))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def load_checkpoint(source: Path, size: int) -> Checkpoint | None:
    """The saved checkpoint of `source`, or None to start from the top.

    A checkpoint that cannot be read, or that was written for a file of another
    size (a new file under an old name), is ignored: starting over only sends
    duplicates, which workers absorb.
    """
    path = checkpoint_path(source)
    try:
        data = orjson.loads(path.read_bytes())
        checkpoint = Checkpoint(int(data["line"]), int(data["rejected_bytes"]), int(data["size"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: ignoring unreadable checkpoint %s (%s); starting from the top", source.name, path.name, exc)
        return None
    if checkpoint.size != size or checkpoint.line < 0 or checkpoint.rejected_bytes < 0:
        log.warning("%s: checkpoint %s was written for a file of %d bytes, this one has %d; starting from the top",
                    source.name, path.name, checkpoint.size, size)
        return None
    return checkpoint


def remove_checkpoint(source: Path) -> None:
    checkpoint_path(source).unlink(missing_ok=True)


def orphaned_checkpoints(directory: Path) -> list[Path]:
    """Checkpoints whose file is gone (done, or removed by hand), and temporary files a crash left behind."""
    orphans = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        name = entry.name
        if not name.startswith("."):
            continue
        left_by_a_crash = name.endswith(SUFFIX + ".tmp")
        source_gone = name.endswith(SUFFIX) and not (directory / name[1 : -len(SUFFIX)]).exists()
        if left_by_a_crash or source_gone:
            orphans.append(Path(entry.path))
    return orphans
