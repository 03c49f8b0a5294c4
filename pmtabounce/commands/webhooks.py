"""`pmtabounce webhooks list|retry|drop`: the outbox's parked events, the twins of `dlq list|replay|purge`.

A webhook call is parked after PMTABOUNCE_WEBHOOK_ATTEMPTS tries that did not
reach its receiver (docs/events.md). `list` shows them (`--state waiting` the
ones still being tried), `retry` makes them due again now with a fresh count
of tries, `drop` gives them up (kept, marked `dropped`, for `explain`).
Both are audited as every operator action is.
"""

from __future__ import annotations

import click
import orjson

from ..common.config import Settings
from ..operator_audit import Action, audited, database_where, reason_option
from ..runner import run_command
from ..store import outbox
from . import in_transaction

SHOWN = 200


@click.group()
def webhooks() -> None:
    """Parked webhook calls and stream events: list them, send them again, or drop them."""


def _ids(_ctx, _param, value: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(value)


@webhooks.command("list")
@click.option("--state", type=click.Choice(("parked", "waiting", "dropped", "sent")), default="parked",
              show_default=True, help="Which rows to show.")
@click.option("--limit", type=click.IntRange(min=1), default=SHOWN, show_default=True)
@click.option("--body", is_flag=True, help="Show each call's body too.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_command
def list_(settings: Settings, state: str, limit: int, body: bool, as_json: bool) -> None:
    """The outbox rows in STATE (default parked), oldest first: target, URL, tries and the last answer."""
    rows = in_transaction(settings, lambda cursor, t: outbox.listed(cursor, t, state, limit))
    for row in rows:
        row["created_at"] = str(row["created_at"]) if row["created_at"] else None
        if not body:
            row.pop("body")
    if as_json:
        click.echo(orjson.dumps({"state": state, "rows": rows}, option=orjson.OPT_INDENT_2).decode())
        return
    if not rows:
        click.echo(f"no {state} events")
        return
    for r in rows:
        where = r["url"] or "decision stream"
        click.echo(f"{r['id']} {r['target']} {r['event']} -> {where}: {r['attempts']} tries, last: "
                   f"{r['last_answer'] or '-'} (event {r['event_id']}, since {r['created_at']})")
        if body:
            click.echo(f"    {r['body']}")


def _move(settings: Settings, ids: tuple[int, ...], every: bool, to_state: str, name: str,
          reason: str | None) -> None:
    if not ids and not every:
        raise click.UsageError("name the rows (--id, repeatable; see `pmtabounce webhooks list`) or give --all")
    action = Action(name, {"ids": list(ids) or "all parked"}, database_where(settings), reason)

    def work(cursor, t):
        action.start(cursor, t)
        moved = outbox.move(cursor, t, "parked", to_state, ids)
        action.finish(cursor, t, {"events": moved})
        return moved

    moved = in_transaction(settings, work)
    action.note(settings.dlq_audit_file, {"events": moved})
    click.echo(f"{moved} parked events {'due again now' if to_state == 'waiting' else 'dropped'}")


@webhooks.command()
@click.option("--id", "ids", type=int, multiple=True, callback=_ids, help="An outbox row id (repeatable).")
@click.option("--all", "every", is_flag=True, help="Every parked row.")
@reason_option()
@run_command
@audited
def retry(settings: Settings, ids: tuple[int, ...], every: bool, reason: str | None) -> None:
    """Make parked events due again now, with a fresh count of tries (after the receiver is fixed)."""
    _move(settings, ids, every, "waiting", "webhooks retry", reason)


@webhooks.command()
@click.option("--id", "ids", type=int, multiple=True, callback=_ids, help="An outbox row id (repeatable).")
@click.option("--all", "every", is_flag=True, help="Every parked row.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@reason_option()
@run_command
@audited
def drop(settings: Settings, ids: tuple[int, ...], every: bool, yes: bool, reason: str | None) -> None:
    """Give parked events up: never sent, kept as `dropped` for `explain`."""
    if not yes:
        click.confirm(f"drop {'every parked event' if every else f'{len(ids)} parked events'}?", abort=True)
    _move(settings, ids, every, "dropped", "webhooks drop", reason)
