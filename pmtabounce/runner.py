"""Running one command: Settings built once, logging set up, our errors turned into exit codes.

Every command module imports `run_command` from here, and `cli.py` imports
the commands: the dependence goes one way, so any module of the package can
be imported on its own.
"""

from __future__ import annotations

import functools
import logging
import sys

from .common import logs
from .common.config import Settings, log_format_asked
from .common.errors import ConfigError, FatalError

log = logging.getLogger("pmtabounce.config")


def run_command(func):
    """Wrap a click callback `func(settings, **options)`: it receives Settings from the environment.

    Exit codes (README, "Exit codes"): 2 for a ConfigError (the message names
    the variable), 1 for a FatalError; both messages go to stderr, as JSON with PMTABOUNCE_LOG_FORMAT=json.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        log_format = log_format_asked()
        try:
            settings = Settings.from_env()
            log_format = settings.log_format
            logs.configure(settings.log_format, settings.log_level)
            for warning in settings.policy_warnings():
                log.warning("%s", warning)
            return func(settings, *args, **kwargs)
        except ConfigError as exc:
            logs.fatal(f"configuration error: {exc}", type(exc).__name__, log_format)
            sys.exit(2)
        except FatalError as exc:
            logs.fatal(str(exc), type(exc).__name__, log_format)
            sys.exit(1)

    return wrapper
