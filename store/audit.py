"""Our audit table: one row per operator action that changes data (`undo`, `guard trip/release/discard`).

The row is written when the action starts, so an interrupted run is still on
record, and completed with its counts when it ends. An undo's row id is its
run id, which the ledger rows it reverted carry; a held record's ledger row
carries the run of the `guard release` or `discard` that ended its hold.
"""

from __future__ import annotations

import orjson

from .db import Cursor, Tables


def start(cursor: Cursor, t: Tables, operator: str, action: str, target: dict,
          reason: str | None = None) -> tuple[int, str]:
    """Record the start of an action (who, what, on what, why; the MySQL account as the server knows it).

    Returns (its id, that account). Commit it before acting.
    """
    cursor.execute(
        f"INSERT INTO {t.audit} (operator, account, reason, action, target, counts) "
        "VALUES (%s, CURRENT_USER(), %s, %s, %s, '{}')",
        (operator, reason, action, orjson.dumps(target).decode()),
    )
    run = int(cursor.lastrowid)
    cursor.execute("SELECT CURRENT_USER()")
    return run, str(cursor.fetchone()[0])


def finish(cursor: Cursor, t: Tables, run: int, counts: dict) -> None:
    """Record the counts of an action that ended."""
    cursor.execute(
        f"UPDATE {t.audit} SET finished_at = NOW(6), counts = %s WHERE id = %s",
        (orjson.dumps(counts).decode(), run),
    )
