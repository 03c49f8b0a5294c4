"""The `move-to` directory: which files are input, in what order, and how a file is finished."""

from __future__ import annotations

import csv
import errno
import io
import logging
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .accounting import CSV_REFUSES_NUL, NUL_STAND_IN, REJECT_COLUMN, RejectedRow, open_no_follow
from .errors import FatalError

DONE_SUFFIX = ".done"
REJECTED_SUFFIX = ".rejected"
LOCK_WAIT = 60.0  # seconds a second `process` waits for the first: from cron, a run a minute late still helps
_DIGITS = re.compile(r"(\d+)")
log = logging.getLogger("pmtabounce.bounce_dir")


def natural_key(name: str) -> tuple:
    """`b-2.csv` before `b-10.csv`: PowerMTA's dated names sort chronologically this way."""
    # Odd parts are the digit runs; str.isdigit() would also take '²', which int() refuses.
    return tuple(int(part) if i % 2 else part.lower() for i, part in enumerate(_DIGITS.split(name)))


def pending_files(directory: Path) -> list[Path]:
    """Every regular `*.csv` in natural name order; `.done`, `.rejected` and temp files are not input.

    A symbolic link is never input, even to a CSV file: following one would copy what it points at (an
    environment file, say) into NAME.csv.rejected and rename the link. Each is logged once per process,
    as a warning naming it."""
    files, links = scan_directory(directory)
    for link in links:
        if link not in _WARNED_LINKS:
            _WARNED_LINKS.add(link)
            log.warning("skipping %s: a symbolic link, not a file (only regular files are read; move the file "
                        "itself into the directory)", link, extra={"event": "link_skipped", "file": str(link)})
    return files


def scan_directory(directory: Path) -> tuple[list[Path], list[Path]]:
    """(regular `*.csv` files, `*.csv` symbolic links), each in natural name order, nothing logged."""
    files: list[str] = []
    links: list[str] = []
    for entry in os.scandir(directory):
        if not entry.name.lower().endswith(".csv") or entry.name.startswith("."):
            continue
        if entry.is_symlink():
            links.append(entry.name)
        elif entry.is_file(follow_symlinks=False):
            files.append(entry.name)
    return ([directory / name for name in sorted(files, key=natural_key)],
            [directory / name for name in sorted(links, key=natural_key)])


_WARNED_LINKS: set[Path] = set()


def directory_problem(directory: Path, write: bool = True) -> str | None:
    """What keeps this process from working `directory` (it lists, reads, renames or deletes files and
    keeps its lock file there), in an operator's words; None if nothing does. `write=False`: only what
    keeps it from listing and reading (all `status` needs).

    os.access asks the kernel, so a read-only mount, an ACL or NFS root squash count, not only mode bits.
    """
    if not directory.is_dir():
        return f"{directory} does not exist or is not a directory"
    effective = os.access in os.supports_effective_ids
    if not os.access(directory, os.R_OK | os.X_OK, effective_ids=effective):
        return f"{directory} is not readable by {_user()}"
    if write and not os.access(directory, os.W_OK | os.X_OK, effective_ids=effective):
        return (f"{directory} is not writable by {_user()}: finished files are renamed or deleted there, "
                "and its lock file lives there")
    return None


def require_workable(directory: Path) -> None:
    """At start, before anything is read or committed: raises FatalError naming what is wrong."""
    problem = directory_problem(directory)
    if problem:
        raise FatalError(f"cannot work the bounce directory: {problem}")


def _user() -> str:
    import pwd

    uid = os.geteuid()
    try:
        return f"user {pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"user id {uid}"


def done_path(path: Path) -> Path:
    """NAME.done, or if that is taken the first free NAME.1.done, NAME.2.done, ...

    An earlier archive of the same name (an operator fed fixed rows back under the original name) is
    never overwritten, and no name ends in `.csv`, so none is taken for input again. Free at the time
    of asking: callers hold the DirectoryLock.
    """
    target = path.with_name(path.name + DONE_SUFFIX)
    number = 0
    while os.path.lexists(target):
        number += 1
        target = path.with_name(f"{path.name}.{number}{DONE_SUFFIX}")
    return target


