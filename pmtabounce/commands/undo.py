"""`pmtabounce undo [filters] [--dry-run] [--yes] [--json]`: revert exactly what selected records wrote.

The summary of what would change is always shown first (records, bounce rows,
subscribers re-enabled per list, campaign counters, rows skipped because they
changed since); without --dry-run it then asks (unless --yes) and acts, batch
by batch, each one transaction. Every run is audited: a row in our audit
table (its id is the run id the reverted ledger rows carry), an INFO line,
and a line in PMTABOUNCE_DLQ_AUDIT_FILE (one audit file for every operator action).
"""

from __future__ import annotations

import functools
import logging
import sys
import threading

import click
import orjson

from ..common.config import Settings
from ..common.errors import GaveUp, StopRequested
from ..common.guard import a_label
from ..common.shutdown import stop_on_signals
from ..operator_audit import Action, audited, database_where, reason_option
from ..runner import run_command
from ..store import events
from ..store.database import Database, Session
from ..store.events import Events
from ..store.undo import UndoCounts, undo_batch, undo_candidates
from ..store.undo_filter import CHANGED_IEM, UndoFilter
from . import INTERRUPTED, batches_database, gave_up, parse_when

log = logging.getLogger("pmtabounce.undo")

SHOW_SKIPPED = 20
DRY_RUN = 0  # the run id a dry run marks rows with, then rolls back


class UndoRun:
    """Batches of one undo (or a dry run of it), each one transaction, retried as a whole when transient."""

    def __init__(self, database: Database, selection: UndoFilter, batch_size: int, run: int = DRY_RUN,
                 stop: threading.Event | None = None, events: Events | None = None) -> None:
        """`events`: the outbox rows of what each batch reverts (docs/events.md); None writes none."""
        self.database = database
        self.events = events
        self.clause, self.params = selection.clause()
        self.batch_size = batch_size
        self.run = run
        self.stop = stop

    def all(self) -> tuple[UndoCounts, bool]:
        """Every batch until none is left, or a stop request between batches: (what was done, completed).
        A dry run (run id 0) rolls each back. Raises FatalError when the database is lost for good."""
        total, after = UndoCounts(), 0
        try:
            while not (self.stop is not None and self.stop.is_set()):
                done = self.database.run(functools.partial(self._batch, after=after), commit=self.run != DRY_RUN)
                if done is None:
                    return total, True
                counts, after = done
                total.add(counts)
        except StopRequested:
            pass
        except GaveUp as exc:
            raise gave_up(exc, self.database, "what was undone stays undone") from None
        return total, False

    def _batch(self, session: Session, after: int) -> tuple[UndoCounts, int] | None:
        """One batch after ledger id `after`: (what it did, the last id), or None when none is left."""
        rows = undo_candidates(session.cursor, session.tables, self.clause, self.params, after, self.batch_size)
        if not rows:
            return None
        return undo_batch(session.cursor, session.tables, rows, self.run, self.events), rows[-1]["id"]


def describe(counts: dict, verb: str) -> str:
    """The summary for people."""
    lines = [f"{counts['records']} records {verb}",
             f"bounce rows removed: {counts['bounce_rows_removed']}",
             f"subscribers re-enabled: {counts['subscribers_reenabled']}"
             + "".join(f"\n  list {k}: {v}" for k, v in counts["reenabled_per_list"].items()),
             f"rows unsubscribed by complaints made active again: {counts['subscribers_resubscribed']}"
             + "".join(f"\n  list {k}: {v}" for k, v in counts["resubscribed_per_list"].items()),
             f"unsubscribe rows removed: {counts['unsubscribe_rows_removed']}, "
             f"pending unsubscribe requests put back: {counts['unsubscribe_requests_restored']}",
             "campaign counters:" + ("".join(f"\n  statid {s}: " + ", ".join(f"{c} {n:+d}" for c, n in cs.items())
                                             for s, cs in counts["campaign_counters"].items()) or " none")]
    skipped = counts["skipped"]
    lines.append(f"skipped, changed since: {len(skipped)}")
    lines += [f"  ledger {s['ledger_id']} {s['email']}: {s['what']} {s['why']}" for s in skipped[:SHOW_SKIPPED]]
    if len(skipped) > SHOW_SKIPPED:
        lines.append(f"  … {len(skipped) - SHOW_SKIPPED} more (--json lists them all)")
    return "\n".join(lines)


