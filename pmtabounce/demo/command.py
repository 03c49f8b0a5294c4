"""`pmtabounce demo` (what `make run` runs): the whole fleet on a generated world, on local services.

It resets a demo database (`pmtabounce_demo` on the server of
PMTABOUNCE_MYSQL_URL, else root@127.0.0.1:3306) and a demo virtual host
(`pmtabounce-demo`, through the broker's management API), loads IEM's tables and a
generated world, writes the world's accounting files, runs setup, starts the
producer and the workers as real subprocesses, shows a progress bar while the
queue drains, prints a summary, and stops every process it started.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import queue_policy, queues
from ..commands.status import COMPLAINT_LEDGER_OUTCOMES, LEDGER_OUTCOMES
from ..common import broker
from ..common.accounting import AccountingFile
from ..common.bouncedir import pending_files
from ..common.broker import safe_url
from ..common.complaint import ComplaintRecord
from ..common.config import Settings
from ..common.errors import ConfigError, FatalError
from ..common.record import BounceRecord
from ..runner import run_command
from ..store import ledger
from ..store.database import ONE_SHOT, Database
from ..store.db import Tables
from ..store.fixture import create_iem_tables
from ..store.migrate import setup_database
from .reset import claim_directory, reset_database
from .world import World

DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/pmtabounce_demo"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
QUEUE_PREFIX = "pmtabounce-demo"  # its own queues, so a real fleet on the same broker is never touched
POLL_SECONDS = 0.5
_DATABASE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_VHOST_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
VHOST_MARK = "made by pmtabounce demo"  # the description of a virtual host the demo may delete


@dataclass
class DemoOptions:
    database: str = "pmtabounce_demo"
    directory: Path = Path("demo")
    subscribers: int = 10000
    records: int = 20000
    files: int = 10
    workers: int = 2
    seed: int = 7
    timeout: float = 600.0
    vhost: str = "pmtabounce-demo"


@dataclass
class Drained:
    """What the run came to, for the summary."""

    expected: int
    seen: int = 0
    dead: int = 0
    elapsed: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    complaints: dict[str, int] = field(default_factory=dict)  # complaint outcome -> records
    exit_codes: dict[str, int | None] = field(default_factory=dict)


def demo_settings(settings: Settings, options: DemoOptions, own_vhost: bool = True) -> Settings:
    """The demo's database on the configured server, its own virtual host (`own_vhost`; else the URL's),
    queue names and bounce directory."""
    if not _DATABASE_NAME.fullmatch(options.database):
        raise ConfigError(f"--database {options.database!r}: only letters, digits and _")
    if not _VHOST_NAME.fullmatch(options.vhost):
        raise ConfigError(f"--vhost {options.vhost!r}: only letters, digits, _, - and .")
    parts = urlsplit(settings.mysql_url or DEFAULT_MYSQL_URL)
    amqp = urlsplit(settings.amqp_url or DEFAULT_AMQP_URL)
    return replace(
        settings,
        mysql_url=urlunsplit(parts._replace(path="/" + options.database)),
        amqp_url=urlunsplit(amqp._replace(path="/" + options.vhost)) if own_vhost else urlunsplit(amqp),
        queue_prefix=QUEUE_PREFIX,
        bounce_dir=demo_bounce_dir(options),
    )


def reset_vhost(api_url: str, settings: Settings) -> None:
    """Delete the demo's virtual host with all in it and make it anew for the AMQP user, as the demo database;
    FatalError, deleting nothing, if it exists and the demo did not make it (its description says so)."""
    vhost = queues.vhost_of(settings.amqp)
    api = queues.ManagementApi((api_url,))
    found = queues.vhost_description(api, vhost)
    if found is not None and found != VHOST_MARK:
        raise FatalError(f"virtual host {vhost} exists and was not made by `pmtabounce demo` (its description is "
                         f"{found!r}); the demo deletes only virtual hosts it made: choose another --vhost")
    if found is not None:
        queues.delete_vhost(api, vhost)
    queues.make_vhost(api, vhost, VHOST_MARK, broker.plain_parameters(settings.amqp).credentials.username)


def demo_bounce_dir(options: DemoOptions) -> Path:
    return (options.directory / "bounces").resolve()


def run_demo(given: Settings, options: DemoOptions, console: Console) -> int:
    settings = demo_settings(given, options)
    claim_directory(options.directory)  # refused before the demo says what it will use
    api_url = _console_api(given, settings)
    if api_url is None:  # virtual hosts are made through the management API only
        settings = demo_settings(given, options, own_vhost=False)
    _say_what_is_used(console, given, settings, api_url)
    world, expected = _prepare(settings, options, console, api_url)
    processes = Processes(_child_env(settings), options.directory / "logs")
    try:
        started = time.monotonic()
        processes.start("producer", "producer")
        for n in range(1, options.workers + 1):
            processes.start(f"worker-{n}", "worker")
        result = watch(settings, expected, processes, options.timeout, console)
        result.elapsed = time.monotonic() - started
    finally:
        codes = processes.stop()
    result.exit_codes = codes
    result.outcomes = _ledger_outcomes(settings)
    result.complaints = _ledger_outcomes(settings, complaints=True)
    print_summary(console, settings, world, result, processes, api_url)
    clean = all(code == 0 for code in codes.values())
    return 0 if clean and result.seen + result.dead >= expected else 1


def _prepare(settings: Settings, options: DemoOptions, console: Console, api_url: str | None) -> tuple[World, int]:
    """Fresh database, virtual host, world and files, then setup; returns the world and the records to publish."""
    reset_database(settings.mysql)
    if api_url is not None:
        reset_vhost(api_url, settings)
    tables = Tables(settings.table_prefix)
    world = World.generate(options.seed, subscribers=options.subscribers, records=options.records,
                           files=options.files)
    database = Database(settings.mysql, tables, ONE_SHOT)
    try:
        with database.transaction() as session:
            create_iem_tables(session.cursor, tables)
            world.create_database(session.cursor, tables)
    finally:
        database.close()
    bounce_dir = demo_bounce_dir(options)
    shutil.rmtree(bounce_dir, ignore_errors=True)
    paths = world.write_files(bounce_dir)
    expected = sum(isinstance(item, (BounceRecord, ComplaintRecord)) for path in paths
                   for item in AccountingFile(path))
    queues.delete_queues(settings.amqp, settings.topology)
    setup_database(settings)
    with_policy = _console_api(settings, settings) is not None
    if not with_policy:
        console.print("[yellow]RabbitMQ's management API does not answer on :15672: the demo queue runs without "
                      "its policy (no delivery limit); `rabbitmq-plugins enable rabbitmq_management` adds it[/]")
    queue_policy.setup_rabbitmq(settings, policy=with_policy)
    console.print(
        f"world: {len(world.subscribers)} subscriber rows on {len(world.lists)} lists, {len(world.campaigns)} "
        f"campaigns; {len(paths)} accounting files with {world.record_count} bounce rows and complaints "
        f"({expected} readable, the rest are the files' deliberate faults)"
    )
    return world, expected


def watch(settings: Settings, expected: int, processes: Processes, timeout: float, console: Console) -> Drained:
    """A progress bar until every published record is in the ledger or dead-lettered and nothing waits."""
    result = Drained(expected)
    tables, topology = Tables(settings.table_prefix), settings.topology
    deadline = time.monotonic() + timeout
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[state]}"))
    database = Database(settings.mysql, tables, ONE_SHOT)
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("applying bounces", total=expected, state="")
            while True:
                with database.transaction() as session:  # each read a fresh snapshot
                    result.seen = ledger.records_seen(session.cursor, tables)
                work, dead, _node = queues.read_queues(settings.amqp, topology)
                result.dead = dead.ready
                waiting = len(pending_files(settings.require_bounce_dir()))
                state = f"files {waiting} · queued {work.ready} · consumers {work.consumers}"
                progress.update(task, completed=result.seen + result.dead, state=state)
                if result.seen + result.dead >= expected and work.ready == 0 and waiting == 0:
                    return result
                _check(processes, deadline, timeout)
                time.sleep(POLL_SECONDS)
    finally:
        database.close()


def _check(processes: Processes, deadline: float, timeout: float) -> None:
    if processes.exited():
        raise FatalError(f"{', '.join(processes.exited())} stopped before the queue drained; see {processes.logs}")
    if time.monotonic() > deadline:
        raise FatalError(f"the queue did not drain within {timeout:.0f} s; see {processes.logs}")


def _ledger_outcomes(settings: Settings, *, complaints: bool = False) -> dict[str, int]:
    database = Database(settings.mysql, Tables(settings.table_prefix), ONE_SHOT)
    try:
        with database.transaction(commit=False) as session:
            return ledger.outcomes_since(session.cursor, session.tables, complaints=complaints)
    finally:
        database.close()


class Processes:
    """The producer and workers as real subprocesses, each with a log file and a metrics port."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir(parents=True)

    def start(self, name: str, *args: str) -> None:
        port = _free_port()
        with open(self.logs / f"{name}.log", "wb") as log:
            self.running[name] = subprocess.Popen(
                [sys.executable, "-m", "pmtabounce", *args],
                env={**self.env, "PMTABOUNCE_METRICS_PORT": str(port)},
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                # `-m` puts the working directory first on sys.path: in a clone's top folder the
                # source tree's pmtabounce/ would shadow the installed package.
                cwd=self.logs,
            )
        self.ports[name] = port

    def exited(self) -> list[str]:
        return [name for name, process in self.running.items() if process.poll() is not None]

    def stop(self, grace: float = 20.0) -> dict[str, int | None]:
        """SIGTERM to each (they finish what they hold and exit 0); SIGKILL only if one hangs."""
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, process in self.running.items():
            try:
                codes[name] = process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                codes[name] = None  # had to be killed
        return codes


