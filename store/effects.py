"""What one record wrote to IEM, as the ledger's `effects` column keeps it (JSON text, NULL for nothing).

`undo` reverts exactly these writes, so they say everything needed to do
that without reading IEM's history. Pure: no database here.

A bounce (iem-bounces.md steps 3 to 5), every key absent when not written:

    {"bounce_row": [subscriberid, statid, listid, bouncetime, bouncetype, bouncerule],
     "campaign":   [stats_table_key ('newsletters' | 'autoresponders'), statid, column],
     "disabled":   [subscriberid, listid, bounced_time]}

A complaint (iem-complaints.md "What is written"), one entry per row it unsubscribed:

    {"unsubscribed": [[subscriberid, listid, unsubscribetime, statid, area,
                       kept_request_time, kept_request_ip, campaign_counted], ...]}

`area` is the unsubscribearea written ('n', 'a' or 'f'); `campaign_counted`
says whether the campaign's unsubscribecount went up for this row.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import orjson


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """One (subscriber, list) row a complaint unsubscribed, and its email_list_subscribers_unsubscribe row."""

    subscriberid: int
    listid: int
    unsubscribetime: int
    statid: int  # 0 outside the campaign
    area: str  # 'n' newsletter, 'a' autoresponder, 'f' outside the campaign
    kept_request_time: int
    kept_request_ip: str
    campaign_counted: bool
    stats_table: str | None = None  # 'newsletters' | 'autoresponders' when counted; not stored (area says it)

    def as_list(self) -> list:
        return list(astuple(self))[:8]


def bounce_effects(bounce_row: tuple | None, campaign: tuple | None, disabled: tuple | None) -> dict | None:
    """The effects of one bounce, or None when it wrote nothing."""
    effects = {
        name: list(value)
        for name, value in (("bounce_row", bounce_row), ("campaign", campaign), ("disabled", disabled))
        if value is not None
    }
    return effects or None


def complaint_effects(rows: list[Unsubscribed]) -> dict | None:
    """The effects of one complaint, or None when it unsubscribed nothing."""
    return {"unsubscribed": [row.as_list() for row in rows]} if rows else None


def to_json(effects: dict | None) -> str | None:
    """The ledger column's text (NULL for nothing written)."""
    return orjson.dumps(effects).decode() if effects else None


def from_json(text: str | None) -> dict | None:
    """The column's text back as the dict described above."""
    return orjson.loads(text) if text else None
