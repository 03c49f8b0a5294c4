"""Our audit table: one row per operator action that changes data (`undo`, `guard trip/release/discard`).

The row is written when the action starts, so an interrupted run is still on
record, and completed with its counts when it ends. An undo's row id is its
run id, which the ledger rows it reverted carry.
"""

from __future__ import annotations

import orjson

from .db import Tables


def start(cursor, t: Tables, operator: str, action: str, target: dict) -> int:
    """Record the start of an action (who, what, on what); returns its id. Commit it before acting."""
    cursor.execute(
        f"INSERT INTO {t.audit} (operator, action, target, counts) VALUES (%s, %s, %s, '{{}}')",
        (operator, action, orjson.dumps(target).decode()),
    )
    return int(cursor.lastrowid)


def finish(cursor, t: Tables, run: int, counts: dict) -> None:
    """Record the counts of an action that ended."""
    cursor.execute(
        f"UPDATE {t.audit} SET finished_at = NOW(6), counts = %s WHERE id = %s",
        (orjson.dumps(counts).decode(), run),
    )
