"""Who replayed, purged, imported or took what, when and why: the operator audit line of a `dlq` run.

The line is the one schema of every operator action (operator_audit.Action): `where` is the broker and vhost,
`account` the AMQP user, `target` the queue and the filter.
"""

from __future__ import annotations

from ..common.config import Settings
from ..operator_audit import Action, broker_where
from .selection import Selection


def audit(settings: Settings, action: str, selection: Selection, queue: str, reason: str | None = None,
          **outcome) -> dict:
    """Log `dlq ACTION` at INFO (and append it to PMTABOUNCE_DLQ_AUDIT_FILE); returns the entry.

    `outcome`: the counts (and the file, for import and export), as the entry's `counts`.
    """
    where, account = broker_where(settings)
    entry = Action(f"dlq {action}", {"queue": queue, "filter": selection.describe()}, where, reason, account)
    return entry.note(settings.dlq_audit_file, outcome)
