"""`pmtabounce status`: what an operator looks at first.

Files waiting in the bounce directory, the work queue (ready, unacked,
consumers), dead letters, what the ledger says was applied in the last hour
and day, and when the last apply was. Each part is read on its own: a part
whose service cannot be reached says so and the others still show. The exit
code is 1 when any part is not ok — down, not configured, or a backlog that no
worker consumes — so a cron job or a probe can alert on it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.table import Table

from .. import queues
from ..common.bouncedir import directory_problem, scan_directory
from ..common.broker import safe_url
from ..common.config import Settings
from ..common.errors import FatalError, PmtaBounceError
from ..queue_policy import management_api
from ..runner import run_command
from ..store import guard_store, ledger, outbox
from ..store.database import ONE_SHOT, Cursor, Database
from ..store.db import Tables
from ..worker.plan import COMPLAINT_OUTCOMES, OUTCOMES

OK, DOWN, NOT_CONFIGURED, NOT_CONSUMED, NOT_USED = "ok", "down", "not configured", "not consumed", "not used"
BELOW_QUORUM = "below quorum"
# A record met again adds to its first row's seen_count: the ledger never holds a "duplicate" row.
LEDGER_OUTCOMES = tuple(name for name in OUTCOMES if name != "duplicate")
COMPLAINT_LEDGER_OUTCOMES = tuple(name for name in COMPLAINT_OUTCOMES if name != "duplicate")
HOUR, DAY = 3600, 86400


@dataclass
class Part:
    """One thing status looks at: its state, what it found, and what went wrong."""

    name: str
    state: str = OK
    facts: dict = field(default_factory=dict)
    problem: str | None = None

    def as_dict(self) -> dict:
        entry = {"state": self.state, **self.facts}
        if self.problem:
            entry["problem"] = self.problem
        return entry


@dataclass
class Report:
    parts: list[Part]

    @property
    def ok(self) -> bool:
        """Every part this mode needs configured, reachable and moving; anything else is worth an alert."""
        return all(part.state in (OK, NOT_USED) for part in self.parts)

    def as_dict(self) -> dict:
        return {"ok": self.ok, **{part.name: part.as_dict() for part in self.parts}}


def gather(settings: Settings, directory: Path | None = None, now: float | None = None) -> Report:
    """Every part, each read on its own. Without PMTABOUNCE_AMQP_URL it is inline mode (`process`): the queues
    are not used; with it, fleet mode, where the bounce directory is the producer host's to check (a worker
    host has none): unset there, it is not used either. The database is needed in both."""
    now = time.time() if now is None else now
    fleet = bool(settings.amqp_url)
    return Report([bounce_dir_part(directory or settings.bounce_dir, now, needed=not fleet),
                   *broker_parts(settings), ledger_part(settings, now)])


def bounce_dir_part(directory: Path | None, now: float, needed: bool = True) -> Part:
    """Files waiting and the oldest's age. Status only lists and reads: a read-only directory (compose mounts it
    so for status) is fine here, and shown as `writable: false` for what process and the producer need."""
    part = Part("bounce_dir")
    if directory is None:
        if needed:
            return _not_configured(part, "PMTABOUNCE_BOUNCE_DIR is not set")
        return _not_used(part, "fleet mode: the producer's host checks its bounce directory (PMTABOUNCE_BOUNCE_DIR)")
    part.facts["path"] = str(directory)
    try:
        files, links = scan_directory(directory)
        mtimes = [path.stat().st_mtime for path in files]
    except OSError as exc:
        return _down(part, f"cannot read {directory}: {exc.strerror or exc}")
    part.facts["pending_files"] = len(files)
    if links:
        part.facts["links_skipped"] = [path.name for path in links]
    part.facts["oldest_pending_age_seconds"] = round(now - min(mtimes), 1) if mtimes else None
    problem = directory_problem(directory, write=False)
    if problem:
        return _down(part, problem)
    part.facts["writable"] = directory_problem(directory) is None
    return part


def broker_parts(settings: Settings) -> list[Part]:
    """The work queue and the dead-letter queue; unacked counts from the management API.

    The API is PMTABOUNCE_RABBITMQ_API_URL, else each AMQP node's host on port 15672 with its login, as
    `setup` uses it (queue_policy.management_api); only a set URL that does not answer makes the queue down.
    It also tells the quorum queue's leader and members online: with half of them or fewer online, the
    queue confirms and delivers nothing, and the part is `below quorum`.
    """
    queue, dead = Part("queue"), Part("dead_letter")
    if not settings.amqp_url:
        return [_not_used(p, "inline mode: PMTABOUNCE_AMQP_URL is not set") for p in (queue, dead)]
    topology = settings.topology
    queue.facts.update(broker=safe_url(settings.amqp_url), name=topology.queue)
    dead.facts["name"] = topology.dead_queue
    try:
        work, dead_counts, node = queues.read_queues(settings.amqp_url, topology)
    except PmtaBounceError as exc:
        return [_down(queue, str(exc)), _down(dead, str(exc))]
    queue.facts["broker"] = node
    queue.facts.update(ready=work.ready, unacked=None, consumers=work.consumers)
    dead.facts["messages"] = dead_counts.ready
    if work.ready and not work.consumers:
        queue.state = NOT_CONSUMED
        queue.problem = f"{work.ready} messages wait and no worker consumes them (start `pmtabounce worker`)"
    try:
        api, vhost = management_api(settings), queues.vhost_of(settings.amqp_url)
        counts = queues.read_api_counts(api, vhost, work.name)
        clients = queues.read_clients(api, vhost)
    except PmtaBounceError as exc:
        if not settings.rabbitmq_api_url:  # only the usual place was tried: optional, so not a part down
            queue.facts["unacked_note"] = (f"unknown: {exc}; set PMTABOUNCE_RABBITMQ_API_URL (the management API, "
                                           "a user with the monitoring or policymaker tag) to see it")
            return [queue, dead]
        queue.facts["unacked_note"] = "unknown: the management API did not answer"
        return [_down(queue, str(exc)), dead]
    queue.facts["unacked"] = counts.unacked
    queue.facts["processes"] = [{"process": c.process.removeprefix("pmtabounce-"), "node": c.node,
                                 "connected_since": _iso(c.connected_at)} for c in clients]
    quorum(queue, counts, "ready")
    try:
        quorum(dead, queues.read_api_counts(api, vhost, dead.facts["name"]), "messages")
    except PmtaBounceError as exc:
        dead.problem = f"its nodes online unknown: {exc}"
    return [queue, dead]


def quorum(part: Part, counts: queues.ApiCounts, count: str) -> None:
    """A quorum queue's leader and members online, into `part`; below quorum, the part says so and its
    `count` fact becomes None (unknown): RabbitMQ answers 0 messages for a quorum queue whose leader it
    cannot reach (rabbit_quorum_queue:stat), whatever the queue holds."""
    if counts.members:
        part.facts.update(leader=counts.leader, members=list(counts.members), online=list(counts.online))
    if counts.below_quorum:
        part.state = BELOW_QUORUM
        part.facts[count] = None
        part.problem = (f"only {len(counts.online)} of its {len(counts.members)} nodes are online "
                        f"({', '.join(counts.online) or 'none'}): the quorum queue takes and delivers nothing, "
                        f"and RabbitMQ cannot count its messages, until {len(counts.members) // 2 + 1} are")


def ledger_part(settings: Settings, now: float) -> Part:
    part = Part("ledger")
    if not settings.mysql_url:
        return _not_configured(part, "PMTABOUNCE_MYSQL_URL is not set")
    target = settings.mysql
    part.facts["database"] = target.safe_url()
    tables = Tables(settings.table_prefix)
    database = Database(target, tables, ONE_SHOT)
    try:
        with database.transaction(commit=False) as session:
            cursor = session.cursor
            windows = {f"{prefix}last_{span}": _outcomes(cursor, tables, seconds, names, complaints=bool(prefix))
                       for prefix, names in (("", LEDGER_OUTCOMES), ("complaints_", COMPLAINT_LEDGER_OUTCOMES))
                       for span, seconds in (("hour", HOUR), ("day", DAY))}
            last = ledger.last_applied(cursor, tables)
            trips = guard_store.tripped(cursor, tables)
            size = ledger.extent(cursor, tables)
            events = outbox.summary(cursor, tables, HOUR)
    except FatalError as exc:
        if not database.connections:
            return _down(part, f"cannot reach the database at {target.safe_url()} ({exc})")
        return _down(part, f"cannot read {tables.ledger} ({exc}); has `pmtabounce setup` run?")
    finally:
        database.close()
    part.facts.update(
        **windows,
        last_applied_at=_iso(last),
        last_applied_age_seconds=round(now - last, 1) if last is not None else None,
        tripped_domains=[{"domain": r.domain, "since": _iso(r.tripped_at), "held": r.held} for r in trips],
        rows_estimate=size.rows,  # InnoDB's estimate: COUNT(*) would read the whole ledger
        oldest_at=_iso(size.oldest),
        oldest_age_seconds=round(now - size.oldest, 1) if size.oldest is not None else None,
        guard="on" if settings.guard else "off",
        events_last_hour=events,  # per target: waiting, parked, sent and retried (docs/events.md)
    )
    return part


def _outcomes(cursor: Cursor, tables: Tables, seconds: int, names: tuple[str, ...], *,
              complaints: bool) -> dict[str, int]:
    """Each outcome's ledger rows in the window, then `duplicate`: the repeats met of those records."""
    counts = ledger.outcomes_since(cursor, tables, seconds, complaints=complaints)
    return {**{name: counts.get(name, 0) for name in names},
            "duplicate": ledger.repeats_since(cursor, tables, seconds, complaints=complaints)}


