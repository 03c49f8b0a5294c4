"""The `pmtabounce` command: every subcommand, registered by name.

A command whose module cannot be imported stops the program at start with
the import error; it never goes missing from the list quietly.
"""

from __future__ import annotations

import click

from .commands.explain import explain
from .commands.guard import guard
from .commands.process import process
from .commands.producer import producer
from .commands.prune import prune
from .commands.setup import setup
from .commands.status import status
from .commands.undo import undo
from .commands.worker import worker
from .demo.command import demo
from .dlq.command import dlq


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pmtabounce")
def main() -> None:
    """PowerMTA bounce logs into Interspire Email Marketer, exactly once.

    Configure with PMTABOUNCE_MYSQL_URL, PMTABOUNCE_AMQP_URL,
    PMTABOUNCE_TABLE_PREFIX and PMTABOUNCE_BOUNCE_DIR (see the README).
    """


for command in (setup, process, producer, worker, dlq, status, demo, explain, undo, guard, prune):
    main.add_command(command)
