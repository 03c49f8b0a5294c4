"""The pure planner: the spec's five steps decided over data, with no database."""

import random
from collections import Counter

import pytest
from pmtabounce.common.policy import Policy
from pmtabounce.common.record import BounceRecord
from pmtabounce.worker.plan import BatchReads, Candidate, plan_batch

T0 = 1732010733
CATEGORY = {"hard": "bad-mailbox", "soft": "quota-issues", "ignore": "policy-related"}


def rec(kind="hard", email="a@x.com", lists=(3,), statid=42, time=T0, line=1) -> BounceRecord:
    return BounceRecord("b", time, email, "5.1.1", f"diag {time}", CATEGORY.get(kind, kind), tuple(lists),
                        statid, "f.csv", line)


DEFAULT = Policy()


def plan(records, candidates=(), rows=(), stats=None, known=(), policy=DEFAULT):
    return plan_batch(records, policy=policy, reads=BatchReads(
        known=known, candidates=candidates, bounce_rows=rows,
        stats_tables={42: "newsletters"} if stats is None else stats))


def outcomes(p):
    return [(o.outcome, o.decision, o.subscriberid, o.listid) for o in p.outcomes]


A3 = Candidate("a@x.com", 100, 3)
A7 = Candidate("a@x.com", 101, 7)
A8 = Candidate("a@x.com", 102, 8)
B3 = Candidate("b@x.com", 200, 3)


def test_no_active_row_is_not_found_and_writes_nothing():
    p = plan([rec()], candidates=[B3])
    assert outcomes(p) == [("not_found", "hard", None, None)]
    assert (p.bounce_rows, p.disable, p.list_bounces, dict(p.stats)) == ([], {}, Counter(), {})


def test_no_list_id_is_unroutable():
    p = plan([rec(lists=())], candidates=[A3])
    assert outcomes(p) == [("unroutable", "hard", None, None)] and p.bounce_rows == []


def test_a_row_on_a_list_the_record_does_not_name_is_not_found():
    p = plan([rec(lists=(5,))], candidates=[A3, A7])
    assert outcomes(p) == [("not_found", "hard", None, None)]


@pytest.mark.parametrize(
    ("lists", "candidates", "expected"),
    [
        ((3, 7, 8), [A8, A7, A3], (100, 3)),
        ((7, 8), [A8, A7, A3], (101, 7)),
        ((8, 13), [A8, A7, A3], (102, 8)),
        ((3, 7), [A7], (101, 7)),  # the list 3 row is gone (unsubscribed or bounced): the next one
    ],
)
def test_the_lowest_list_id_wins(lists, candidates, expected):
    p = plan([rec(lists=lists)], candidates=candidates)
    assert (p.outcomes[0].subscriberid, p.outcomes[0].listid) == expected
    assert p.bounce_rows[0][:3] == (expected[0], 42, expected[1])


@pytest.mark.parametrize("kind", ["hard", "soft", "ignore"])
def test_already_bounced_for_this_campaign_and_list_writes_nothing_not_even_stats(kind):
    p = plan([rec(kind)], candidates=[A3], rows=[(100, 42, 3, 1)])
    assert outcomes(p) == [("already_bounced", kind, 100, 3)]
    assert (p.bounce_rows, p.disable, dict(p.stats)) == ([], {}, {})


@pytest.mark.parametrize("row", [(100, 43, 3, 1), (100, 42, 7, 1), (101, 42, 3, 1), (100, 0, 3, 1)])
def test_a_bounce_for_another_campaign_list_or_subscriber_is_not_already_bounced(row):
    p = plan([rec("soft")], candidates=[A3], rows=[row])
    assert p.outcomes[0].outcome == "applied"


@pytest.mark.parametrize(
    ("kind", "column"),
    [("hard", "bouncecount_hard"), ("soft", "bouncecount_soft"), ("ignore", "bouncecount_unknown"),
     ("some-new-category", "bouncecount_unknown")],
)
@pytest.mark.parametrize("table", ["newsletters", "autoresponders"])
def test_campaign_statistics(kind, column, table):
    p = plan([rec(kind, statid=42)], candidates=[A3], stats={42: table})
    assert dict(p.stats) == {(table, 42): Counter({column: 1})}


@pytest.mark.parametrize("statid", [0, 99])
def test_no_campaign_no_statistics_but_still_a_bounce_row(statid):
    p = plan([rec("soft", statid=statid)], candidates=[A3])
    assert dict(p.stats) == {}
    assert p.bounce_rows == [(100, statid, 3, T0, "soft", "quota_issues")]
    assert outcomes(p) == [("applied", "soft", 100, 3)]


def test_hard_writes_a_row_and_disables_at_once():
    p = plan([rec("hard", time=T0 + 5)], candidates=[A3])
    assert p.bounce_rows == [(100, 42, 3, T0 + 5, "hard", "bad_mailbox")]
    assert p.disable == {100: T0 + 5} and p.list_bounces == Counter({3: 1})
    assert outcomes(p) == [("disabled", "hard", 100, 3)]


def test_ignore_writes_no_row_and_never_disables():
    p = plan([rec("ignore")], candidates=[A3], rows=[(100, s, 3, 1) for s in range(1, 10)])
    assert p.bounce_rows == [] and p.disable == {}
    assert outcomes(p) == [("applied", "ignore", 100, 3)]


