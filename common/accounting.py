"""Streaming parser for PowerMTA accounting CSV files (docs/semantics.md, "Accepted input").

Columns are found by header name; each file has its own header. `b` and `rb`
rows are bounces, `f` rows complaints (iem-complaints.md); other types are
counted and skipped. A row that cannot be read becomes a RejectedRow naming
the file, the line and the reason, and the rest of the file goes on.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .complaint import COMPLAINT_TYPES, ComplaintRecord, clean_rcpt
from .message import too_big
from .record import BOUNCE_TYPES, BounceRecord, parse_list_ids, parse_statid, parse_time

RECORD_TYPES = frozenset({"b", "rb", "d", "t", "tq", "r", "f", "rs"})  # PowerMTA's accounting record types

# A runaway quote would otherwise make one field of the rest of the file.
MAX_FIELD = 1024 * 1024
csv.field_size_limit(MAX_FIELD)

REJECT_COLUMN = "pmtabounce_reject_reason"  # NAME.rejected's first column (bouncedir.RejectFile)
CUT_SHORT = "cut short"
NUL_STAND_IN = "\uffff"  # a Unicode noncharacter: carries a NUL through a csv module that refuses one


def _csv_refuses_nul() -> bool:
    """Python 3.10's csv module raises "line contains NUL" on any NUL, quoted or not; 3.11 reads it as a character."""
    try:
        next(csv.reader(["\0"]))
    except csv.Error:
        return True
    return False


