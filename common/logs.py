"""One line per event: readable text, or JSON when PMTABOUNCE_LOG_FORMAT=json."""

from __future__ import annotations

import logging
import sys
import time

import orjson

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(log_format: str = "text", level: str = "INFO") -> None:
    """Every process's logging, once at start: one handler on stderr, `log_format` "text" or "json"
    (PMTABOUNCE_LOG_FORMAT), the root at `level` (PMTABOUNCE_LOG_LEVEL), pika quiet unless DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pika's level is set here and nowhere else. It logs every failed connection attempt and every lost
    # connection as several ERROR lines with tracebacks; we say what happened in one line of our own,
    # so its own lines only show with PMTABOUNCE_LOG_LEVEL=DEBUG.
    logging.getLogger("pika").setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)