@pytest.mark.parametrize(
    ("existing", "threshold", "outcome"),
    [
        ([], 5, "applied"),
        ([(100, 1, 3, 3)], 5, "applied"),  # 3 rows + this one = 4
        ([(100, 1, 3, 4)], 5, "disabled"),  # the 5th
        ([(100, 1, 3, 1), (100, 0, 9, 1), (100, 7, 3, 2)], 5, "disabled"),  # any statid, any list, any type
        ([(100, 1, 3, 9)], 5, "disabled"),
        ([(100, 1, 3, 1)], 2, "disabled"),
        ([], 1, "disabled"),
        ([(101, 1, 7, 10)], 5, "applied"),  # another subscriber's rows do not count
    ],
)
def test_soft_disables_at_the_threshold_counting_every_row(existing, threshold, outcome):
    p = plan([rec("soft")], candidates=[A3], rows=existing, policy=Policy(soft_threshold=threshold))
    assert p.outcomes[0].outcome == outcome
    assert (100 in p.disable) is (outcome == "disabled")
    assert p.list_bounces == (Counter({3: 1}) if outcome == "disabled" else Counter())


def test_a_record_in_the_ledger_is_a_duplicate_and_changes_nothing():
    record = rec()
    p = plan([record], candidates=[A3], known=[record.fingerprint])
    assert outcomes(p) == [("duplicate", "hard", None, None)]
    assert p.new_outcomes == [] and p.repeats == Counter({record.fingerprint: 1})
    assert (p.bounce_rows, p.disable, dict(p.stats)) == ([], {}, {})


def test_the_same_record_twice_in_one_batch_counts_once():
    record = rec("ignore")
    p = plan([record, rec("ignore", line=9)], candidates=[A3])
    assert [o.outcome for o in p.outcomes] == ["applied", "duplicate"]
    assert dict(p.stats) == {("newsletters", 42): Counter({"bouncecount_unknown": 1})}
    assert len(p.new_outcomes) == 1 and p.repeats == Counter({record.fingerprint: 1})


def test_five_soft_bounces_in_one_batch_disable_on_the_fifth():
    records = [rec("soft", statid=s, time=T0 + s) for s in range(1, 7)]
    p = plan(records, candidates=[A3], stats={})
    assert [o.outcome for o in p.outcomes] == ["applied"] * 4 + ["disabled", "not_found"]
    assert len(p.bounce_rows) == 5 and p.disable == {100: T0 + 5} and p.list_bounces == Counter({3: 1})


def test_after_a_disable_in_the_batch_the_next_list_row_is_found():
    """As IEM would, one record after another: list 3's row is bounced, so the next goes to list 7."""
    p = plan([rec("hard", lists=(3, 7), statid=42), rec("hard", lists=(3, 7), statid=43)], candidates=[A3, A7])
    assert outcomes(p) == [("disabled", "hard", 100, 3), ("disabled", "hard", 101, 7)]
    assert p.list_bounces == Counter({3: 1, 7: 1})


def test_a_repeat_of_the_campaign_in_the_batch_is_already_bounced():
    p = plan([rec("soft", time=T0), rec("soft", time=T0 + 1)], candidates=[A3])
    assert [o.outcome for o in p.outcomes] == ["applied", "already_bounced"]
    assert len(p.bounce_rows) == 1 and p.stats[("newsletters", 42)] == Counter({"bouncecount_soft": 1})


def test_two_addresses_are_independent():
    p = plan([rec("hard", email="a@x.com"), rec("hard", email="b@x.com")], candidates=[A3, B3])
    assert outcomes(p) == [("disabled", "hard", 100, 3), ("disabled", "hard", 200, 3)]
    assert p.list_bounces == Counter({3: 2})
    assert p.stats[("newsletters", 42)] == Counter({"bouncecount_hard": 2})


class World:
    """A tiny in-memory IEM: what the database would hand the planner, and what a plan writes back."""

    def __init__(self, candidates):
        self.active = list(candidates)
        self.rows: list[tuple] = []
        self.ledger: set[str] = set()
        self.stats: Counter = Counter()
        self.lists: Counter = Counter()
        self.bounced: dict[int, int] = {}

    def apply(self, records, policy):
        counts = Counter((r[0], r[1], r[2]) for r in self.rows)
        p = plan_batch(records, policy=policy, reads=BatchReads(
            known=set(self.ledger), candidates=list(self.active),
            bounce_rows=[(*key, n) for key, n in counts.items()], stats_tables={1: "newsletters"}))
        self.ledger |= {o.record.fingerprint for o in p.new_outcomes}
        self.rows += p.bounce_rows
        for key, columns in p.stats.items():
            for column, n in columns.items():
                self.stats[(key, column)] += n
        self.lists.update(p.list_bounces)
        self.bounced.update(p.disable)
        self.active = [c for c in self.active if c.subscriberid not in p.disable]
        return [(o.outcome, o.subscriberid) for o in p.outcomes]

    def state(self):
        return sorted(self.rows), self.stats, self.lists, self.bounced, self.ledger


@pytest.mark.parametrize("seed", range(20))
def test_one_batch_gives_what_one_record_at_a_time_gives(seed):
    rng = random.Random(seed)
    emails = ["a@x.com", "b@x.com", "c@x.com"]
    candidates = [Candidate(e, 10 * i + j, listid) for i, e in enumerate(emails)
                  for j, listid in enumerate(rng.sample([1, 2, 3, 4], rng.randint(1, 4)))]
    kinds = ["hard", "soft", "soft", "soft", "ignore", "other-thing"]
    records = [rec(rng.choice(kinds), rng.choice(emails), rng.sample([1, 2, 3, 4, 5], rng.randint(0, 3)),
                   rng.choice([0, 1, 2, 3]), T0 + rng.randint(0, 5)) for _ in range(40)]
    records += rng.sample(records, 5)  # redeliveries
    policy = Policy(soft_threshold=rng.choice([2, 3, 5]))
    batch, single = World(candidates), World(candidates)
    assert batch.apply(records, policy) == [o for r in records for o in single.apply([r], policy)]
    assert batch.state() == single.state()
