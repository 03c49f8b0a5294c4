"""`pmtabounce worker`: bounces from RabbitMQ applied to IEM (the work is in worker/)."""

from __future__ import annotations

import sys

import click

from ..common.config import Settings
from ..runner import run_command


@click.command()
@click.option("--exit-when-idle", type=float, default=None, metavar="SECONDS",
              help="Exit 0 once the queue has given nothing for this long (for batch jobs and tests).")
@click.option("--no-relay", "no_relay", is_flag=True,
              help="Leave sending the outbox's events (webhooks, decision stream) to `pmtabounce relay`; by default "
                   "a thread of the worker sends them.")
@run_command
def worker(settings: Settings, exit_when_idle: float | None, no_relay: bool) -> None:
    """Consume bounces from RabbitMQ and apply them to IEM, acking only after commit."""
    from ..worker.consume import run_worker

    sys.exit(run_worker(settings, exit_when_idle=exit_when_idle, relay=not no_relay))
