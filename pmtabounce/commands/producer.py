"""`pmtabounce producer`: the bounce directory published to RabbitMQ (the work is in producer/)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..common.config import Settings
from ..runner import run_command


@click.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--once", is_flag=True, help="Publish what is there, wait for every confirm, mark files done, exit.")
@run_command
def producer(settings: Settings, directory: Path | None, once: bool) -> None:
    """Watch the bounce directory and publish every bounce to RabbitMQ with publisher confirms."""
    from ..producer.run import run_producer

    sys.exit(run_producer(settings, settings.require_bounce_dir(directory), once=once))
