"""The `pmtabounce` command: the edge where configuration, logging and both sides meet."""

from __future__ import annotations

import functools
import importlib
import logging
import sys
from pathlib import Path

import click

from .common import logs
from .common.config import Settings
from .common.errors import ConfigError, FatalError

log = logging.getLogger("pmtabounce")


def run_command(func):
    """Build Settings once, set up logging, and turn our errors into clear exits."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            settings = Settings.from_env()
            logs.configure(settings.log_format, settings.log_level)
            return func(settings, *args, **kwargs)
        except ConfigError as exc:
            click.echo(f"pmtabounce: configuration error: {exc}", err=True)
            sys.exit(2)
        except FatalError as exc:
            click.echo(f"pmtabounce: {exc}", err=True)
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pmtabounce")
def main() -> None:
    """PowerMTA bounce logs into Interspire Email Marketer, exactly once.

    Configure with PMTABOUNCE_MYSQL_URL, PMTABOUNCE_AMQP_URL,
    PMTABOUNCE_TABLE_PREFIX and PMTABOUNCE_BOUNCE_DIR (see the README).
    """


@main.command()
@click.option("--database/--no-database", default=True, help="Create or upgrade our own MySQL tables.")
@click.option(
    "--broker/--no-broker", default=None, help="Declare the RabbitMQ topology (default: if PMTABOUNCE_AMQP_URL is set)."
)
@run_command
def setup(settings: Settings, database: bool, broker: bool | None) -> None:
    """Create or upgrade pmtabounce's own tables and queues. Idempotent; never alters IEM's tables."""
    from . import provision

    if database:
        provision.setup_database(settings)
    if broker or (broker is None and settings.amqp_url):
        provision.setup_broker(settings)


@main.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--give-up-after", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Exit 1 if the database stays unreachable this long (default: wait it out).")
@run_command
def process(settings: Settings, directory: Path | None, as_json: bool, give_up_after: float | None) -> None:
    """Apply every bounce file in DIRECTORY to IEM directly, with no broker (inline mode)."""
    from .inline import process_directory
    from .report import print_summary

    directory = settings.require_bounce_dir(directory)
    summary = process_directory(settings, directory, give_up_after=give_up_after)
    print_summary(summary, as_json=as_json)


@main.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--once", is_flag=True, help="Publish what is there, wait for every confirm, mark files done, exit.")
@run_command
def producer(settings: Settings, directory: Path | None, once: bool) -> None:
    """Watch the bounce directory and publish every bounce to RabbitMQ with publisher confirms."""
    from .producer.run import run_producer

    sys.exit(run_producer(settings, settings.require_bounce_dir(directory), once=once))


@main.command()
@click.option("--exit-when-idle", type=float, default=None, metavar="SECONDS",
              help="Exit 0 once the queue has given nothing for this long (for batch jobs and tests).")
@run_command
def worker(settings: Settings, exit_when_idle: float | None) -> None:
    """Consume bounces from RabbitMQ and apply them to IEM, acking only after commit."""
    from .worker.consume import run_worker

    sys.exit(run_worker(settings, exit_when_idle=exit_when_idle))


# (module, command) pairs: commands that live in their own modules.
OPTIONAL_COMMANDS = (("dlq", "dlq"), ("status", "status"), ("demo", "demo"))


def _register_optional() -> None:
    """Each on its own, so a module still being written does not hide the others."""
    for module_name, command_name in OPTIONAL_COMMANDS:
        try:
            module = importlib.import_module(f".{module_name}", __package__)
        except ImportError as exc:  # pragma: no cover - only while a module is being written
            log.debug("optional command %s missing: %s", command_name, exc)
            continue
        main.add_command(getattr(module, command_name))


_register_optional()
