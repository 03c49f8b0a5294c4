"""What a batch of bounces does to IEM: a pure function of the records and what the database holds.

It walks the records one by one in delivery order, exactly as the spec's
five steps would, against an in-memory copy of the rows that matter, so that
a batch gives the same database as applying the records one at a time.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..common.policy import Decision, Policy, bounce_rule
from ..common.record import BounceRecord
from .guard import GuardBatch

# held: kept by the domain guard, nothing written to IEM yet; discarded: a held record an operator threw away.
OUTCOMES = ("applied", "disabled", "already_bounced", "not_found", "unroutable", "held", "discarded", "duplicate")
_STAT_COLUMN = {"hard": "bouncecount_hard", "soft": "bouncecount_soft", "ignore": "bouncecount_unknown"}


@dataclass(frozen=True, slots=True)
class Outcome:
    record: BounceRecord
    outcome: str
    decision: Decision
    subscriberid: int | None = None
    listid: int | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """An active subscriber row (bounced = 0, unsubscribed = 0) for one queried address."""

    email: str  # the address as queried (the record's trimmed rcpt)
    subscriberid: int
    listid: int


@dataclass
class Plan:
    outcomes: list[Outcome] = field(default_factory=list)
    # (subscriberid, statid, listid, bouncetime, bouncetype, bouncerule)
    bounce_rows: list[tuple[int, int, int, int, str, str]] = field(default_factory=list)
    disable: dict[int, int] = field(default_factory=dict)  # subscriberid -> bounced time
    list_bounces: Counter = field(default_factory=Counter)  # listid -> subscribers disabled
    # (stats table, statid) -> {column: increment}
    stats: dict[tuple[str, int], Counter] = field(default_factory=lambda: defaultdict(Counter))
    repeats: Counter = field(default_factory=Counter)  # fingerprint -> times seen again
    guard: GuardBatch | None = None

    @property
    def new_outcomes(self) -> list[Outcome]:
        """Outcomes that go into the ledger: everything but duplicates."""
        return [o for o in self.outcomes if o.outcome != "duplicate"]


def plan_batch(
    records: Sequence[BounceRecord],
    *,
    policy: Policy,
    known: Iterable[str],
    candidates: Iterable[Candidate],
    bounce_rows: Iterable[tuple[int, int, int, int]],
    stats_tables: Mapping[int, str],
    guard: GuardBatch | None = None,
) -> Plan:
    """Decide every record's outcome and the writes they add up to.

    `known`: fingerprints already in the ledger. `bounce_rows`: existing
    (subscriberid, statid, listid, count) of email_list_subscriber_bounces for
    the candidates. `stats_tables`: statid -> 'autoresponders' or 'newsletters'.
    `guard`: the domain guard, asked about every new record in order (None: no guard).
    """
    plan = Plan(guard=guard)
    seen = set(known)
    rows_by_email: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        rows_by_email[candidate.email].append(candidate)
    bounced_keys: set[tuple[int, int, int]] = set()
    row_count: Counter = Counter()
    for subscriberid, statid, listid, count in bounce_rows:
        bounced_keys.add((subscriberid, statid, listid))
        row_count[subscriberid] += count
    disabled: set[int] = set()

    for record in records:
        decision = policy.classify(record.category)
        if record.fingerprint in seen:
            plan.outcomes.append(Outcome(record, "duplicate", decision))
            plan.repeats[record.fingerprint] += 1
            continue
        seen.add(record.fingerprint)
        if guard is not None and guard.holds(record, decision):
            plan.outcomes.append(Outcome(record, "held", decision))
            continue
        if not record.list_ids:
            plan.outcomes.append(Outcome(record, "unroutable", decision))
            continue
        # Step 1: the active row with the lowest listid among the record's lists.
        wanted = set(record.list_ids)
        rows = [
            c
            for c in rows_by_email.get(record.rcpt, ())
            if c.listid in wanted and c.subscriberid not in disabled
        ]
        if not rows:
            plan.outcomes.append(Outcome(record, "not_found", decision))
            continue
        row = min(rows, key=lambda c: c.listid)
        sid, listid = row.subscriberid, row.listid
        # Step 2: one bounce per (subscriber, campaign, list); a repeat changes nothing.
        key = (sid, record.statid, listid)
        if key in bounced_keys:
            plan.outcomes.append(Outcome(record, "already_bounced", decision, sid, listid))
            continue
        # Step 3: campaign statistics, when the statid names a campaign.
        table = stats_tables.get(record.statid)
        if table is not None:
            plan.stats[(table, record.statid)][_STAT_COLUMN[decision]] += 1
        outcome = "applied"
        if decision != "ignore":
            # Step 4: the bounce row. Step 5: disable on hard, or on the threshold'th row.
            plan.bounce_rows.append(
                (sid, record.statid, listid, record.time_logged, decision, bounce_rule(record.category))
            )
            bounced_keys.add(key)
            row_count[sid] += 1
            if policy.disables(decision, row_count[sid]):
                disabled.add(sid)
                plan.disable[sid] = record.time_logged
                plan.list_bounces[listid] += 1
                outcome = "disabled"
        plan.outcomes.append(Outcome(record, outcome, decision, sid, listid))
    return plan