CSV_REFUSES_NUL = _csv_refuses_nul()

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
    "feedbacktype": "feedback_type",
    "format": "format",
    "useragent": "user_agent",
    "reportingmta": "reporting_mta",
    "header_list-unsubscribe": "list_unsubscribe",
    REJECT_COLUMN: "reject_reason",
}
Record = BounceRecord | ComplaintRecord
Index = dict[str, tuple[int, ...]]  # column key -> its positions (a header name may come twice, in two cases)


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A bounce or complaint row that could not be read: kept with its reason for the operator."""

    source_file: str
    source_line: int
    reason: str
    cells: tuple[str, ...]


@dataclass
class ParseCounts:
    rows: int = 0
    bounces: int = 0
    complaints: int = 0
    skipped: int = 0
    rejected: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


def open_no_follow(path: str, flags: int) -> int:
    """An `opener` for open(): a symbolic link is refused (ELOOP), also one put in place after a directory
    scan chose the name (bouncedir.pending_files reads regular files only)."""
    return os.open(path, flags | os.O_NOFOLLOW)


class AccountingFile:
    """Iterate one accounting file as BounceRecord, ComplaintRecord and RejectedRow items, never holding it whole."""

    def __init__(self, path: Path | str, skip_through: int = 0) -> None:
        """`skip_through`: lines up to this one are read past (CSV-parsed for their line
        breaks, nothing more): a producer resuming after a checkpoint."""
        self.path = Path(path)
        self.name = self.path.name
        self.header: list[str] | None = None
        self.counts = ParseCounts()
        self.skip_through = skip_through

    def __iter__(self) -> Generator[Record | RejectedRow, None, None]:
        # utf-8-sig strips a BOM if one is there; remote servers put any bytes in dsnDiag.
        with open(self.path, encoding="utf-8-sig", errors="replace", newline="", opener=open_no_follow) as handle:
            yield from self.read(handle)

    def read(self, handle: Iterable[str]) -> Iterator[Record | RejectedRow]:
        lines = _Lines(handle)
        reader = csv.reader(lines, strict=False)
        first_line = 1
        index: Index = {}
        reason: int | None = None
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                start, first_line, lines.nul = first_line, reader.line_num + 1, False
                if start <= self.skip_through:
                    continue
                self.counts.rejected += 1
                yield RejectedRow(self.name, start, f"unreadable CSV: {exc}", ())
                continue
            line, first_line = first_line, reader.line_num + 1
            if lines.nul:
                cells, lines.nul = [cell.replace(NUL_STAND_IN, "\0") for cell in cells], False
            if not cells or cells == [""]:
                continue
            if self.header is None:
                self.header = cells
                index = _column_index(cells)
                reason = index.get("reject_reason", (None,))[0]
                if "type" not in index:
                    # Not a header: a bounce here must be seen by the operator, not swallowed.
                    self.counts.rejected += 1
                    yield RejectedRow(self.name, line, "the first line is not a header (no type column)", tuple(cells))
                continue
            if line <= self.skip_through:
                continue
            cut_short = len(cells) < len(self.header) and _cut_short(cells, lines, reason)
            item = self._row(cells, line, index, cut_short)
            if item is not None:
                yield item

    def _row(self, cells: list[str], line: int, index: Index, cut_short: bool) -> Record | RejectedRow | None:
        counts = self.counts
        counts.rows += 1
        position = index.get("type", (0,))[0]
        kind = cells[position].strip().lower() if position < len(cells) else ""
        # Unknown types are counted together: a garbage file must not fill memory with its lines.
        key = kind if kind in RECORD_TYPES else "other"
        counts.by_type[key] = counts.by_type.get(key, 0) + 1
        if kind not in BOUNCE_TYPES and kind not in COMPLAINT_TYPES:
            counts.skipped += 1
            return None
        try:
            if cut_short:
                raise ValueError(f"the file ends inside this row ({len(cells)} of {len(self.header or ())} "
                                 f"columns): {CUT_SHORT}")
            record = self._record(kind, cells, line, index)
            oversized = too_big(record)  # refused here, so that inline and the fleet agree
            if oversized:
                raise ValueError(oversized)
        except ValueError as exc:
            counts.rejected += 1
            return RejectedRow(self.name, line, str(exc), tuple(cells))
        if kind in COMPLAINT_TYPES:
            counts.complaints += 1
        else:
            counts.bounces += 1
        return record

    def _record(self, kind: str, cells: list[str], line: int, index: Index) -> Record:
        # pmta-accounting.md: the cells a row lacks are empty; the checks below decide whether it still makes a record.
        width = len(cells)

        def cell(name: str) -> str:
            positions = index.get(name, ())
            if len(positions) == 1:  # the usual header: every column once
                return cells[positions[0]] if positions[0] < width else ""
            # Header names differing only in case may be two columns: the first non-empty one counts.
            values = [cells[p] for p in positions if p < width]
            return next((v for v in values if v.strip()), values[0] if values else "")

        complaint = kind in COMPLAINT_TYPES
        if "rcpt" not in index and not complaint:  # a complaint's link names its recipient (iem-complaints.md)
            raise ValueError("the file's header has no rcpt column")
        rcpt = clean_rcpt(cell("rcpt")) if complaint else cell("rcpt").strip()
        if not rcpt and not complaint:  # providers redact a complainer's address: an empty rcpt is normal there
            raise ValueError("rcpt is empty")
        if len(rcpt) > 255:
            raise ValueError("rcpt is longer than 255 characters")
        lid, sid = cell("lid"), cell("sid")
        list_ids = parse_list_ids(lid if lid.strip() else cell("list_id"))
        statid = parse_statid(sid if sid.strip() else cell("mailing_id"))
        time_logged = parse_time(cell("time"))
        if complaint:
            return ComplaintRecord(
                kind, time_logged, rcpt, cell("feedback_type").strip().lower(), cell("format").strip(),
                cell("user_agent").strip(), cell("reporting_mta").strip(), list_ids, statid,
                cell("list_unsubscribe").strip(), self.name, line,
            )
        return BounceRecord(
            type=kind,
            time_logged=time_logged,
            rcpt=rcpt,
            dsn_status=cell("status").strip(),
            dsn_diag=cell("diag"),
            category=cell("category").strip(),
            list_ids=list_ids,
            statid=statid,
            source_file=self.name,
            source_line=line,
        )


class _Lines:
    """The lines csv.reader reads, noting where the file ends and, where csv refuses NUL, carrying NULs across.

    `nul`: the row being read had a NUL, carried as NUL_STAND_IN (its cells get it back).
    """

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = lines
        self.last = "\n"
        self.ended = False
        self.nul = False

    @property
    def ended_by_end_of_file(self) -> bool:
        """The row just read was ended by the end of the file, not by a line ending: its last line has
        none (only a file's last line can lack one), or a quote was never closed (the reader asked past
        the last line)."""
        return self.ended or not self.last.endswith(("\n", "\r"))

    def __iter__(self) -> Iterator[str]:
        for line in self.lines:
            if CSV_REFUSES_NUL and "\0" in line:
                line, self.nul = line.replace("\0", NUL_STAND_IN), True
            self.last = line
            yield line
        self.ended = True


def _cut_short(cells: list[str], lines: _Lines, reason: int | None) -> bool:
    """pmta-accounting.md: a short row that the end of the file ended is a file cut short. Fed back from
    NAME.rejected unfixed it still is one (padded, half a list id would read as a list id)."""
    return lines.ended_by_end_of_file or (reason is not None and CUT_SHORT in "".join(cells[reason:reason + 1]))


def _column_index(header: list[str]) -> Index:
    index: Index = {}
    for position, name in enumerate(header):
        key = _COLUMNS.get(name.strip().lower())
        if key is not None:
            index[key] = index.get(key, ()) + (position,)
    return index


def record_cells(record: Record, header: list[str] | None) -> tuple[str, ...]:
    """A record back as cells under `header`, so a refused record can be kept beside bad rows.

    A column named twice (in two cases) gets the value once, in its first place.
    """
    values = {
        "type": record.type,
        "time": str(record.time_logged),
        "rcpt": record.rcpt,
        "lid": ",".join(map(str, record.list_ids)),
        "list_id": ",".join(map(str, record.list_ids)),
        "sid": str(record.statid),
        "mailing_id": str(record.statid),
    }
    if isinstance(record, ComplaintRecord):
        values.update(feedback_type=record.feedback_type, format=record.format, user_agent=record.user_agent,
                      reporting_mta=record.reporting_mta, list_unsubscribe=record.list_unsubscribe)
    else:
        values.update(status=record.dsn_status, diag=record.dsn_diag, category=record.category)
    first = {key: positions[0] for key, positions in _column_index(list(header or ())).items()}
    return tuple(
        values.get(key, "") if first.get(key) == position else ""
        for position, key in enumerate(_COLUMNS.get(name.strip().lower(), "") for name in header or ())
    )