def _show(counts: dict, verb: str, as_json: bool, **extra) -> None:
    if as_json:
        click.echo(orjson.dumps({**extra, **counts}, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(describe(counts, verb))


@click.command()
@click.option("--since", callback=lambda _c, _p, v: None if v is None else parse_when(v),
              help="Record time (timeLogged of a bounce or complaint) from, ISO or Unix.")
@click.option("--until", callback=lambda _c, _p, v: None if v is None else parse_when(v),
              help="Record time (timeLogged) until, inclusive.")
@click.option("--domain", multiple=True, help="Recipient's domain (repeatable).")
@click.option("--category", multiple=True, help="PowerMTA bounce category (repeatable; selects bounces only).")
@click.option("--feedback-type", multiple=True,
              help="ARF Feedback-Type of complaints, `empty` for none (repeatable; selects complaints only).")
@click.option("--diag", help="Text in the diagnostic (case-insensitive).")
@click.option("--file", "files", multiple=True, help="Source file name or glob (repeatable).")
@click.option("--email", help="One recipient address.")
@click.option("--outcome", multiple=True, type=click.Choice(CHANGED_IEM),
              help="applied, disabled or unsubscribed (repeatable).")
@click.option("--ledger-id", "ledger_ids", multiple=True, type=click.IntRange(min=1),
              help="One ledger record by its id (repeatable), as `guard release` names a record.")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@reason_option()
@run_command
@audited
def undo(settings: Settings, since, until, domain, category, feedback_type, diag, files, email, outcome, ledger_ids,
         dry_run, yes, as_json, reason) -> None:
    """Revert exactly what the selected ledger records wrote to IEM; rows changed since are left and reported."""
    selection = UndoFilter(since, until, tuple(a_label(d.strip().lstrip("@")) for d in domain),
                           tuple(c.strip().lower() for c in category), diag, tuple(files), email, tuple(outcome),
                           tuple(f.strip().lower() for f in feedback_type), tuple(ledger_ids))
    if selection.empty:
        raise click.UsageError("give at least one filter (--since, --until, --domain, --category, --diag, --file, "
                               "--email, --outcome, --feedback-type, --ledger-id)")
    if since is not None and until is not None and since > until:
        raise click.UsageError("--since is later than --until: no record can match")
    database = batches_database(settings, log=log)
    try:
        preview = UndoRun(database, selection, settings.batch_size,
                          events=events.from_settings(settings, database.tables)).all()[0].as_dict()
    finally:
        database.close()
    if not preview["records"] and not preview["skipped"]:
        # Nothing to ask about and nothing to audit: an operator's typo is not an action.
        click.echo(f"nothing matches {selection.describe()}: no record that changed IEM and is not undone yet; "
                   "check each filter (--file matches the file's own name, --domain and --category are exact)",
                   err=as_json)
        if as_json:
            _show(preview, "would be undone", as_json, dry_run=dry_run, filter=selection.describe())
        return
    if dry_run:
        _show(preview, "would be undone", as_json, dry_run=True, filter=selection.describe())
        return
    if not yes:
        click.echo(describe(preview, "would be undone"), err=True)
        click.confirm("undo these?", abort=True, err=True)
    _undo(settings, selection, as_json, Action("undo", selection.describe(), database_where(settings), reason))


def _undo(settings: Settings, selection: UndoFilter, as_json: bool, action: Action) -> None:
    """The run itself, audited; a stop request ends it between batches (exit 130, `completed: false`)."""
    with stop_on_signals(log=log, then="stopping after the batch in hand") as stop:
        database = batches_database(settings, stop, log)
        try:
            run = database.run(lambda s: action.start(s.cursor, s.tables))
            total, completed = UndoRun(database, selection, settings.batch_size, run, stop,
                                       events.from_settings(settings, database.tables)).all()
            done = total.as_dict()
            counts = ({key: value for key, value in done.items() if key != "skipped"}
                      | {"skipped": len(done["skipped"]), "completed": completed})
            database.run(lambda s: action.finish(s.cursor, s.tables, counts))
        finally:
            database.close()
    action.note(settings.dlq_audit_file, counts)
    _show(done, "undone", as_json, run=run, filter=selection.describe())
    if not completed:
        click.echo("interrupted: the records not yet undone are left as they were; run the same command again "
                   "to go on", err=True)
        sys.exit(INTERRUPTED)
