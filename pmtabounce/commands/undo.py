"""`pmtabounce undo [filters] [--dry-run] [--yes] [--json]`: revert exactly what selected records wrote.

The summary of what would change is always shown first (records, bounce rows,
subscribers re-enabled per list, campaign counters, rows skipped because they
changed since); without --dry-run it then asks (unless --yes) and acts, batch
by batch, each one transaction. Every run is audited: a row in our audit
table (its id is the run id the reverted ledger rows carry), an INFO line,
and a line in PMTABOUNCE_DLQ_AUDIT_FILE (one audit file for every operator action).
"""

from __future__ import annotations

import logging

import click
import orjson
from tenacity import Retrying, retry_if_exception_type, stop_after_delay
from tenacity.wait import wait_exponential, wait_random

from ..common.config import Settings
from ..common.errors import TransientError
from ..common.guard import a_label
from ..operator_audit import Action, audited, database_where, reason_option
from ..runner import run_command
from ..store import events
from ..store.db import Connection, Tables, connect, translate
from ..store.undo import UndoCounts, undo_batch, undo_candidates
from ..store.undo_filter import CHANGED_IEM, UndoFilter
from . import database_failure, in_transaction, parse_when

log = logging.getLogger("pmtabounce.undo")

SHOW_SKIPPED = 20
DRY_RUN = 0  # the run id a dry run marks rows with, then rolls back


class UndoRun:
    """Batches of one undo (or a dry run of it) over one connection, each retried as a whole when transient."""

    def __init__(self, settings: Settings, selection: UndoFilter, run: int = DRY_RUN) -> None:
        self.settings = settings
        self.tables = Tables(settings.table_prefix)
        self.clause, self.params = selection.clause()
        self.run = run
        self.events = events.from_settings(settings, self.tables)
        self.connection: Connection | None = None
        self.retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            wait=wait_exponential(multiplier=0.1, max=settings.retry_max_wait) + wait_random(0, 0.5),
            stop=stop_after_delay(600), reraise=True,
        )

    def all(self) -> UndoCounts:
        """Every batch until none is left; a dry run (run id 0) rolls each back."""
        total, after = UndoCounts(), 0
        try:
            while (done := self.retrying(self._batch, after)) is not None:
                counts, after = done
                total.add(counts)
            return total
        finally:
            if self.connection is not None:
                self.connection.close()

    def _batch(self, after: int) -> tuple[UndoCounts, int] | None:
        """One batch after ledger id `after`: (what it did, the last id), or None when none is left."""
        try:
            if self.connection is None:
                self.connection = connect(self.settings.mysql)
            connection = self.connection
            with connection.cursor() as cursor:
                rows = undo_candidates(cursor, self.tables, self.clause, self.params, after,
                                       self.settings.batch_size)
                counts = undo_batch(cursor, self.tables, rows, self.run, self.events) if rows else None
            if self.run == DRY_RUN:
                connection.rollback()
            else:
                connection.commit()
            return (counts, rows[-1]["id"]) if counts is not None else None
        except Exception as exc:
            error = translate(exc)
            if self.connection is not None:
                try:
                    self.connection.rollback()
                except Exception:  # gone: forget it, the retry connects again
                    pass
                if isinstance(error, TransientError):
                    self.connection.close()
                    self.connection = None
            if isinstance(error, TransientError) or error is exc:
                raise error from exc
            raise database_failure(exc, self.settings) from exc


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
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@reason_option()
@run_command
@audited
def undo(settings: Settings, since, until, domain, category, feedback_type, diag, files, email, outcome, dry_run,
         yes, as_json, reason) -> None:
    """Revert exactly what the selected ledger records wrote to IEM; rows changed since are left and reported."""
    selection = UndoFilter(since, until, tuple(a_label(d.strip().lstrip("@")) for d in domain),
                           tuple(c.strip().lower() for c in category), diag, tuple(files), email, tuple(outcome),
                           tuple(f.strip().lower() for f in feedback_type))
    if selection.empty:
        raise click.UsageError("give at least one filter (--since, --until, --domain, --category, --diag, --file, "
                               "--email, --outcome, --feedback-type)")
    if since is not None and until is not None and since > until:
        raise click.UsageError("--since is later than --until: no record can match")
    preview = UndoRun(settings, selection).all().as_dict()
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
    action = Action("undo", selection.describe(), database_where(settings), reason)
    run = in_transaction(settings, action.start)
    done = UndoRun(settings, selection, run).all().as_dict()
    counts = {key: value for key, value in done.items() if key != "skipped"} | {"skipped": len(done["skipped"])}
    in_transaction(settings, lambda cursor, t: action.finish(cursor, t, counts))
    action.note(settings.dlq_audit_file, counts)
    _show(done, "undone", as_json, run=run, filter=selection.describe())
