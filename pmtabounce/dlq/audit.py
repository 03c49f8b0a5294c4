"""Who replayed or purged what, when: one INFO line per run, and a JSON line in an audit file if configured.

The OS user comes from the process's real uid, not from $USER, which anyone can set.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from ..common.config import Settings
from ..operator_audit import append, operator
from .selection import Selection

log = logging.getLogger("pmtabounce.dlq.audit")


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
        append(settings.dlq_audit_file, entry)
    return entry
