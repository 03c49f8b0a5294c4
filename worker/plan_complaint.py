"""What one complaint unsubscribes: iem-complaints.md's steps, decided over the batch's rows in memory."""

from __future__ import annotations

from ..common.complaint import ComplaintRecord, UnsubscribeLink, confirms
from ..common.policy import Policy
from ..store.effects import AREA_OF_STATS_TABLE, Unsubscribed, complaint_effects
from ..store.rows import Candidate, Outcome, Rows


def decide_complaint(record: ComplaintRecord, rows: Rows, policy: Policy) -> Outcome:
    """The complaint's outcome (ignored, unroutable, not_found or unsubscribed) and the rows it unsubscribes.

    `decision` is the scope it acted with, or `ignore` for a Feedback-Type the policy does not act on.
    """
    if not policy.complaint_acts(record.feedback_type):
        return Outcome(record, "ignored", "ignore")
    scope = policy.complaint_scope
    link = record.link
    email = _recipient(record, link, rows)
    if email is None:
        return Outcome(record, "unroutable", scope)
    if not email:
        return Outcome(record, "not_found", scope)
    found = email if not record.rcpt else ""
    list_ids = record.list_ids or ((link.listid,) if link and link.listid else ())
    if scope == "row" and link is None and not list_ids:
        return Outcome(record, "unroutable", scope, email=found)  # the bounce rule: no usable list id
    if scope == "all":
        targets = rows.active(email)
    elif scope == "campaign":
        targets = rows.active(email, list_ids)
    else:
        targets = _the_row(email, link, list_ids, rows)
    if not targets:
        return Outcome(record, "not_found", scope, email=found)
    unsubscribed = tuple(_unsubscribe(record, link, row, list_ids, rows) for row in sorted(targets, key=_order))
    first = unsubscribed[0]
    return Outcome(record, "unsubscribed", scope, first.subscriberid, first.listid,
                   complaint_effects(list(unsubscribed)), unsubscribed, found)


def _recipient(record: ComplaintRecord, link: UnsubscribeLink | None, rows: Rows) -> str | None:
    """Step 1: the address; '' when the link names no row (or the wrong C), None when nothing names anyone."""
    if record.rcpt:
        return record.rcpt
    if link is None:
        return None
    linked = rows.linked.get(link.subscriberid)
    if linked is None or not confirms(link, linked.confirmcode):
        return ""
    return linked.emailaddress


def _the_row(email: str, link: UnsubscribeLink | None, list_ids, rows: Rows) -> list[Candidate]:
    """Scope `row`: the link's (M, L) when the link is there, else the bounce rule's lowest listid."""
    if link is None:
        found = rows.active(email, list_ids)
        return [min(found, key=lambda c: c.listid)] if found else []
    linked = rows.linked.get(link.subscriberid)
    if (
        linked is None
        or not linked.active
        or linked.subscriberid in rows.inactive
        or not confirms(link, linked.confirmcode)
        or (link.listid and linked.listid != link.listid)
        or linked.emailaddress.lower() != email.lower()  # never another person's row
    ):
        return []
    return [Candidate(email, linked.subscriberid, linked.listid)]


def _unsubscribe(record: ComplaintRecord, link, row: Candidate, list_ids, rows: Rows) -> Unsubscribed:
    """Step "What is written" for one row: in the campaign (statid S, area a/n, counted) or not (0, 'f')."""
    statid = record.statid or (link.statid if link else 0)
    # Statids come from one sequence shared by both stats tables, so the table holding S is the one A=/N= names.
    table = rows.stats_tables.get(statid) if statid else None
    if table is None or row.listid not in list_ids:
        table = None  # not in the campaign: statid 0, area 'f', no counter
    kept_time, kept_ip = rows.requests.get((row.subscriberid, row.listid), (0, ""))
    return Unsubscribed(
        row.subscriberid,
        row.listid,
        record.time_logged,
        statid if table else 0,
        AREA_OF_STATS_TABLE[table] if table else "f",
        kept_time,
        kept_ip,
        table is not None,
        table,
    )


def _order(row: Candidate) -> tuple[int, int]:
    return row.listid, row.subscriberid
