"""`pmtabounce dlq`: see, export, fix and replay what the workers could not apply.

Every command holds the dead-letter queue's lock while it works, reads the
queue by holding its messages unacknowledged and hands back whatever it did
not remove in the original order. Replay and purge ask before they act
(unless --yes): the question is asked with no connection open, and the answer
covers exactly the messages that were shown.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import click
from pika.exceptions import AMQPError

from ..common import broker
from ..common.config import Settings
from ..common.errors import FatalError, TransientError
from ..common.shutdown import stop_on_signals
from ..operator_audit import audited, operator, reason_option
from ..runner import run_command
from .audit import audit
from .export_file import ExportFileError, ExportWriter, read_lines, to_line
from .replay import ReplayRun, parse_rate, plan_replay
from .selection import Selection, only_confirmed, parse_age
from .session import DeadLetterQueue
from .transfer import export_letters, import_letters
from .view import (
    SHOW_ROWS,
    console,
    counts_table,
    letters_table,
    listing_json,
    print_letter,
    print_plan,
    progress_bar,
)

log = logging.getLogger("pmtabounce.dlq")

LIST_ROWS = 500  # rows `dlq list` prints without --limit; the counts cover them all
CONSUMER_TIMEOUT_MINUTES = 25  # RabbitMQ takes back unacked messages after 30 minutes by default
# A run stopped by its first SIGTERM/SIGINT is not done: 128 + SIGINT, as a shell reports Ctrl-C, so a
# script can tell it from 0 (README, "Exit codes"). Its audit line is written before it exits.
INTERRUPTED = 130
ALL_REFUSED = 4  # `replay` selected messages and replayed none: the loop guard refused every one


@click.group()
def dlq() -> None:
    """See, export, replay and purge the dead-letter queue.

    Messages land there when a worker could not apply them (the reason is in
    the message) or when RabbitMQ gave up on them (delivery limit, rejected,
    expired). Fix the cause, then `dlq replay`.
    """


def _age(_ctx, param, value):
    try:
        return parse_age(value) if value else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def selection_options(func):
    """The filters every command shares; the command receives them as one Selection."""

    @click.option("--reason", "reasons", multiple=True, metavar="WHY",
                  help="Why it died: invalid_message, database_refused, rejected, delivery_limit, expired "
                       "(or the start of one). Repeat for several.")
    @click.option("--older-than", callback=_age, metavar="AGE", help="Dead for longer than AGE (30s, 15m, 1h, 2d).")
    @click.option("--newer-than", callback=_age, metavar="AGE", help="Dead for at most AGE.")
    @click.option("--file", "files", multiple=True, metavar="NAME",
                  help="From this accounting file (a name or a glob such as 'bounces-2024-11-*').")
    @click.option("--grep", metavar="TEXT", help="TEXT appears in the reason (case does not matter).")
    @click.option("--id", "ids", multiple=True, metavar="ID", help="This message id (or its first 8+ characters).")
    @click.option("--limit", type=click.IntRange(min=1), help="At most this many messages.")
    @functools.wraps(func)
    def wrapper(*args, reasons, older_than, newer_than, files, grep, ids, limit, **kwargs):
        try:
            selection = Selection(tuple(reasons), older_than, newer_than, tuple(files), grep, tuple(ids), limit)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        return func(*args, selection=selection, **kwargs)

    return wrapper


@contextmanager
def broker_errors() -> Iterator[None]:
    """A broker failure mid-command ends it with words, not a traceback: nothing unconfirmed was removed."""
    try:
        yield
    except (AMQPError, TransientError) as exc:
        error = broker.translate(exc)
        if isinstance(error, FatalError):
            raise error from None
        raise FatalError(
            f"{error}. Every message not yet confirmed is still in the dead-letter queue; run the command again."
        ) from None


@dlq.command("list")
@selection_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@run_command
def list_command(settings: Settings, selection: Selection, as_json: bool) -> None:
    """A table of dead letters: when, why, source file and line, recipient, category; counts per reason."""
    shown_selection = replace(selection, limit=None)
    with broker_errors(), DeadLetterQueue.open(settings) as queue:
        depth = queue.depth()
        letters = queue.browse()
        queue.release()
    chosen = shown_selection.pick(letters)
    shown = chosen if selection.limit is None else chosen[: selection.limit]
    if as_json:
        click.echo(listing_json(queue.name, depth, len(letters), chosen, shown))
        return
    out = console()
    title = f"{queue.name}: {len(chosen)} of {len(letters)} messages match ({selection.describe()})"
    if depth > len(letters):
        title += f"; only the first {len(letters)} of {depth} could be read at once"
    out.print(letters_table(shown, title, rows=selection.limit or LIST_ROWS))
    if chosen:
        out.print(counts_table(chosen))


@dlq.command()
@click.argument("message_id")
@click.option("--json", "as_json", is_flag=True, help="Print it as a line of the export file.")
@run_command
def show(settings: Settings, message_id: str, as_json: bool) -> None:
    """One message in full: properties, headers, death history and the body."""
    with broker_errors(), DeadLetterQueue.open(settings) as queue:
        found = [letter for letter in queue.browse() if letter.id.startswith(message_id)]
        queue.release()
    if not found:
        raise FatalError(f"no message in {queue.name} has an id starting with {message_id!r}")
    out = console()
    for letter in found:
        if as_json:
            click.echo(to_line(letter, queue.name), nl=False)
        else:
            print_letter(out, letter)


@dlq.command()
@click.argument("path", metavar="FILE.jsonl", type=click.Path(path_type=Path, dir_okay=False))
@selection_options
@click.option("--take", is_flag=True, help="Remove each exported message from the queue (after it is on disk).")
@click.option("--append", is_flag=True, help="Add to FILE instead of refusing when it exists.")
@reason_option("--why")
@run_command
@audited
def export(settings: Settings, path: Path, selection: Selection, take: bool, append: bool,
           reason: str | None) -> None:
    """Write dead letters to FILE.jsonl, one JSON object a line (body, properties, headers).

    Without --take the queue is left exactly as it was.
    """
    if path.exists() and not append:
        raise FatalError(f"{path} exists: choose another name, or --append to add to it")
    # Connected first: a refused login must not leave an empty FILE that the retry then refuses.
    with broker_errors(), DeadLetterQueue.open(settings) as queue, _export_writer(path, append) as writer, \
            stop_on_signals(log=log, then="stopping after the message in hand") as stop:
        chosen = selection.pick(queue.browse())
        written = export_letters(queue, chosen, writer, queue.name, take=take, stop=stop)
        queue.release()
    if take:
        audit(settings, "export --take", selection, queue.name, reason, taken=written, file=str(path))
    what = "removed from" if take else "left in"
    click.echo(f"wrote {written} messages to {path} ({what} {queue.name})")
    if written < len(chosen):
        click.echo(f"interrupted: {len(chosen) - written} matching messages were not exported", err=True)
        sys.exit(INTERRUPTED)


def _export_writer(path: Path, append: bool) -> ExportWriter:
    """ExportWriter(path), its refusals as FatalError (the file appeared meanwhile, or cannot be created)."""
    try:
        return ExportWriter(path, append=append)
    except FileExistsError:
        raise FatalError(f"{path} exists: choose another name, or --append to add to it") from None
    except OSError as exc:
        raise FatalError(f"cannot write {path}: {exc.strerror}") from None


@dlq.command("import")
@click.argument("path", metavar="FILE.jsonl", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@reason_option()
@run_command
@audited
def import_command(settings: Settings, path: Path, reason: str | None) -> None:
    """Publish the messages of FILE.jsonl back into the dead-letter queue, byte for byte, with confirms.

    A message already in the queue (same id and body) is not added twice.
    """
    try:
        letters = list(read_lines(path))
    except ExportFileError as exc:
        raise FatalError(f"{path}: {exc}") from None
    with broker_errors(), DeadLetterQueue.open(settings) as queue:
        present = queue.browse()
        queue.release()
        result = import_letters(queue, letters, present, queue.topology.dead_exchange)
    audit(settings, "import", Selection(), queue.name, reason, published=result.published,
          already_there=result.already_there, file=str(path))
    click.echo(f"imported {result.published} messages into {queue.name}; "
               f"{result.already_there} were already there")


@dlq.command()
@selection_options
@click.option("--dry-run", is_flag=True, help="Show what would be replayed, and change nothing.")
@click.option("--rate", metavar="N/s", help="At most N messages per second (5, 5/s, 120/m).")
@click.option("--max-replays", type=click.IntRange(min=0), default=None,
              help="Refuse messages replayed this many times already [default: PMTABOUNCE_MAX_REPLAYS, 3].")
@click.option("--force", is_flag=True, help="Replay them even past --max-replays.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@reason_option("--why")
@run_command
@audited
def replay(settings: Settings, selection: Selection, dry_run: bool, rate: str | None, max_replays: int | None,
           force: bool, yes: bool, reason: str | None) -> None:
    """Put dead letters back on the work queue once their cause is fixed.

    Each is removed from the dead-letter queue only after RabbitMQ confirmed its
    copy on the work exchange. Interrupt it at any time and run it again: nothing
    is lost, and a message replayed twice is absorbed by the workers' ledger.
    """
    try:
        per_second = parse_rate(rate) if rate else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--rate") from None
    limit = settings.max_replays if max_replays is None else max_replays
    confirmed = None
    if dry_run or not yes:
        plan = _with_queue(settings, lambda q: plan_replay(selection.pick(q.browse()), limit, force))
        print_plan(plan, "would replay" if dry_run else "to replay", limit)
        if dry_run:
            return
        if not plan.replay:
            _exit_if_all_refused(len(plan.refused))
            return
        click.confirm(f"Replay {len(plan.replay)} messages to the work queue?", abort=True, err=True)
        confirmed = Counter(letter.identity for letter in plan.replay)
    _replay(settings, selection, limit, force, per_second, confirmed, show_plan=yes, reason=reason)


def _replay(settings: Settings, selection: Selection, limit: int, force: bool, rate: float | None,
            confirmed: Counter | None, show_plan: bool, reason: str | None) -> None:
    with broker_errors(), DeadLetterQueue.open(settings) as queue, \
            stop_on_signals(log=log, then="stopping after the message in hand") as stop:
        plan = plan_replay(only_confirmed(selection.pick(queue.browse()), confirmed), limit, force)
        if show_plan:
            print_plan(plan, "to replay", limit)
        _warn_if_slow(len(plan.replay), rate)
        run = ReplayRun(queue, queue.topology.exchange, operator(), rate)
        finished = False
        try:
            with progress_bar(len(plan.replay), "replaying") as advance:
                finished = run.run(plan.replay, stop, advance)
        finally:  # audited even when the run fails half-way: what was replayed stays replayed
            audit(settings, "replay", selection, queue.name, reason, replayed=len(run.done), refused=len(plan.refused),
                  forced=force, completed=finished)
            queue.release()
    click.echo(f"replayed {len(run.done)} messages to {queue.topology.exchange}; "
               f"{len(plan.refused)} refused by the loop guard")
    if not finished:
        click.echo(f"interrupted: {len(plan.replay) - len(run.done)} messages were not replayed; "
                   "run the same command again to go on", err=True)
        sys.exit(INTERRUPTED)
    if not run.done:
        _exit_if_all_refused(len(plan.refused))


def _exit_if_all_refused(refused: int) -> None:
    """Exit ALL_REFUSED when messages were selected and the loop guard refused every one: a script must not
    take a replay of nothing for a replay done."""
    if refused:
        click.echo(f"nothing replayed: the loop guard refused all {refused} selected messages (replayed "
                   "--max-replays times already); fix their cause, then replay with --force", err=True)
        sys.exit(ALL_REFUSED)


@dlq.command()
@selection_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@reason_option("--why")
@run_command
@audited
def purge(settings: Settings, selection: Selection, yes: bool, reason: str | None) -> None:
    """Remove dead letters for good (with the same filters as list)."""
    confirmed = None
    if not yes:
        chosen = _with_queue(settings, lambda q: selection.pick(q.browse()))
        console().print(letters_table(chosen, f"to remove for good ({selection.describe()})", rows=SHOW_ROWS))
        if not chosen:
            return
        click.confirm(f"Remove these {len(chosen)} messages for good?", abort=True, err=True)
        confirmed = Counter(letter.identity for letter in chosen)
    with broker_errors(), DeadLetterQueue.open(settings) as queue:
        chosen = only_confirmed(selection.pick(queue.browse()), confirmed)
        for letter in chosen:
            queue.remove(letter)
        queue.release()
    audit(settings, "purge", selection, queue.name, reason, removed=len(chosen))
    out = console()
    out.print(letters_table(chosen, f"removed {len(chosen)} messages from {queue.name}", rows=SHOW_ROWS))
    if chosen:
        out.print(counts_table(chosen))


def _with_queue(settings: Settings, read):
    """Read the queue (holding nothing afterwards) before asking a question with no connection open."""
    with broker_errors(), DeadLetterQueue.open(settings) as queue:
        try:
            return read(queue)
        finally:
            queue.release()


def _warn_if_slow(count: int, rate: float | None) -> None:
    if rate and count / rate > CONSUMER_TIMEOUT_MINUTES * 60:
        click.echo(
            f"warning: {count} messages at {rate:g}/s take {count / rate / 60:.0f} minutes; RabbitMQ takes back "
            "messages held longer than its consumer timeout (30 minutes by default) and the run then stops. "
            "Nothing is lost, but --limit makes shorter runs.",
            err=True,
        )
