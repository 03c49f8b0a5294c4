"""Who did what to the data, when: the log line and the audit file every operator action shares.

`dlq replay/purge/import/export --take`, `undo` and `guard trip/release/discard`
each log one INFO line and, when PMTABOUNCE_DLQ_AUDIT_FILE is set, append one
JSON line to that file: one audit file for every operator action. The OS user
comes from the process's real uid, not from $USER, which anyone can set.
"""

from __future__ import annotations

import functools
import logging
import os
import pwd
import socket
from datetime import datetime, timezone
from pathlib import Path

import orjson

from .common.errors import ConfigError

log = logging.getLogger("pmtabounce.audit")


def operator() -> str:
    """user@host of whoever runs this process."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid with no passwd entry (containers)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def append(path: Path | None, entry: dict) -> None:
    """Append `entry` as one fsynced JSON line to `path` (nothing when None). A failure is logged, not raised:
    the action already happened, and not writing the file must not hide it."""
    if path is None:
        return
    try:
        with open(path, "ab") as handle:
            handle.write(orjson.dumps(entry) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        log.error("could not append the audit line to %s (%s): %s", path, exc.strerror, orjson.dumps(entry).decode())


def check_writable(path: Path | None) -> None:
    """Raise ConfigError naming PMTABOUNCE_DLQ_AUDIT_FILE when `path` cannot be appended to (None: nothing to check).

    Opening for append creates the file if it is missing and changes nothing in one that exists.
    """
    if path is None:
        return
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise ConfigError(f"PMTABOUNCE_DLQ_AUDIT_FILE={path}: cannot append to it ({exc.strerror}); "
                          "nothing was done: fix the path or its permissions, or unset it") from None


def audited(func):
    """Decorate a command `func(settings, ...)` that records operator actions: the audit file is checked
    (check_writable) before it does anything, so a bad path is no surprise after the action."""

    @functools.wraps(func)
    def wrapper(settings, *args, **kwargs):
        check_writable(settings.dlq_audit_file)
        return func(settings, *args, **kwargs)

    return wrapper


def note(audit_file: Path | None, action: str, by: str, target: dict, counts: dict, run: int | None = None) -> dict:
    """Log one operator action at INFO and append it to the audit file; returns the entry."""
    entry = {"at": now_iso(), "action": action, "by": by, "target": target, **counts}
    if run is not None:
        entry["run"] = run
    said = ", ".join(f"{name} {value}" for name, value in counts.items())
    log.info("%s by %s%s: %s (on %s)", action, by, f" (run {run})" if run else "", said,
             orjson.dumps(target).decode(), extra={"event": "audit", "action": action, "run": run})
    append(audit_file, entry)
    return entry