def _applied(outcomes: dict[str, int]) -> int:
    """Ledger rows (records applied once), without the repeats met of them."""
    return sum(count for name, count in outcomes.items() if name != "duplicate")


def _not_configured(part: Part, why: str) -> Part:
    part.state, part.problem = NOT_CONFIGURED, why
    return part


def _not_used(part: Part, why: str) -> Part:
    part.state, part.facts["note"] = NOT_USED, why
    return part


def _down(part: Part, why: str) -> Part:
    part.state, part.problem = DOWN, why
    return part


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def age(seconds: float | None) -> str:
    """12 s, 4 min 12 s, 3 h 5 min, 2 d 4 h: how long ago, for people."""
    if seconds is None:
        return "never"
    seconds = int(max(seconds, 0))
    for unit, size, small, small_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60), ("min", 60, "s", 1)):
        if seconds >= size:
            return f"{seconds // size} {unit} {seconds % size // small_size} {small}"
    return f"{seconds} s"


def render(report: Report, console: Console | None = None) -> None:
    """Three tables: the state of each part, then the ledger's bounce and complaint outcomes over the last
    hour and day."""
    console = console or Console()
    parts = Table(title="pmtabounce status")
    for column in ("part", "state", "details"):
        parts.add_column(column)
    for part in report.parts:
        colour = {OK: "green", DOWN: "bold red", NOT_CONSUMED: "bold red",
                  BELOW_QUORUM: "bold red"}.get(part.state, "yellow")
        parts.add_row(part.name.replace("_", " "), f"[{colour}]{part.state}[/]", _details(part))
    console.print(parts)
    ledger_part = next(p for p in report.parts if p.name == "ledger")
    if ledger_part.state == OK:
        f = ledger_part.facts
        for title, hour, day in (
            ("bounces applied (ledger)", f["last_hour"], f["last_day"]),
            ("complaints applied (ledger)", f["complaints_last_hour"], f["complaints_last_day"]),
        ):
            outcomes = Table(title=title)
            outcomes.add_column("outcome")
            for column in ("last hour", "last day"):
                outcomes.add_column(column, justify="right")
            for name in hour:
                outcomes.add_row(name.replace("_", " "), str(hour[name]), str(day[name]))
            console.print(outcomes)


