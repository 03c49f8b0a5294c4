"""One line per event: readable text, or with PMTABOUNCE_LOG_FORMAT=json one JSON object per line.

JSON lines are python-json-logger's (the orjson flavour): `ts`, `level`, `logger`, `msg`, `event`
(given by the call, else the message's template: the same for every line of one kind), whatever
the call passed as `extra` (file, line, counts, outcome, retry_attempt, error_class), and for an
exception `error_class` and `exception` (the traceback, as one string). Uncaught exceptions, the
fatal line and Python's warnings go the same way, so every line of stderr is JSON.
Neither format ever shows a URL's password or an email address: both are masked on the way out.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@", re.IGNORECASE)
# A local part starts with neither a quote nor a dot, so a quoted address ('a@x.org') keeps both its quotes.
_ADDRESS = re.compile(r"(?<![\w.+/-])[\w+-][\w.+'-]*@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def redact(text: str) -> str:
    """`scheme://user:****@host` for any URL's password, `<address>` for an email address."""
    return _ADDRESS.sub("<address>", _PASSWORD.sub(r"\g<scheme>\g<user>:****@", text))


class RedactingFilter(logging.Filter):
    """Masks passwords and addresses in every line's message before any formatter sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


class TextFormatter(logging.Formatter):
    def formatException(self, ei) -> str:  # noqa: N802 (logging's name)
        return redact(super().formatException(ei))


class JsonFormatter(OrjsonFormatter):
    """Our field names on python-json-logger's formatter; see the module's docstring."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger", "message": "msg", "exc_info": "exception"},
            reserved_attrs=[*RESERVED_ATTRS, "template"],
            json_default=str,
        )

    def formatException(self, ei) -> str:  # noqa: N802 (logging's name)
        formatted = super().formatException(ei)  # a list only with exc_info_as_array, which we do not set
        return redact(formatted if isinstance(formatted, str) else "\n".join(formatted))

    def add_fields(self, log_data: dict, record: logging.LogRecord, message_dict: dict) -> None:
        log_data["ts"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        super().add_fields(log_data, record, message_dict)
        log_data["level"] = record.levelname.lower()
        log_data.setdefault("event", getattr(record, "template", None) or record.getMessage())
        if record.exc_info and record.exc_info[0] is not None:
            log_data.setdefault("error_class", record.exc_info[0].__name__)


class _KeepTemplate(logging.Filter):
    """Keeps the message's template (before arguments) as the default `event`; runs before redaction."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "template"):
            record.template = redact(str(record.msg))
        return True


def configure(log_format: str = "text", level: str = "INFO") -> None:
    """Every process's logging, once at start: one handler on stderr, `log_format` "text" or "json"
    (PMTABOUNCE_LOG_FORMAT), the root at `level` (PMTABOUNCE_LOG_LEVEL), pika quiet unless DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_KeepTemplate())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pika's level is set here and nowhere else. It logs every failed connection attempt and every lost
    # connection as several ERROR lines with tracebacks; we say what happened in one line of our own,
    # so its own lines only show with PMTABOUNCE_LOG_LEVEL=DEBUG.
    logging.getLogger("pika").setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)
    if log_format == "json":
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = lambda args: _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


def _log_uncaught(kind, value, traceback) -> None:
    logging.getLogger("pmtabounce").critical("stopped by an unexpected error: %s", kind.__name__,
                                             exc_info=(kind, value, traceback), extra={"event": "crash"})


def fatal(message: str, error_class: str, log_format: str) -> None:
    """The last line of a command that cannot go on: JSON like every other line when asked, else text."""
    if log_format == "json":
        if not logging.getLogger().handlers:
            configure("json")
        logging.getLogger("pmtabounce").critical("%s", message, extra={"event": "fatal", "error_class": error_class})
    else:
        print(f"pmtabounce: {redact(message)}", file=sys.stderr)
