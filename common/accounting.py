"""Streaming parser for PowerMTA accounting CSV files (see the README's format notes).

Columns are found by header name; each file has its own header. Only `b` and
`rb` rows are bounces; other types are counted and skipped. A bounce row that
cannot be read becomes a RejectedRow naming the file, the line and the reason,
and the rest of the file goes on.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .record import BOUNCE_TYPES, BounceRecord, parse_list_ids, parse_statid, parse_time

RECORD_TYPES = frozenset({"b", "rb", "d", "t", "tq", "r", "f", "rs"})  # PowerMTA's accounting record types

# A runaway quote would otherwise make one field of the rest of the file.
MAX_FIELD = 1024 * 1024
csv.field_size_limit(MAX_FIELD)

_COLUMNS = {
    "type": "type",
    "timelogged": "time",
    "rcpt": "rcpt",
    "dsnstatus": "status",
    "dsndiag": "diag",
    "bouncecat": "category",
    "header_x-mailer-lid": "lid",
    "header_x-list-id": "list_id",
    "header_x-mailer-sid": "sid",
    "header_x-mailing-id": "mailing_id",
}


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A bounce row that could not be read: kept with its reason for the operator."""

    source_file: str
    source_line: int
    reason: str
    cells: tuple[str, ...]


@dataclass
class ParseCounts:
    rows: int = 0
    bounces: int = 0
    skipped: int = 0
    rejected: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


class AccountingFile:
    """Iterate one accounting file as BounceRecord and RejectedRow items, never holding it whole."""

    def __init__(self, path: Path | str, skip_through: int = 0) -> None:
        """`skip_through`: lines up to this one are read past (CSV-parsed for their line
        breaks, nothing more): a producer resuming after a checkpoint."""
        self.path = Path(path)
        self.name = self.path.name
        self.header: list[str] | None = None
        self.counts = ParseCounts()
        self.skip_through = skip_through

    def __iter__(self) -> Iterator[BounceRecord | RejectedRow]:
        # utf-8-sig strips a BOM if one is there; remote servers put any bytes in dsnDiag.
        with open(self.path, encoding="utf-8-sig", errors="replace", newline="") as handle:
            yield from self.read(handle)

    def read(self, handle) -> Iterator[BounceRecord | RejectedRow]:
        reader = csv.reader(handle, strict=False)
        first_line = 1
        index: dict[str, int] = {}
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                start, first_line = first_line, reader.line_num + 1
                if start <= self.skip_through:
                    continue
                self.counts.rejected += 1
                yield RejectedRow(self.name, start, f"unreadable CSV: {exc}", ())
                continue
            line, first_line = first_line, reader.line_num + 1
            if not cells or cells == [""]:
                continue
            if self.header is None:
                self.header = cells
                index = _column_index(cells)
                if "type" not in index:
                    # Not a header: a bounce here must be seen by the operator, not swallowed.
                    self.counts.rejected += 1
                    yield RejectedRow(self.name, line, "the first line is not a header (no type column)", tuple(cells))
                continue
            if line <= self.skip_through:
                continue
            item = self._row(cells, line, index)
            if item is not None:
                yield item

    def _row(self, cells: list[str], line: int, index: dict[str, int]) -> BounceRecord | RejectedRow | None:
        counts = self.counts
        counts.rows += 1
        position = index.get("type", 0)
        kind = cells[position].strip().lower() if position < len(cells) else ""
        # Unknown types are counted together: a garbage file must not fill memory with its lines.
        key = kind if kind in RECORD_TYPES else "other"
        counts.by_type[key] = counts.by_type.get(key, 0) + 1
        if kind not in BOUNCE_TYPES:
            counts.skipped += 1
            return None
        try:
            record = self._record(kind, cells, line, index)
        except ValueError as exc:
            counts.rejected += 1
            return RejectedRow(self.name, line, str(exc), tuple(cells))
        counts.bounces += 1
        return record

    def _record(self, kind: str, cells: list[str], line: int, index: dict[str, int]) -> BounceRecord:
        needed = max(index.values(), default=0) + 1
        if len(cells) < needed:
            raise ValueError(f"row has {len(cells)} of {len(self.header or ())} columns (cut short?)")

        def cell(name: str) -> str:
            position = index.get(name)
            return cells[position] if position is not None else ""

        if "rcpt" not in index:
            raise ValueError("the file's header has no rcpt column")
        rcpt = cell("rcpt").strip()
        if not rcpt:
            raise ValueError("rcpt is empty")
        if len(rcpt) > 255:
            raise ValueError("rcpt is longer than 255 characters")
        list_raw = cell("lid") if cell("lid").strip() else cell("list_id")
        sid_raw = cell("sid") if cell("sid").strip() else cell("mailing_id")
        return BounceRecord(
            type=kind,
            time_logged=parse_time(cell("time")),
            rcpt=rcpt,
            dsn_status=cell("status").strip(),
            dsn_diag=cell("diag"),
            category=cell("category").strip(),
            list_ids=parse_list_ids(list_raw),
            statid=parse_statid(sid_raw),
            source_file=self.name,
            source_line=line,
        )


def _column_index(header: list[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for position, name in enumerate(header):
        key = _COLUMNS.get(name.strip().lower())
        if key is not None and key not in index:
            index[key] = position
    return index


def record_cells(record: BounceRecord, header: list[str] | None) -> tuple[str, ...]:
    """A record back as cells under `header`, so a refused record can be kept beside bad rows."""
    values = {
        "type": record.type,
        "time": str(record.time_logged),
        "rcpt": record.rcpt,
        "status": record.dsn_status,
        "diag": record.dsn_diag,
        "category": record.category,
        "lid": ",".join(map(str, record.list_ids)),
        "list_id": ",".join(map(str, record.list_ids)),
        "sid": str(record.statid),
        "mailing_id": str(record.statid),
    }
    return tuple(values.get(_COLUMNS.get(name.strip().lower(), ""), "") for name in header or ())
