"""`pmtabounce prune --older-than AGE`: remove ledger evidence older than AGE, in small transactions.

The ledger gains one row per bounce for ever (100k bounces a day is 36 M rows
a year). Duplicate detection needs a record's row only for as long as the same
record may come back (a redelivery: minutes; a file copied back by hand: days),
so the operator chooses how long that is; docs/operations.md (Ledger retention)
says what a record re-fed after its row was pruned does.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TypeVar

import click
import orjson

from ..common.config import Settings
from ..common.errors import FatalError
from ..dlq.selection import parse_age
from ..runner import run_command
from ..store import ledger, outbox
from ..store.database import Database, OneShot, Session
from ..store.db import Tables

log = logging.getLogger("pmtabounce.prune")
T = TypeVar("T")

BATCH_ROWS = 1000  # rows per transaction: a few milliseconds of row locks, on rows no worker is writing
PAUSE_SECONDS = 0.05  # between transactions, so workers' commits and the purge thread keep up


@dataclass
class PruneReport:
    """What prune removed (or, with dry_run, would remove): rows applied before `cutoff` (server time)."""

    cutoff: datetime
    dry_run: bool
    removed: Counter = field(default_factory=Counter)  # outcome -> rows
    oldest: datetime | None = None  # dry run only: the range of applied_at found
    newest: datetime | None = None
    batches: int = 0
    left: ledger.Extent | None = None
    outbox_removed: int = 0  # sent or dropped outbox rows (events) created before the cutoff; not in a dry run

    def as_dict(self) -> dict:
        return {
            "dry_run": self.dry_run, "cutoff": _text(self.cutoff), "removed": sum(self.removed.values()),
            "by_outcome": dict(sorted(self.removed.items())), "oldest": _text(self.oldest),
            "newest": _text(self.newest), "transactions": self.batches,
            "ledger_rows_estimate": self.left.rows if self.left else None,
            "ledger_oldest_unix": self.left.oldest if self.left else None,
            "outbox_removed": self.outbox_removed,
        }


def prune_ledger(settings: Settings, older_than: timedelta, *, dry_run: bool = False, batch_rows: int = BATCH_ROWS,
                 pause: float = PAUSE_SECONDS, sleep: Callable[[float], None] = time.sleep) -> PruneReport:
    """Delete ledger rows applied more than `older_than` ago, `batch_rows` per transaction, then the outbox's
    rows (events) created before the same cutoff that were sent or dropped (store/outbox.py `delete_older`).

    Raises FatalError when the database refuses; every transaction before it
    stays committed, so running it again goes on where it stopped.
    """
    tables = Tables(settings.table_prefix)
    database = Database(settings.mysql, tables, OneShot(hint=f"prune needs SELECT and DELETE on {tables.ledger}, "
                                                                  f"{tables.outbox} and {tables.outbox_attempts}"))
    report = None
    try:
        with database.transaction() as session:
            report = PruneReport(ledger.server_time_before(session.cursor, older_than.total_seconds()), dry_run)
            if dry_run:
                report.removed, report.oldest, report.newest = ledger.older_than(session.cursor, tables,
                                                                                 report.cutoff)
        if not dry_run:
            _delete(database, report, batch_rows, pause, sleep)
        with database.transaction() as session:
            report.left = ledger.extent(session.cursor, tables)
    except FatalError as exc:  # one-shot, as setup: even what a worker would retry ends prune, with its reason
        done = f" after removing {sum(report.removed.values())} rows" if report and not dry_run else ""
        raise FatalError(f"prune stopped{done}: {exc}; run it again to go on") from None
    finally:
        database.close()
    return report


def _delete(database: Database, report: PruneReport, batch_rows: int, pause: float,
            sleep: Callable[[float], None]) -> None:
    """The ledger rows before the cutoff, then the outbox's sent or dropped rows created before it, `batch_rows`
    per transaction, `pause` seconds apart."""
    cutoff = report.cutoff
    for batch in _batches(database, lambda s: ledger.delete_older(s.cursor, s.tables, cutoff, batch_rows),
                          pause, sleep):
        report.removed += batch
        report.batches += 1
        log.debug("removed %d ledger rows (%d so far)", sum(batch.values()), sum(report.removed.values()))
    for removed in _batches(database, lambda s: outbox.delete_older(s.cursor, s.tables, cutoff, batch_rows),
                            pause, sleep):
        report.outbox_removed += removed
        report.batches += 1


def _batches(database: Database, step: Callable[[Session], T], pause: float,
             sleep: Callable[[float], None]) -> Iterator[T]:
    """`step(session)` (one transaction's deletes: what it removed, falsy when nothing) committed and repeated,
    with a pause between transactions, until nothing is left; yields what each removed."""
    while removed := database.run(step):
        yield removed
        sleep(pause)


def describe(report: PruneReport) -> str:
    """One paragraph for an operator."""
    total = sum(report.removed.values())
    verb = "would remove" if report.dry_run else "removed"
    text = f"{verb} {total} ledger rows applied before {_text(report.cutoff)} (database time)"
    if total:
        text += " (" + ", ".join(f"{name} {count}" for name, count in sorted(report.removed.items())) + ")"
    if report.dry_run and report.oldest:
        text += f", applied from {_text(report.oldest)} to {_text(report.newest)}"
    if not report.dry_run:
        text += f" and {report.outbox_removed} sent or dropped events of the outbox, in {report.batches} transactions"
    if report.left:
        oldest = (f"{_text(datetime.fromtimestamp(report.left.oldest, timezone.utc).replace(tzinfo=None))} UTC"
                  if report.left.oldest else "none")
        text += f"; the ledger now holds about {report.left.rows} rows (InnoDB's estimate), the oldest from {oldest}"
    return text


def _text(moment: datetime | None) -> str | None:
    return moment.isoformat(sep=" ", timespec="seconds") if moment else None


MAX_AGE = timedelta(days=36500)  # beyond it the server's NOW() - INTERVAL leaves the dates it can hold (NULL)


def _age(_ctx, _param, value: str) -> timedelta:
    try:
        age = parse_age(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if age > MAX_AGE:
        raise click.BadParameter(f"{value!r} is more than 100 years (36500d): no ledger row is that old")
    return age


@click.command()
@click.option("--older-than", "older_than", required=True, callback=_age, metavar="AGE",
              help="Remove rows applied longer ago than this: 30d, 12w, 90d (s, m, h, d, w).")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=BATCH_ROWS, show_default=True,
              help="Rows per transaction.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@run_command
def prune(settings: Settings, older_than: timedelta, dry_run: bool, batch_size: int, as_json: bool) -> None:
    """Remove ledger rows older than AGE in small transactions, without holding up workers.

    A record that comes back after its row was removed is applied again as new (docs/operations.md, "Ledger retention").
    """
    report = prune_ledger(settings, older_than, dry_run=dry_run, batch_rows=batch_size)
    if as_json:
        click.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(describe(report))  # once: a log line of the same went to the same terminal or journal