def _members(facts: dict) -> str:
    """'; leader NODE, N of M nodes online' for a quorum queue of several members, else ''."""
    if len(facts.get("members") or ()) <= 1:  # one node: nothing to tell
        return ""
    leader = f"leader {facts['leader']}" if facts.get("leader") else "no leader"
    return f"; {leader}, {len(facts['online'])} of {len(facts['members'])} nodes online"


def _details(part: Part) -> str:
    f = part.facts
    if part.name == "bounce_dir" and "pending_files" in f:
        oldest = f", oldest {age(f['oldest_pending_age_seconds'])} old" if f["pending_files"] else ""
        text = f"{f['path']}: {f['pending_files']} files waiting{oldest}"
        if f.get("links_skipped"):
            text += f"; symbolic links skipped (never read): {', '.join(f['links_skipped'])}"
        if f.get("writable") is False:
            text += "; read-only for this user (enough for status; process and the producer must write there)"
    elif part.name == "queue" and "ready" in f:
        unacked = f["unacked"] if f["unacked"] is not None else "unknown"
        ready = f"{f['ready']} ready" if f["ready"] is not None else "ready unknown"
        text = f"{f['name']} at {f['broker']}: {ready}, {unacked} unacked, {f['consumers']} consumers"
        if f.get("unacked_note") and f["unacked"] is None:
            text += f" ({f['unacked_note']})"
        nodes = sorted({p["node"] for p in f.get("processes") or ()})
        if len(nodes) > 1 or len(f.get("members") or ()) > 1:  # one node: nothing to tell
            text += "; processes on " + ", ".join(
                f"{node} ({sum(p['node'] == node for p in f['processes'])})" for node in nodes
            ) if nodes else "; no process of ours connected"
        text += _members(f)
    elif part.name == "dead_letter" and "messages" in f:
        messages = f["messages"] if f["messages"] is not None else "unknown number of"
        text = (f"{f['name']}: {messages} messages" + (" (see `pmtabounce dlq`)" if f["messages"] else "")
                + _members(f))
    elif part.name == "ledger" and "last_day" in f:
        hour = _applied(f["last_hour"]) + _applied(f["complaints_last_hour"])
        day = _applied(f["last_day"]) + _applied(f["complaints_last_day"])
        text = (f"{f['database']}: {hour} records in the last hour, {day} in the last day; "
                f"last apply {age(f['last_applied_age_seconds'])}"
                + (" ago" if f["last_applied_at"] else "")
                + f"; about {f['rows_estimate']} rows, the oldest {age(f['oldest_age_seconds'])}"
                + (" old (see `pmtabounce prune`)" if f["oldest_at"] else ""))
        if f["tripped_domains"]:
            text += "; domain guard holding " + ", ".join(
                f"{d['domain']} ({d['held']} held since {d['since']})" for d in f["tripped_domains"]
            ) + " (see `pmtabounce guard status`)"
        if f["guard"] == "off":
            text += "; domain guard off (PMTABOUNCE_GUARD=off): nothing is held"
        text += "; events " + ", ".join(
            f"{target}: {e['waiting']} waiting, {e['sent']} sent and {e['retried']} retried in the last hour, "
            f"{e['parked']} parked" for target, e in f["events_last_hour"].items())
        if any(e["parked"] for e in f["events_last_hour"].values()):
            text += " (see `pmtabounce webhooks list`)"
    else:
        text = f.get("note", "")
    return "; ".join(t for t in (text, part.problem) if t)


@click.command()
# readable=False: one this user cannot read is reported down (exit 1), as the docs say, not a usage error.
@click.argument("directory", required=False,
                type=click.Path(path_type=Path, file_okay=False, readable=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@run_command
def status(settings: Settings, directory: Path | None, as_json: bool) -> None:
    """Files waiting, queue depth, unacked, consumers, dead letters, and what was applied lately.

    Exits 1 if any part it needs is down or not configured, or messages wait with no worker consuming
    them. Inline mode (no PMTABOUNCE_AMQP_URL) needs the bounce directory and MySQL; fleet mode RabbitMQ
    (and the management API when PMTABOUNCE_RABBITMQ_API_URL is set) and MySQL, and the bounce directory
    when PMTABOUNCE_BOUNCE_DIR or DIR is given. Reading the directory is enough.
    """
    report = gather(settings, directory)
    if as_json:
        click.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        render(report)
    sys.exit(0 if report.ok else 1)
