"""The `move-to` directory: which files are input, in what order, and how a file is finished."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from .accounting import CSV_REFUSES_NUL, NUL_STAND_IN, REJECT_COLUMN, RejectedRow

DONE_SUFFIX = ".done"
REJECTED_SUFFIX = ".rejected"
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """`b-2.csv` before `b-10.csv`: PowerMTA's dated names sort chronologically this way."""
    # Odd parts are the digit runs; str.isdigit() would also take '²', which int() refuses.
    return tuple(int(part) if i % 2 else part.lower() for i, part in enumerate(_DIGITS.split(name)))


def pending_files(directory: Path) -> list[Path]:
    """Every `*.csv` in natural name order; `.done`, `.rejected` and temp files are not input."""
    names = [
        entry.name
        for entry in os.scandir(directory)
        if entry.name.lower().endswith(".csv") and not entry.name.startswith(".") and entry.is_file()
    ]
    return [directory / name for name in sorted(names, key=natural_key)]


def mark_done(path: Path, action: str) -> Path | None:
    """Rename to NAME.done, or delete; only call once every record of the file is safe."""
    if action == "delete":
        path.unlink(missing_ok=True)
        return None
    target = path.with_name(path.name + DONE_SUFFIX)
    os.replace(path, target)
    return target


def rejected_path(path: Path) -> Path:
    return path.with_name(path.name + REJECTED_SUFFIX)


class RejectFile:
    """NAME.rejected: the bad rows of NAME, in CSV under the file's own header, a reason column first.

    An operator can read it, fix a row and move it back as a `.csv`: the parser
    finds columns by name and ignores the extra one. Rows are kept as they
    were, not padded, so a row cut short stays cut short (and is refused
    again) until someone fixes it. Written and flushed row by row, so a crash
    keeps what was found.
    """

    def __init__(self, source: Path, header: list[str] | None, keep_bytes: int = 0) -> None:
        self.path = rejected_path(source)
        self.header = list(header or [])
        self.count = 0
        self._handle = None
        self._writer = None
        self._keep = keep_bytes
        if keep_bytes == 0:
            self.path.unlink(missing_ok=True)

    def add(self, row: RejectedRow) -> None:
        if self._writer is None:
            self._open()
        cells = [f"line {row.source_line}: {row.reason}", *row.cells]
        if CSV_REFUSES_NUL and any("\0" in cell for cell in cells):
            self._write_with_nul(cells)
        else:
            self._writer.writerow(cells)
        self._handle.flush()
        self.count += 1

    def _write_with_nul(self, cells: list[str]) -> None:
        """Python 3.10's csv writer refuses NUL: format with a stand-in, then put the NULs back."""
        text = io.StringIO()
        csv.writer(text, lineterminator="\r\n").writerow([cell.replace("\0", NUL_STAND_IN) for cell in cells])
        self._handle.write(text.getvalue().replace(NUL_STAND_IN, "\0"))

    def _open(self) -> None:
        exists = self._keep > 0 and self.path.exists()
        self._handle = open(self.path, "a" if exists else "w", encoding="utf-8", newline="")
        if exists:
            self._handle.truncate(self._keep)
            self._handle.seek(self._keep)
        self._writer = csv.writer(self._handle, lineterminator="\r\n")
        if not exists:
            self._writer.writerow([REJECT_COLUMN, *self.header])

    def size(self) -> int:
        """Bytes written so far: a checkpoint records it so a resume can cut back to it."""
        return self._handle.tell() if self._handle else (self._keep if self.path.exists() else 0)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._writer = None


class DirectoryLock:
    """Only one process works a directory at a time: an flock on DIR/.pmtabounce.lock.

    The kernel drops the lock when the process dies, even by kill -9.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".pmtabounce.lock"
        self._fd: int | None = None

    def acquire(self, wait: bool = True, poll: float = 0.5, should_stop=lambda: False) -> bool:
        import fcntl
        import time

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or should_stop():
                    os.close(fd)
                    return False
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
