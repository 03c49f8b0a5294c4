"""What a batch of bounces and complaints does to IEM: a pure function of the records and what the database holds.

It walks the records one by one in delivery order, exactly as the specs'
steps would (iem-bounces.md, iem-complaints.md), against an in-memory copy of
the rows that matter, so that a batch gives the same database as applying the
records one at a time: a row bounced earlier in the batch is not unsubscribed,
and the reverse. Each record's decision is an Outcome whose `effects` say
what it writes; `Plan.take` is the one place those become the batch's writes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from ..common.complaint import ComplaintRecord
from ..common.guard import GuardBatch
from ..common.policy import Policy, bounce_rule
from ..common.record import BounceRecord
from ..store.effects import CAMPAIGN_COLUMN, Effects, Unsubscribed, bounce_effects
from ..store.rows import Candidate, LinkedRow, Outcome, Record, Rows
from .plan_complaint import decide_complaint

__all__ = ["COMPLAINT_OUTCOMES", "OUTCOMES", "BatchReads", "Candidate", "LinkedRow", "Outcome", "Plan", "Rows",
           "plan_batch"]
# held: kept by the domain guard, nothing written to IEM yet; discarded: a held record an operator threw away.
OUTCOMES = ("applied", "disabled", "already_bounced", "not_found", "unroutable", "held", "discarded", "duplicate")
COMPLAINT_OUTCOMES = ("unsubscribed", "not_found", "unroutable", "ignored", "duplicate")


@dataclass
class Plan:
    """The writes a batch adds up to, and every record's outcome in delivery order."""

    outcomes: list[Outcome] = field(default_factory=list)
    # (subscriberid, statid, listid, bouncetime, bouncetype, bouncerule)
    bounce_rows: list[tuple[int, int, int, int, str, str]] = field(default_factory=list)
    disable: dict[int, int] = field(default_factory=dict)  # subscriberid -> bounced time
    list_bounces: Counter = field(default_factory=Counter)  # listid -> subscribers disabled
    unsubscribe: dict[int, int] = field(default_factory=dict)  # subscriberid -> unsubscribed time
    unsubscribe_rows: list[Unsubscribed] = field(default_factory=list)
    list_unsubscribes: Counter = field(default_factory=Counter)  # listid -> subscribers unsubscribed
    # (stats table, statid) -> {column: increment}
    stats: dict[tuple[str, int], Counter] = field(default_factory=lambda: defaultdict(Counter))
    repeats: Counter = field(default_factory=Counter)  # fingerprint -> times seen again
    guard: GuardBatch | None = None

    @property
    def new_outcomes(self) -> list[Outcome]:
        """Outcomes that go into the ledger: everything but duplicates."""
        return [o for o in self.outcomes if o.outcome != "duplicate"]

    def take(self, outcome: Outcome, rows: Rows) -> None:
        """The record's decision becomes the batch's writes, and the in-memory rows move with them."""
        self.outcomes.append(outcome)
        effects = outcome.effects or Effects()
        if effects.campaign is not None:
            table, statid, column = effects.campaign
            self.stats[(table, statid)][column] += 1
        if effects.bounce_row is not None:
            row = effects.bounce_row
            self.bounce_rows.append(row)
            rows.bounced_keys.add(row[:3])
            rows.row_count[row[0]] += 1
        if effects.disabled is not None:
            subscriberid, listid, when = effects.disabled
            self.disable[subscriberid] = when
            self.list_bounces[listid] += 1
            rows.inactive.add(subscriberid)
        for gone in outcome.unsubscribed:
            self.unsubscribe[gone.subscriberid] = gone.unsubscribetime
            self.unsubscribe_rows.append(gone)
            self.list_unsubscribes[gone.listid] += 1
            if gone.stats_table is not None:  # set only when the campaign's counter is to go up
                self.stats[(gone.stats_table, gone.statid)]["unsubscribecount"] += 1
            rows.inactive.add(gone.subscriberid)


