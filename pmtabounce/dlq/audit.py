"""Who replayed or purged what, when: one INFO line per run, and a JSON line in an audit file if configured.

The OS user comes from the process's real uid, not from $USER, which anyone can set.
"""

from __future__ import annotations

import logging
import os
import pwd
import socket
from datetime import datetime, timezone

import orjson

from ..common.config import Settings
from .selection import Selection

log = logging.getLogger("pmtabounce.dlq.audit")


def operator() -> str:
    """user@host of whoever runs this process."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid with no passwd entry (containers)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def audit(settings: Settings, action: str, selection: Selection, queue: str, **outcome) -> dict:
    """Log the run at INFO (and append it to PMTABOUNCE_DLQ_AUDIT_FILE); returns the entry."""
    entry = {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "action": action,
        "by": operator(),
        "queue": queue,
        "filter": selection.describe(),
        **outcome,
    }
    counts = ", ".join(f"{name} {value}" for name, value in outcome.items())
    log.info("dlq %s by %s on %s: %s (filter: %s)", action, entry["by"], queue, counts, entry["filter"])
    if settings.dlq_audit_file:
        _append(settings.dlq_audit_file, entry)
    return entry


def _append(path, entry: dict) -> None:
    try:
        with open(path, "ab") as handle:
            handle.write(orjson.dumps(entry) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        # The run already happened; not writing the file must not hide it, so say so loudly.
        log.error("could not append the audit line to %s (%s): %s", path, exc.strerror, orjson.dumps(entry).decode())
