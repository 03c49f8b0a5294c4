"""`pmtabounce process`: inline mode, every bounce file applied to IEM directly, with no broker."""

from __future__ import annotations

from pathlib import Path

import click

from ..common.bouncedir import LOCK_WAIT
from ..common.config import Settings
from ..runner import run_command


@click.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--give-up-after", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Exit 1 if the database stays unreachable this long (default: wait it out).")
@click.option("--lock-wait", type=click.FloatRange(min=0), default=LOCK_WAIT, show_default=True, metavar="SECONDS",
              help="Wait this long for another process working the directory, then exit 1.")
@click.option("--send-events", type=click.FloatRange(min=0), default=60.0, show_default=True, metavar="SECONDS",
              help="After the files, send the outbox's due events (webhooks; the stream when PMTABOUNCE_AMQP_URL "
                   "is set) for at most this long; 0 leaves them to a worker or `pmtabounce relay`.")
@run_command
def process(settings: Settings, directory: Path | None, as_json: bool, give_up_after: float | None,
            lock_wait: float, send_events: float) -> None:
    """Apply every bounce file in DIRECTORY to IEM directly, with no broker (inline mode)."""
    from ..inline import process_directory
    from ..summary import print_summary

    directory = settings.require_bounce_dir(directory)
    summary = process_directory(settings, directory, give_up_after=give_up_after, lock_wait=lock_wait)
    if send_events and not summary.stopped and (settings.webhooks or settings.event_stream):
        from ..worker.relay import Relay

        Relay(settings).drain(send_events)
    print_summary(summary, as_json=as_json)
