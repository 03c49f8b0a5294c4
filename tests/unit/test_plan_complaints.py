"""The pure planner on complaints (iem-complaints.md), alone and mixed with bounces, with no database."""

import random
from collections import Counter

import pytest
from pmtabounce.common.complaint import ComplaintRecord
from pmtabounce.common.policy import Policy
from pmtabounce.common.record import BounceRecord
from pmtabounce.worker.plan import BatchReads, Candidate, LinkedRow, plan_batch

T0 = 1732011060
A3, A7, A8 = Candidate("a@x.com", 100, 3), Candidate("a@x.com", 101, 7), Candidate("a@x.com", 102, 8)
B3 = Candidate("b@x.com", 200, 3)
LINKED = {100: LinkedRow(100, 3, "a@x.com", "c100", True), 101: LinkedRow(101, 7, "a@x.com", "c101", True),
          200: LinkedRow(200, 3, "b@x.com", "c200", True), 300: LinkedRow(300, 3, "z@x.com", "c300", False)}


def link(m, c=None, lid=0, n=0):
    parts = [f"M={m}"] + ([f"C={c}"] if c else []) + ([f"L={lid}"] if lid else []) + ([f"N={n}"] if n else [])
    return f"<https://iem.example.com/unsubscribe.php?{'&'.join(parts)}>"


def fbl(email="a@x.com", lists=(3,), statid=42, kind="abuse", header="", time=T0, line=1) -> ComplaintRecord:
    return ComplaintRecord("f", time, email, kind, "arf", "UA", "mta", tuple(lists), statid, header, "c.csv", line)


STATS = {42: "newsletters", 77: "autoresponders"}


def plan(records, candidates=(A3, A7, A8, B3), scope="all", stats=None, requests=None, known=()):
    return plan_batch(records, policy=Policy(complaint_scope=scope), reads=BatchReads(
        known=known, candidates=candidates, bounce_rows=(), stats_tables=STATS if stats is None else stats,
        linked=tuple(LINKED.values()), requests=requests or {}))


def unsubscribed(p):
    return [(u.subscriberid, u.listid, u.statid, u.area, u.campaign_counted) for u in p.unsubscribe_rows]