def mark_done(path: Path, action: str) -> Path | None:
    """Rename to `done_path(path)`, or delete; only call once every record of the file is safe."""
    if action == "delete":
        path.unlink(missing_ok=True)
        return None
    target = done_path(path)
    os.replace(path, target)
    return target


def rejected_path(path: Path) -> Path:
    return path.with_name(path.name + REJECTED_SUFFIX)


class RejectFile:
    """NAME.rejected: the bad rows of NAME, in CSV under the file's own header, a reason column first.

    An operator can read it, fix a row and move it back as a `.csv`: the parser
    finds columns by name and ignores the extra one. Rows are kept as they
    were, not padded; a row the file's end cut short is refused again, by its
    reason, until someone fixes it. Written and flushed row by row, so a crash
    keeps what was found.
    """

    def __init__(self, source: Path, header: list[str] | None, keep_bytes: int = 0) -> None:
        self.path = rejected_path(source)
        self.header = list(header or [])
        self.count = 0
        self._handle: TextIO | None = None
        self._keep = keep_bytes
        if keep_bytes == 0:
            self.path.unlink(missing_ok=True)

    def add(self, row: RejectedRow) -> None:
        handle = self._handle or self._open()
        handle.write(_csv_line([f"line {row.source_line}: {row.reason}", *row.cells]))
        handle.flush()
        self.count += 1

    def _open(self) -> TextIO:
        exists = self._keep > 0 and self.path.exists()
        # Never through a symbolic link: whoever writes the bounce directory could point one anywhere.
        handle = self._handle = open(self.path, "a" if exists else "w", encoding="utf-8", newline="",
                                     opener=open_no_follow)
        if exists:
            handle.truncate(self._keep)
            handle.seek(self._keep)
        else:
            handle.write(_csv_line([REJECT_COLUMN, *self.header]))
        return handle

    def size(self) -> int:
        """Bytes written so far: a checkpoint records it so a resume can cut back to it."""
        return self._handle.tell() if self._handle else (self._keep if self.path.exists() else 0)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _csv_line(cells: list[str]) -> str:
    """One CSV row, CRLF-ended. Python 3.10's csv writer refuses NUL: a stand-in carries it through."""
    nul = CSV_REFUSES_NUL and any("\0" in cell for cell in cells)
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerow([cell.replace("\0", NUL_STAND_IN) for cell in cells] if nul
                                                      else cells)
    return text.getvalue().replace(NUL_STAND_IN, "\0") if nul else text.getvalue()


class DirectoryLock:
    """Only one process works a directory at a time: an flock on DIR/.pmtabounce.lock.

    The kernel drops the lock when the process dies, even by kill -9.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".pmtabounce.lock"
        self._fd: int | None = None

    def acquire(self, wait: bool = True, poll: float = 0.5, should_stop: Callable[[], bool] = lambda: False,
                timeout: float | None = None) -> bool:
        """Take the lock: True once held; False if another process holds it and `wait` is False, or
        `timeout` seconds passed, or `should_stop()` said so. FatalError if the lock file cannot be opened."""
        import fcntl
        import time

        try:
            # O_NOFOLLOW: a link planted by whoever writes the directory would make us truncate its target.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            reason = ("it is a symbolic link (remove it; the lock file is never followed)"
                      if exc.errno == errno.ELOOP else exc.strerror or exc)
            raise FatalError(f"cannot open the lock file {self.path}: {reason}") from None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                left = math.inf if deadline is None else deadline - time.monotonic()
                if not wait or should_stop() or left <= 0:
                    os.close(fd)
                    return False
                time.sleep(min(poll, left))
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
