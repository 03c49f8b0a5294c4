"""`pmtabounce setup`: our own tables (never IEM's) and the RabbitMQ topology, each half in its own side."""

from __future__ import annotations

import click

from ..common.config import Settings
from ..runner import run_command


@click.command()
@click.option("--database/--no-database", default=True, help="Create or upgrade our own MySQL tables.")
@click.option(
    "--broker/--no-broker", default=None, help="Declare the RabbitMQ topology (default: if PMTABOUNCE_AMQP_URL is set)."
)
@click.option("--policy/--no-policy", default=True,
              help="Set the work queue's policy through the management API (default), or leave it to rabbitmqctl.")
@click.option("--wait", "wait", type=click.FloatRange(0), default=None, metavar="SECONDS",
              help="Change nothing: wait up to SECONDS until the database holds the schema this version needs "
                   "(a setup of this release ran), then exit 0; else exit 1. For a worker's start, e.g. a "
                   "Kubernetes initContainer.")
@run_command
def setup(settings: Settings, database: bool, broker: bool | None, policy: bool, wait: float | None) -> None:
    """Create or upgrade pmtabounce's own tables and queues. Idempotent; never alters IEM's tables."""
    from ..queue_policy import setup_rabbitmq
    from ..store.migrate import setup_database, wait_for_schema

    if wait is not None:
        wait_for_schema(settings, wait)
        return
    if database:
        setup_database(settings)
    if broker or (broker is None and settings.amqp_url):
        setup_rabbitmq(settings, policy=policy)
