"""One accounting file being published: read from its checkpoint, bad rows kept, finished once all is safe."""

from __future__ import annotations

import logging
from pathlib import Path

from ..common import metrics
from ..common.accounting import AccountingFile, Record, RejectedRow, open_no_follow
from ..common.bouncedir import RejectFile, mark_done
from ..common.errors import FatalError
from .checkpoint import Checkpoint, FileProgress, Pending, load_checkpoint, remove_checkpoint, save_checkpoint

log = logging.getLogger("pmtabounce.producer")

LOGGED_REJECTS = 20  # per file; NAME.rejected keeps every one

_REJECTED = metrics.RECORDS_REJECTED.labels("producer")


class FileJob:
    """Streams one file's records in line order, past its checkpoint, never holding the file whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name
        with open(path, "rb", opener=open_no_follow):  # fail here, not halfway, when it cannot be read
            self.size = path.stat().st_size
        saved = load_checkpoint(path, self.size)
        self.resumed_after = saved.line if saved else 0
        kept = saved.rejected_bytes if saved else 0
        self.source = AccountingFile(path, skip_through=self.resumed_after)
        self.rejects = RejectFile(path, None, keep_bytes=kept)
        self.progress = FileProgress(self.resumed_after, kept)
        self.exhausted = False
        self.published = 0
        self.rejected = 0
        self._rejected_bytes = kept
        self._items = iter(self.source)
        self._saved = (self.resumed_after, self.progress.advanced)
        self._save_failed = False

    def step(self) -> Record | None:
        """Read one item: the next record to publish, or None (a skipped or rejected row, or the end)."""
        item = next(self._items, None)
        if item is None:
            self.exhausted = True
            return None
        if item.source_line <= self.resumed_after:
            return None
        if isinstance(item, RejectedRow):
            self._reject(item)
            return None
        return item

    def track(self, record: Record) -> Pending:
        """The progress entry of a record about to be published."""
        self.published += 1
        return self.progress.add(record.source_line, self._rejected_bytes)

    @property
    def finished(self) -> bool:
        """Read to the end and every record confirmed: the file may be marked done."""
        return self.exhausted and self.progress.complete

    def checkpoint_due(self, every: int) -> bool:
        return self.progress.advanced - self._saved[1] >= every

    def save(self) -> None:
        """Write the checkpoint if the safe prefix moved since the last one.

        A checkpoint that cannot be written costs only duplicates after a crash,
        so it is a warning (once per file), not a reason to stop publishing.
        """
        progress = self.progress
        if progress.line == self._saved[0]:
            return
        try:
            save_checkpoint(self.path, Checkpoint(progress.line, progress.rejected_bytes, self.size))
        except OSError as exc:
            if not self._save_failed:
                log.warning("%s: cannot write its checkpoint (%s); after a crash it would be sent again "
                            "from line %d", self.name, exc, self._saved[0] + 1)
            self._save_failed = True
            return
        self._saved = (progress.line, progress.advanced)

    def finish(self, done_action: str) -> Path | None:
        """Rename or delete the file, then forget its checkpoint. Only once `finished`."""
        self.close()
        try:
            target = mark_done(self.path, done_action)
        except OSError as exc:
            raise FatalError(f"every record of {self.path} is confirmed, but it cannot be "
                             f"{'deleted' if done_action == 'delete' else 'renamed'}: {exc.strerror}") from exc
        remove_checkpoint(self.path)
        counts = self.source.counts
        note = f"; {counts.rejected} rejected rows kept in {self.rejects.path.name}" if counts.rejected else ""
        resumed = f" (resumed after line {self.resumed_after})" if self.resumed_after else ""
        where = f"renamed to {target.name}" if target else "deleted"
        log.info("%s done%s: %d bounces and %d complaints confirmed by RabbitMQ, %d other rows skipped%s; %s",
                 self.name, resumed, counts.bounces, counts.complaints, counts.skipped, note, where,
                 extra={"event": "file_done", "file": self.name, "bounces": counts.bounces,
                        "complaints": counts.complaints, "skipped": counts.skipped, "rejected": counts.rejected})
        return target

    def changed(self) -> bool:
        """The file is gone, or not the size it had when reading began (it was still being written)."""
        try:
            return self.path.stat().st_size != self.size
        except FileNotFoundError:
            return True

    def abandon(self) -> None:
        """Forget this pass: the next one starts from the top (what was sent is absorbed as duplicates)."""
        self.close()
        remove_checkpoint(self.path)

    def close(self) -> None:
        """Stop reading (shutdown or done); the checkpoint, if any, stays for the next run."""
        self._items.close()
        self.rejects.close()

    def _reject(self, row: RejectedRow) -> None:
        self.rejected += 1
        _REJECTED.inc()
        if self.rejected <= LOGGED_REJECTS:
            log.error("%s line %d: rejected: %s", self.name, row.source_line, row.reason,
                      extra={"event": "rejected", "file": self.name, "line": row.source_line})
        elif self.rejected == LOGGED_REJECTS + 1:
            log.error("%s: more rejected rows; every one is in %s", self.name, self.rejects.path.name)
        self.rejects.header = self.source.header or []
        self.rejects.add(row)
        self._rejected_bytes = self.rejects.size()
        self.progress.add_settled(row.source_line, self._rejected_bytes)