def _child_env(settings: Settings) -> dict[str, str]:
    """This environment (PATH and the operator's other PMTABOUNCE_* choices) with the demo's settings."""
    return {
        **os.environ,
        "PMTABOUNCE_MYSQL_URL": settings.mysql_url or "",
        "PMTABOUNCE_AMQP_URL": settings.amqp,
        "PMTABOUNCE_QUEUE_PREFIX": settings.queue_prefix,
        "PMTABOUNCE_TABLE_PREFIX": settings.table_prefix,
        "PMTABOUNCE_BOUNCE_DIR": str(settings.bounce_dir),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _console_api(given: Settings, settings: Settings) -> str | None:
    """The management API if it answers (the configured one, else the broker's host on :15672)."""
    try:
        api = queue_policy.management_api(settings)
    except ConfigError:  # nodes on other ports: where their API is cannot be told
        return None
    return api.urls[0] if queues.management_available(api) else None


def _say_what_is_used(console: Console, given: Settings, settings: Settings, api_url: str | None) -> None:
    mysql_from = "PMTABOUNCE_MYSQL_URL's server" if given.mysql_url else "local default; set PMTABOUNCE_MYSQL_URL"
    amqp_from = "PMTABOUNCE_AMQP_URL" if given.amqp_url else "local default; set PMTABOUNCE_AMQP_URL"
    console.print(f"MySQL:    {settings.mysql.safe_url()} ({mysql_from}); the demo database is dropped and made anew "
                  "(only one the demo made)")
    vhost = queues.vhost_of(settings.amqp)
    own = ("its own virtual host, deleted and made anew (only one the demo made)" if api_url
           else f"virtual host {vhost} of PMTABOUNCE_AMQP_URL: without the management API the demo cannot make its own")
    console.print(f"RabbitMQ: {safe_url(settings.amqp)} ({amqp_from}; {own}), queues {QUEUE_PREFIX}.*")
    console.print(f"files:    {settings.bounce_dir}")
    if api_url is None:
        console.print("console:  management plugin not answering (rabbitmq-plugins enable rabbitmq_management)")


def print_summary(console: Console, settings: Settings, world: World, result: Drained, processes: Processes,
                  api_url: str | None) -> None:
    table = Table(title="pmtabounce demo")
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [("records published", result.expected)]
    rows += [(f"  {name.replace('_', ' ')}", result.outcomes.get(name, 0)) for name in LEDGER_OUTCOMES]
    rows += [(f"  complaints {name.replace('_', ' ')}", result.complaints.get(name, 0))
             for name in COMPLAINT_LEDGER_OUTCOMES]
    rows += [
        ("  met again (duplicates)", result.seen - sum(result.outcomes.values()) - sum(result.complaints.values())),
        ("  dead-lettered", result.dead),
        ("subscribers disabled by this run", result.outcomes.get("disabled", 0)),
        ("complaints that unsubscribed", result.complaints.get("unsubscribed", 0)),
        ("subscribers bounced before", sum(1 for s in world.subscribers if s.bounced)),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    rate = (result.seen + result.dead) / result.elapsed if result.elapsed else 0.0
    table.add_row("elapsed", f"{result.elapsed:.1f} s")
    table.add_row("records per second", f"{rate:.0f}")
    console.print(table)
    stopped = ", ".join(f"{name} {'killed' if code is None else f'exit {code}'}"
                        for name, code in result.exit_codes.items())
    console.print(f"processes: {stopped}; logs in {processes.logs}")
    if api_url:
        console.print(f"RabbitMQ console: {queues.console_url(api_url)} (queues {QUEUE_PREFIX}.bounces and "
                      f"{QUEUE_PREFIX}.dead-letter in vhost {queues.vhost_of(settings.amqp)})")
    console.print(f"look around: PMTABOUNCE_MYSQL_URL={settings.mysql.safe_url()} PMTABOUNCE_AMQP_URL="
                  f"{safe_url(settings.amqp)} PMTABOUNCE_QUEUE_PREFIX={QUEUE_PREFIX} pmtabounce status "
                  "(with your passwords in the URLs)")


@click.command()
@click.option("--subscribers", type=click.IntRange(10), default=DemoOptions.subscribers, show_default=True)
@click.option("--records", type=click.IntRange(10), default=DemoOptions.records, show_default=True,
              help="Bounce rows in the generated accounting files.")
@click.option("--files", type=click.IntRange(1), default=DemoOptions.files, show_default=True)
@click.option("--workers", type=click.IntRange(1, 16), default=DemoOptions.workers, show_default=True)
@click.option("--seed", type=int, default=DemoOptions.seed, show_default=True)
@click.option("--database", default=DemoOptions.database, show_default=True,
              help="Demo database on PMTABOUNCE_MYSQL_URL's server: dropped and made anew; one the demo did not "
                   "make is refused.")
@click.option("--directory", type=click.Path(path_type=Path, file_okay=False), default=DemoOptions.directory,
              show_default=True, help="Where the accounting files and the process logs go (emptied; a folder the demo "
                                      "did not make is refused unless empty).")
@click.option("--vhost", default=DemoOptions.vhost, show_default=True,
              help="Demo virtual host on PMTABOUNCE_AMQP_URL's broker (through its management API): deleted and "
                   "made anew; one the demo did not make is refused.")
@click.option("--timeout", type=float, default=DemoOptions.timeout, show_default=True,
              help="Give up if the queue has not drained after this many seconds.")
@run_command
def demo(settings: Settings, **options) -> None:
    """The whole fleet on a generated IEM world: setup, a producer and workers, a progress bar, a summary."""
    sys.exit(run_demo(settings, DemoOptions(**options), Console()))
