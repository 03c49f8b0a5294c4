"""Running one command: Settings built once, logging set up, our errors turned into exit codes.

Every command module imports `run_command` from here, and `cli.py` imports
the commands: the dependence goes one way, so any module of the package can
be imported on its own.
"""

from __future__ import annotations

import functools
import sys

import click

from .common import logs
from .common.config import Settings
from .common.errors import ConfigError, FatalError


def run_command(func):
    """Wrap a click callback `func(settings, **options)`: it receives Settings from the environment.

    Exit codes (README, "Exit codes"): 2 for a ConfigError (the message names
    the variable), 1 for a FatalError; both messages go to stderr.
    """

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