@dataclass(frozen=True)
class BatchReads:
    """What the database holds that a batch's records may touch, read (and locked) before the walk.

    `known`: fingerprints already in the ledger. `candidates`: active rows of the
    queried addresses (locked). `bounce_rows`: existing (subscriberid, statid,
    listid, count) of email_list_subscriber_bounces for the candidates.
    `stats_tables`: statid -> 'autoresponders' or 'newsletters'. `linked`: the rows
    complaints' List-Unsubscribe links name. `requests`: (subscriberid, listid) ->
    the first pending unsubscribe request's (time, IP).
    """

    known: Collection[str]
    candidates: Sequence[Candidate]
    bounce_rows: Sequence[tuple[int, int, int, int]]
    stats_tables: Mapping[int, str]
    linked: Sequence[LinkedRow] = ()
    requests: Mapping[tuple[int, int], tuple[int, str]] = field(default_factory=dict)


def plan_batch(records: Sequence[Record], *, policy: Policy, reads: BatchReads,
               guard: GuardBatch | None = None) -> Plan:
    """Decide every record's outcome and the writes they add up to, from what `reads` found.

    `guard`: the domain guard, asked about every new bounce in order (None: no guard).
    """
    plan = Plan(guard=guard)
    seen = set(reads.known)
    rows = _rows(reads.candidates, reads.bounce_rows, reads.stats_tables, reads.linked, reads.requests)
    for record in records:
        if record.fingerprint in seen:
            decision = "" if isinstance(record, ComplaintRecord) else policy.classify(record.category)
            plan.outcomes.append(Outcome(record, "duplicate", decision))
            plan.repeats[record.fingerprint] += 1
            continue
        seen.add(record.fingerprint)
        if guard is not None and isinstance(record, BounceRecord):
            decision = policy.classify(record.category)
            if guard.holds(record, decision):
                plan.outcomes.append(Outcome(record, "held", decision))
                continue
        if isinstance(record, ComplaintRecord):
            outcome = decide_complaint(record, rows, policy)
        else:
            outcome = decide_bounce(record, rows, policy)
        plan.take(outcome, rows)
    return plan


def _rows(candidates, bounce_rows, stats_tables, linked, requests) -> Rows:
    by_email: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        if candidate not in by_email[candidate.email]:
            by_email[candidate.email].append(candidate)
    bounced_keys: set[tuple[int, int, int]] = set()
    row_count: Counter = Counter()
    for subscriberid, statid, listid, count in bounce_rows:
        bounced_keys.add((subscriberid, statid, listid))
        row_count[subscriberid] += count
    return Rows(by_email, bounced_keys, row_count, stats_tables, {r.subscriberid: r for r in linked}, requests)


def decide_bounce(record: BounceRecord, rows: Rows, policy: Policy) -> Outcome:
    """iem-bounces.md's five steps for one bounce, against the batch's rows as they stand."""
    decision = policy.classify(record.category)
    if not record.list_ids:
        return Outcome(record, "unroutable", decision)
    # Step 1: the active row with the lowest listid among the record's lists.
    found = rows.active(record.rcpt, record.list_ids)
    if not found:
        return Outcome(record, "not_found", decision)
    row = min(found, key=lambda c: c.listid)
    sid, listid = row.subscriberid, row.listid
    # Step 2: one bounce per (subscriber, campaign, list); a repeat changes nothing.
    if (sid, record.statid, listid) in rows.bounced_keys:
        return Outcome(record, "already_bounced", decision, sid, listid)
    # Step 3: campaign statistics, when the statid names a campaign.
    table = rows.stats_tables.get(record.statid)
    campaign = (table, record.statid, CAMPAIGN_COLUMN[decision]) if table is not None else None
    if decision == "ignore":
        return Outcome(record, "applied", decision, sid, listid, bounce_effects(None, campaign, None))
    # Step 4: the bounce row. Step 5: disable on hard, or on the threshold'th row.
    bounce_row = (sid, record.statid, listid, record.time_logged, decision, bounce_rule(record.category))
    disabled = None
    if policy.disables(decision, rows.row_count[sid] + 1):
        disabled = (sid, listid, record.time_logged)
    outcome = "disabled" if disabled else "applied"
    return Outcome(record, outcome, decision, sid, listid, bounce_effects(bounce_row, campaign, disabled))