# (record, scope) -> (outcome, decision, [(subscriberid, listid, statid, area, counted)])
CASES = {
    "all: every active row, the campaign's lists counted": (
        fbl(lists=(3,)), "all", ("unsubscribed", "all", [(100, 3, 42, "n", True), (101, 7, 0, "f", False),
                                                          (102, 8, 0, "f", False)])),
    "campaign: the record's lists": (
        fbl(lists=(3, 8, 9)), "campaign", ("unsubscribed", "campaign", [(100, 3, 42, "n", True),
                                                                        (102, 8, 42, "n", True)])),
    "campaign: no list ids, the link's L": (
        fbl(lists=(), header=link(101, "c101", 7)), "campaign",
        ("unsubscribed", "campaign", [(101, 7, 42, "n", True)])),
    "row: the lowest listid of the record's lists": (
        fbl(lists=(7, 8)), "row", ("unsubscribed", "row", [(101, 7, 42, "n", True)])),
    "row: the link's (M, L)": (
        fbl(lists=(3, 7, 8), header=link(101, "c101", 7)), "row", ("unsubscribed", "row", [(101, 7, 42, "n", True)])),
    "row: the link's L is not M's list": (fbl(header=link(101, None, 3)), "row", ("not_found", "row", [])),
    "row: the link names an inactive row": (fbl("z@x.com", header=link(300)), "row", ("not_found", "row", [])),
    "row: rcpt but no list id and no link, the bounce rule's unroutable": (
        fbl(lists=()), "row", ("unroutable", "row", [])),
    "link without rcpt, C right": (
        fbl("", lists=(7,), header=link(101, "c101", 7, 42)), "all",
        ("unsubscribed", "all", [(100, 3, 0, "f", False), (101, 7, 42, "n", True), (102, 8, 0, "f", False)])),
    "link without rcpt, no C": (fbl("", lists=(3,), header=link(200)), "all", ("unsubscribed", "all",
                                                                               [(200, 3, 42, "n", True)])),
    "link without rcpt, C wrong": (fbl("", header=link(100, "nope")), "all", ("not_found", "all", [])),
    "link without rcpt, M unknown": (fbl("", header=link(999)), "all", ("not_found", "all", [])),
    "neither rcpt nor link": (fbl("", header="<mailto:u@x>"), "all", ("unroutable", "all", [])),
    "no active row": (fbl("c@x.com"), "all", ("not_found", "all", [])),
    "not-spam": (fbl(kind="not-spam"), "all", ("ignored", "ignore", [])),
    "JMRP: empty type acts": (fbl(kind=""), "row", ("unsubscribed", "row", [(100, 3, 42, "n", True)])),
    "autoresponder": (fbl(lists=(3,), statid=77), "row", ("unsubscribed", "row", [(100, 3, 77, "a", True)])),
    "no campaign": (fbl(lists=(3,), statid=0), "row", ("unsubscribed", "row", [(100, 3, 0, "f", False)])),
    "deleted campaign": (fbl(lists=(3,), statid=5), "row", ("unsubscribed", "row", [(100, 3, 0, "f", False)])),
    "no header SID: the link's N": (
        fbl(lists=(3,), statid=0, header=link(100, "c100", 3, 42)), "row",
        ("unsubscribed", "row", [(100, 3, 42, "n", True)])),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_complaint(case):
    record, scope, (outcome, decision, rows) = CASES[case]
    p = plan([record], scope=scope)
    assert [(o.outcome, o.decision) for o in p.outcomes] == [(outcome, decision)]
    assert unsubscribed(p) == rows
    assert p.unsubscribe == {sid: T0 for sid, *_ in rows}
    assert p.list_unsubscribes == Counter(listid for _, listid, *_ in rows)
    expected = Counter()
    for _, _, statid, area, counted in rows:
        if counted:
            expected[("autoresponders" if area == "a" else "newsletters", statid)] += 1
    assert {k: v for k, v in p.stats.items() if v} == {k: Counter({"unsubscribecount": n}) for k, n in expected.items()}
    assert (p.outcomes[0].effects is None) is (not rows)


def test_a_pending_request_is_kept():
    p = plan([fbl()], scope="row", requests={(100, 3): (T0 - 5, "192.0.2.1"), (101, 7): (1, "x")})
    assert [(u.kept_request_time, u.kept_request_ip) for u in p.unsubscribe_rows] == [(T0 - 5, "192.0.2.1")]
    assert p.outcomes[0].effects.as_dict() == {"unsubscribed": [[100, 3, T0, 42, "n", T0 - 5, "192.0.2.1", True]]}


def test_a_complaint_already_in_the_ledger_is_a_duplicate():
    record = fbl()
    p = plan([record, fbl(line=2)], known=[record.fingerprint])
    assert [o.outcome for o in p.outcomes] == ["duplicate", "duplicate"] and p.new_outcomes == []
    assert p.repeats == Counter({record.fingerprint: 2}) and p.unsubscribe_rows == []


def hard(email="a@x.com", lists=(3,), time=T0) -> BounceRecord:
    return BounceRecord("b", time, email, "5.1.1", f"gone {time}", "bad-mailbox", tuple(lists), 42, "b.csv", 1)


def test_delivery_order_decides_between_a_bounce_and_a_complaint():
    p = plan([hard(lists=(3,)), fbl(time=T0 + 1)], scope="all")
    assert [(o.outcome, o.subscriberid) for o in p.outcomes] == [("disabled", 100), ("unsubscribed", 101)]
    assert 100 not in p.unsubscribe and sorted(p.unsubscribe) == [101, 102]
    p = plan([fbl(), hard(lists=(3, 7, 8), time=T0 + 1)], scope="all")
    assert [o.outcome for o in p.outcomes] == ["unsubscribed", "not_found"] and p.disable == {}


class World:
    """A tiny IEM in memory: the planner's inputs from it, a plan's writes back into it."""

    def __init__(self, candidates):
        self.rows = list(candidates)
        self.active = list(candidates)
        self.ledger: set[str] = set()
        self.writes: Counter = Counter()

    def apply(self, records, policy):
        p = plan_batch(records, policy=policy, reads=BatchReads(
            known=set(self.ledger), candidates=list(self.active), bounce_rows=(), stats_tables={42: "newsletters"},
            linked=[LinkedRow(c.subscriberid, c.listid, c.email, "", c in self.active) for c in self.rows]))
        self.ledger |= {o.record.fingerprint for o in p.new_outcomes}
        gone = set(p.disable) | set(p.unsubscribe)
        self.active = [c for c in self.active if c.subscriberid not in gone]
        self.writes.update(("disable", k, v) for k, v in p.disable.items())
        self.writes.update(("unsubscribe", astuple) for astuple in unsubscribed(p))
        for key, columns in p.stats.items():
            for column, n in columns.items():
                self.writes[("stats", key, column)] += n
        for listid, n in p.list_bounces.items():
            self.writes[("bouncecount", listid)] += n
        for listid, n in p.list_unsubscribes.items():
            self.writes[("unsubscribecount", listid)] += n
        return [(o.outcome, o.subscriberid, o.effects) for o in p.outcomes]


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("scope", ["all", "campaign", "row"])
def test_one_batch_gives_what_one_record_at_a_time_gives(seed, scope):
    rng = random.Random(seed)
    emails = ["a@x.com", "b@x.com", "c@x.com"]
    candidates = [Candidate(e, 10 * i + j, listid) for i, e in enumerate(emails)
                  for j, listid in enumerate(rng.sample([1, 2, 3, 4], rng.randint(1, 4)))]
    records = []
    for n in range(40):
        email, lists, time = rng.choice(emails), rng.sample([1, 2, 3, 4, 5], rng.randint(0, 3)), T0 + n
        if rng.random() < 0.5:
            records.append(hard(email, lists, time))
        else:
            sid = rng.choice(candidates).subscriberid
            records.append(fbl(rng.choice([email, ""]), lists, rng.choice([0, 42]), rng.choice(["abuse", "", "x"]),
                               rng.choice(["", link(sid)]), time))
    records += rng.sample(records, 5)  # redeliveries
    policy = Policy(complaint_scope=scope)
    batch, single = World(candidates), World(candidates)
    assert batch.apply(records, policy) == [o for r in records for o in single.apply([r], policy)]
    assert batch.writes == single.writes
