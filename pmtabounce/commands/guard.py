"""`pmtabounce guard status/trip/release/discard`: the domain guard, for an operator.

A tripped domain's hard bounces are held (ledger outcome `held`, nothing
written to IEM). `release` applies them in the order they were held through
the normal apply path, then ends the trip; `discard` marks them `discarded`
(kept as evidence, never applied), then ends the trip. Either may run while
workers run: the domain's guard row is the lock they share.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import click
import orjson

from ..common.config import Settings
from ..common.errors import GaveUp, StopRequested
from ..common.guard import GuardSettings, a_label, valid_domain
from ..common.shutdown import stop_on_signals
from ..operator_audit import Action, audited, database_where, reason_option
from ..runner import run_command
from ..store import events, guard_store
from ..store.database import Database, Session
from ..store.db import Cursor, Tables
from ..worker.apply import BatchApplier
from . import INTERRUPTED, batches_database, gave_up, in_transaction, one_shot
from .explain import iso

log = logging.getLogger("pmtabounce.guard")


@click.group()
def guard() -> None:
    """The domain guard: see tripped domains, trip one, release or discard what it holds."""


def _domain(_ctx, _param, value: str) -> str:
    try:
        return valid_domain(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


_NOT_A_HOST_NAME = "pmtabounce.guard.not_a_host_name"


def _held_domain(ctx: click.Context, _param, value: str) -> str:
    """DOMAIN of release and discard: a host name as for `trip`, or else the name as the guard keeps a
    recipient's domain (common.guard.a_label: as written, lower-cased, when it has an underscore or IDNA
    refuses it), which the guard may have tripped by itself. Such a name is taken only if it is tripped
    (_require_tripped); else the host-name error stands (exit 2)."""
    try:
        return valid_domain(value)
    except ValueError as exc:
        name = a_label(value.strip().removeprefix("@"))
        if not name or "@" in name or any(c.isspace() for c in name):
            raise click.BadParameter(str(exc)) from None
        ctx.meta[_NOT_A_HOST_NAME] = str(exc)
        return name


def _require_tripped(database: Database, domain: str) -> None:
    """Exit 1 (nothing audited) unless the domain is tripped: releasing or discarding it would do nothing.
    A name that is no host name (see _held_domain) and is not tripped is the usage error it was (exit 2)."""
    if not database.run(lambda s: guard_store.tripped(s.cursor, s.tables, domain)):
        problem = click.get_current_context().meta.get(_NOT_A_HOST_NAME)
        if problem:
            raise click.BadParameter(problem, param_hint="'DOMAIN'")
        click.echo(f"{domain} is not tripped: nothing is held for it (see `pmtabounce guard status`)", err=True)
        sys.exit(1)


def _warn_if_off(settings: Settings) -> None:
    if not settings.guard:
        click.echo("warning: the domain guard is off (PMTABOUNCE_GUARD=off): no worker holds anything, "
                   "tripped or not", err=True)


@guard.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@run_command
def status(settings: Settings, as_json: bool) -> None:
    """Tripped domains: since when, by whom, the window that tripped them, records held."""
    _warn_if_off(settings)
    trips = in_transaction(settings, lambda cursor, t: guard_store.tripped(cursor, t))
    rows = [{"domain": r.domain, "tripped_at": iso(r.tripped_at), "tripped_by": r.tripped_by,
             "window_start": iso(r.window_start), "window_count": r.count, "threshold": r.threshold,
             "held": r.held} for r in trips]
    if as_json:
        click.echo(orjson.dumps({"guard": "on" if settings.guard else "off", "tripped": rows},
                                option=orjson.OPT_INDENT_2).decode())
        return
    if not rows:
        click.echo("no domain is tripped: every bounce applies as usual")
        return
    for r in rows:
        why = (f"the {r['window_count']} hard bounces of the window from {r['window_start']} reached "
               f"the bar of {r['threshold']}") if r["window_start"] else "tripped by hand"
        click.echo(f"{r['domain']}: {r['held']} held since {r['tripped_at']}, by {r['tripped_by']} ({why})")


@guard.command()
@click.argument("domain", callback=_domain)
@reason_option()
@run_command
@audited
def trip(settings: Settings, domain: str, reason: str | None) -> None:
    """Hold DOMAIN's hard bounces from now on (a provider's status page says it misbehaves)."""
    action = Action("guard trip", {"domain": domain}, database_where(settings), reason)

    def work(cursor: Cursor, t: Tables) -> bool:
        run = action.start(cursor, t)
        tripped = guard_store.trip(cursor, t, domain, action.by, int(time.time()))
        if tripped:
            _event(settings, cursor, t, "guard.tripped", {"domain": domain, "by": action.by, "run": run}, run)
        action.finish(cursor, t, {"tripped": int(tripped)})
        return tripped

    tripped = in_transaction(settings, work)
    action.note(settings.dlq_audit_file, {"tripped": int(tripped)})
    click.echo(f"{domain}: tripped; its hard bounces are held from now on" if tripped
               else f"{domain} was tripped already")
    _warn_if_off(settings)


SLOT_TAKEN_EXIT = 3  # README "Exit codes": a release left records held whose bounce slot a soft bounce took


@guard.command()
@click.argument("domain", callback=_held_domain)
@click.option("--dry-run", is_flag=True, help="Show what would be applied; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@reason_option()
@run_command
@audited
def release(settings: Settings, domain: str, dry_run: bool, as_json: bool, reason: str | None) -> None:
    """Apply DOMAIN's held records in the order they were held, through the normal apply path; end the trip.

    A held hard record whose row a later record changed during the hold (a soft bounce took its bounce slot,
    a complaint unsubscribed the row, another bounce was applied to it) stays held and is reported (exit 3),
    and so do the later held records of its address: applied now it would not do what a run without the
    guard did (disable the row first).
    """
    stop = threading.Event()
    database = batches_database(settings, stop, log)
    try:
        _require_tripped(database, domain)
        if dry_run:
            held = _held_summary(database, domain)
            _echo_release(domain, {"would_apply": held}, held.pop("slot_taken"), as_json)
            sys.exit(SLOT_TAKEN_EXIT if held["slot_taken_count"] else 0)
        action = Action("guard release", {"domain": domain}, database_where(settings), reason)
        with stop_on_signals(stop, log=log, then="stopping after the batch in hand"):
            run = database.run(lambda s: action.start(s.cursor, s.tables))
            released = release_held(settings, database, domain, run, stop)
            counts = released.counts()
            database.run(lambda s: action.finish(s.cursor, s.tables, counts))
    finally:
        database.close()
    action.note(settings.dlq_audit_file, counts)
    _echo_release(domain, {"run": run, **counts}, released.taken, as_json)
    if not released.completed:
        click.echo(f"interrupted: {domain} stays tripped and what is still held stays held; run the same command "
                   "again to go on", err=True)
        sys.exit(INTERRUPTED)
    sys.exit(1 if released.refused else SLOT_TAKEN_EXIT if released.taken else 0)


def _echo_release(domain: str, report: dict, taken: list[guard_store.SlotTaken], as_json: bool) -> None:
    rows = [{"email": s.email, "listid": s.listid, "statid": s.statid, "taken_by": f"{s.taker_file}:{s.taker_line}",
             "taken_by_category": s.taker_category, "taken_how": s.how, "undo": s.undo_command(), "why": s.what()}
            for s in taken]
    if as_json:
        click.echo(orjson.dumps({"domain": domain, **report, "slot_taken": rows},
                                option=orjson.OPT_INDENT_2).decode())
        return
    summary = report.get("would_apply", report)
    click.echo(f"{domain}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items()
                                         if not isinstance(v, dict)))
    for r in rows:
        click.echo(f"still held: {r['email']} list {r['listid']} campaign {r['statid']}: {r['why']}; "
                   f"undo that record and release again ({r['undo']} --yes), or discard")


@dataclass
class Released:
    """What a release did: outcomes applied, records the database refused, records left held because a later
    record changed their row during the hold (guard_store.slots_taken), records left held in all (those and the
    later held records of the same addresses), and whether it ran to the end (not stopped between batches)."""

    outcomes: Counter = field(default_factory=Counter)
    refused: int = 0
    taken: list[guard_store.SlotTaken] = field(default_factory=list)
    kept: int = 0
    completed: bool = False

    def counts(self) -> dict:
        return {"applied": sum(self.outcomes.values()),
                **{f"outcome_{k}": v for k, v in sorted(self.outcomes.items())},
                "refused": self.refused, "slot_taken": len(self.taken), "kept_held": self.kept,
                "completed": self.completed}


def release_held(settings: Settings, database: Database, domain: str, run: int,
                 stop: threading.Event | None = None) -> Released:
    """Apply the domain's held records batch by batch as audit run `run`, then end its trip once none is left;
    a stop request ends it between batches. While any record was refused or is left held, the trip stays."""
    applier = BatchApplier(settings.mysql, database.tables, settings.policy,
                           guard=GuardSettings.from_settings(settings), database=database,
                           events=events.from_settings(settings, database.tables))
    released, after = Released(), 0
    first_kept: dict[str, int] = {}
    try:
        while not (stop is not None and stop.is_set()):
            batch, batch_taken = database.run(functools.partial(_held_batch, domain=domain, after=after,
                                                                limit=settings.batch_size))
            if not batch:
                if released.refused or released.taken or database.run(functools.partial(
                        _end_trip_if_empty, settings=settings, domain=domain, outcomes=released.outcomes, run=run)):
                    released.completed = True
                    return released
                after = 0  # a worker held more while we released: go round again
                continue
            released.taken += batch_taken
            kept = _kept(batch, batch_taken, first_kept)
            released.kept += len(kept)
            result = applier.release([record for id_, record in batch if id_ not in kept], run)
            released.outcomes.update(o.outcome for o in result.outcomes)
            released.refused += len(result.failed)
            after = batch[-1][0]
    except StopRequested:
        pass
    except GaveUp as exc:
        raise gave_up(exc, database, "what was released stays released") from None
    return released


def _kept(batch: list, taken: list[guard_store.SlotTaken], first_kept: dict[str, int]) -> set[int]:
    """The ledger ids of this batch to keep held: those a later record overtook, and every later held record of
    the same address (released before the one kept, it would land where that one lands without the guard).
    `first_kept`: address (lower case) -> the first ledger id kept for it, across batches; updated."""
    for s in taken:
        first_kept.setdefault(s.email.lower(), s.held_id)
    return {id_ for id_, record in batch if id_ >= first_kept.get(record.rcpt.lower(), id_ + 1)}


def _held_batch(session: Session, domain: str, after: int, limit: int):
    batch = guard_store.held_records(session.cursor, session.tables, domain, after, limit)
    return batch, guard_store.slots_taken(session.cursor, session.tables, [id_ for id_, _ in batch])


def _end_trip_if_empty(session: Session, settings: Settings, domain: str, outcomes: Counter, run: int) -> bool:
    cursor, t = session.cursor, session.tables
    guard_store.lock_domains(cursor, t, [domain])
    if guard_store.held_records(cursor, t, domain, 0, 1):
        return False
    guard_store.end_trip(cursor, t, domain)
    _event(settings, cursor, t, "guard.released", {"domain": domain, "run": run, "outcomes": dict(outcomes)}, run)
    return True


def _held_summary(database: Database, domain: str) -> dict:
    def work(session: Session) -> dict:
        cursor, t = session.cursor, session.tables
        categories: Counter = Counter()
        times: list[int] = []
        taken: list[guard_store.SlotTaken] = []
        first_kept: dict[str, int] = {}
        kept = after = 0
        while batch := guard_store.held_records(cursor, t, domain, after, 5000):
            categories.update(record.category for _, record in batch)
            times += [min(r.time_logged for _, r in batch), max(r.time_logged for _, r in batch)]
            batch_taken = guard_store.slots_taken(cursor, t, [id_ for id_, _ in batch])
            taken += batch_taken
            kept += len(_kept(batch, batch_taken, first_kept))
            after = batch[-1][0]
        return {"records": sum(categories.values()), "by_category": dict(categories),
                "first": iso(min(times, default=None)), "last": iso(max(times, default=None)),
                "slot_taken_count": len(taken), "kept_held": kept, "slot_taken": taken}

    return database.run(work)


@guard.command()
@click.argument("domain", callback=_held_domain)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Show what would be discarded; change nothing.")
@reason_option()
@run_command
@audited
def discard(settings: Settings, domain: str, yes: bool, dry_run: bool, reason: str | None) -> None:
    """Mark DOMAIN's held records discarded (kept as evidence, never applied); end the trip."""
    database = one_shot(settings)
    try:
        _require_tripped(database, domain)
        held = _held_summary(database, domain)
    finally:
        database.close()
    if dry_run:
        click.echo(f"{domain}: would discard {held['records']} held records "
                   f"({', '.join(f'{c} {n}' for c, n in held['by_category'].items()) or 'none'}) and end the trip")
        return
    if not yes:
        click.confirm(f"discard {held['records']} held records of {domain}?", abort=True)
    action = Action("guard discard", {"domain": domain}, database_where(settings), reason)

    def work(cursor: Cursor, t: Tables) -> int:
        run = action.start(cursor, t)
        guard_store.lock_domains(cursor, t, [domain])
        discarded = guard_store.discard_held(cursor, t, domain, run)
        guard_store.end_trip(cursor, t, domain)
        _event(settings, cursor, t, "guard.discarded", {"domain": domain, "by": action.by, "run": run,
                                                        "discarded": discarded}, run)
        action.finish(cursor, t, {"discarded": discarded})
        return discarded

    discarded = in_transaction(settings, work)
    action.note(settings.dlq_audit_file, {"discarded": discarded})
    click.echo(f"{domain}: {discarded} held records discarded; the trip is ended")


def _event(settings: Settings, cursor: Cursor, t: Tables, key: str, data: dict, unique: object) -> None:
    """The operator's guard decision on the decision stream, in the same transaction (docs/events.md)."""
    events.from_settings(settings, t).decision(cursor, key, [(data, (data["domain"], unique), data["domain"])])
