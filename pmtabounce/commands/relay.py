"""`pmtabounce relay`: the outbox's events sent by a process of their own (the work is in worker/relay.py).

Every worker runs a relay thread already; this command is for a fleet that
wants sending apart from applying (`pmtabounce worker --no-relay`), and for
cron next to `process --send-events 0`.
"""

from __future__ import annotations

import logging
import sys
import threading

import click

from ..common import health, metrics
from ..common.config import Settings
from ..common.shutdown import stop_on_signals
from ..runner import run_command

log = logging.getLogger("pmtabounce.relay")


@click.command()
@click.option("--once", "once", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Send what is due for at most SECONDS, then exit (for cron).")
@run_command
def relay(settings: Settings, once: float | None) -> None:
    """Send committed events from the outbox: IEM's list webhooks and the RabbitMQ decision stream."""
    from ..store.database import ONE_SHOT
    from ..worker.relay import Relay

    sender = Relay(settings, policy=ONE_SHOT if once is not None else None)  # cron's run: a dead database is exit 1
    if once is not None:
        handled = sender.drain(once)
        log.info("relay: %d events handled", handled)
        return
    stopping = threading.Event()
    server = health.serve(settings.metrics_port, lambda: None, metrics.registry_for("relay"))
    try:
        with stop_on_signals(stopping, log=log, then="finishing the calls in hand, then exiting"):
            code = sender.run(stopping)
    finally:
        if server is not None:
            server.shutdown()
    sys.exit(code)
