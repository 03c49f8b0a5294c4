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

# The campaign counter a bounce moves, by its decision (iem-bounces.md step 3).
CAMPAIGN_COLUMN = {"hard": "bouncecount_hard", "soft": "bouncecount_soft", "ignore": "bouncecount_unknown"}
# The unsubscribearea a complaint writes for a campaign's stats table, and back (iem-complaints.md).
AREA_OF_STATS_TABLE = {"autoresponders": "a", "newsletters": "n"}
STATS_TABLE_OF_AREA = {area: table for table, area in AREA_OF_STATS_TABLE.items()}


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


@dataclass(frozen=True, slots=True)
class Effects:
    """What one record wrote to IEM (None or empty: not that part); JSON only at the ledger (`to_json`)."""

    bounce_row: tuple[int, int, int, int, str, str] | None = None  # (subscriberid, statid, listid, time, type, rule)
    campaign: tuple[str, int, str] | None = None  # (stats table key, statid, counter column)
    disabled: tuple[int, int, int] | None = None  # (subscriberid, listid, bounced time)
    unsubscribed: tuple[Unsubscribed, ...] = ()  # a complaint's rows

    def as_dict(self) -> dict:
        """The shape the ledger's column keeps (this module's docstring), keys absent when not written."""
        if self.unsubscribed:
            return {"unsubscribed": [row.as_list() for row in self.unsubscribed]}
        return {name: list(value)
                for name, value in (("bounce_row", self.bounce_row), ("campaign", self.campaign),
                                    ("disabled", self.disabled)) if value is not None}


def bounce_effects(bounce_row: tuple[int, int, int, int, str, str] | None, campaign: tuple[str, int, str] | None,
                   disabled: tuple[int, int, int] | None) -> Effects | None:
    """The effects of one bounce, or None when it wrote nothing."""
    if bounce_row is None and campaign is None and disabled is None:
        return None
    return Effects(bounce_row, campaign, disabled)


def complaint_effects(rows: list[Unsubscribed]) -> Effects | None:
    """The effects of one complaint, or None when it unsubscribed nothing."""
    return Effects(unsubscribed=tuple(rows)) if rows else None


def to_json(effects: Effects | None) -> str | None:
    """The ledger column's text (NULL for nothing written)."""
    return orjson.dumps(effects.as_dict()).decode() if effects else None


def from_json(text: str | None) -> dict | None:
    """The column's text back as the dict described above."""
    return orjson.loads(text) if text else None
