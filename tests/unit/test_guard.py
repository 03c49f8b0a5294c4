"""The domain guard's rule (issue 12), over data: windows, the trip bar, what is held."""

import re

import pytest
from pmtabounce.common.guard import HISTORY, DomainState, GuardBatch, GuardSettings, domain_of, valid_domain
from pmtabounce.common.policy import Policy
from pmtabounce.common.record import BounceRecord
from pmtabounce.worker.plan import BatchReads, Candidate, plan_batch

W = 600
T0 = 1_700_000_400  # a window start (divisible by 600)
SMALL = GuardSettings(minimum=5, factor=3, window=W)


def rec(n: int, email: str = "a{n}@gmail.com", category: str = "bad-mailbox", time: int = T0) -> BounceRecord:
    return BounceRecord("b", time, email.format(n=n), "5.1.1", f"diag {n}", category, (3,), 42, "f.csv", n)


def walk(records, states=None, settings=SMALL):
    guard = GuardBatch(settings, states or {})
    held = [r.source_line for r in records if guard.holds(r, Policy().classify(r.category))]
    return guard, held


@pytest.mark.parametrize("rcpt, domain", [
    ("a@Gmail.COM", "gmail.com"), (" b@x.example ", "x.example"), ("no-at-sign", ""), ("a@b@c.org", "c.org"),
    ("a@bücher.example", "xn--bcher-kva.example"), ("a@BÜCHER.Example", "xn--bcher-kva.example"),
    ("a@XN--BCHER-KVA.example", "xn--bcher-kva.example"),
    ("a@faß.de", "xn--fa-hia.de"),  # IDNA 2008: not fass.de, another domain (the stdlib codec's IDNA 2003)
    ("a@☃.example", "☃.example"),  # IDNA 2008 refuses it: kept as written, never an error
])
def test_domain_of(rcpt, domain):
    assert domain_of(rcpt) == domain


@pytest.mark.parametrize("usual, minimum, factor, bar", [
    (0, 5, 3, 5),  # no history: the minimum
    (1, 5, 3, 5),  # 3 x 1 is below the minimum
    (4, 5, 3, 12),  # 3 x the busiest earlier window
    (4, 5, 2.5, 10),
    (3, 5, 2.5, 8),  # rounded up: a bar is a whole number of records
])
def test_the_bar_is_the_larger_of_the_minimum_and_factor_times_the_busiest_earlier_window(usual, minimum, factor, bar):
    settings = GuardSettings(minimum=minimum, factor=factor, window=W)
    states = {"gmail.com": DomainState(counts={T0 - 2 * W: usual, T0 - W: usual - 1 if usual else 0})}
    assert GuardBatch(settings, states).threshold("gmail.com", T0) == bar


def test_only_the_previous_seven_days_and_untripped_windows_set_the_bar():
    states = {"gmail.com": DomainState(counts={T0 - HISTORY - W: 50, T0 - W: 40, T0 - 2 * W: 3, T0 + W: 70},
                                       tripped_windows={T0 - W})}
    assert GuardBatch(SMALL, states).threshold("gmail.com", T0) == 9


def test_the_record_that_reaches_the_bar_trips_the_domain_and_it_and_every_later_hard_record_is_held():
    records = [rec(n) for n in range(1, 9)]
    guard, held = walk(records)
    assert held == [5, 6, 7, 8]
    trip = guard.trips["gmail.com"]
    assert (trip.window_start, trip.count, trip.threshold, trip.record.source_line) == (T0, 5, 5, 5)
    assert guard.added == {("gmail.com", T0): 8} and guard.held == {"gmail.com": 4}


def test_counts_already_in_the_table_add_to_the_batch():
    guard, held = walk([rec(1), rec(2)], {"gmail.com": DomainState(counts={T0: 4})})
    assert held == [1, 2] and guard.trips["gmail.com"].count == 5


@pytest.mark.parametrize("record", [
    rec(1, category="quota-issues"),  # soft
    rec(1, category="policy-related"),  # ignored
    rec(1, email="a{n}@yahoo.com"),  # another domain
    rec(1, email="no-domain-{n}"),
])
def test_what_is_not_held_after_a_trip(record):
    storm = [rec(n) for n in range(10, 15)]  # the 5th (line 14) trips
    guard, held = walk([*storm, record])
    assert "gmail.com" in guard.trips
    assert held == [14]


def test_a_tripped_domain_holds_its_hard_records_in_every_window_but_others_go_on():
    states = {"gmail.com": DomainState(tripped=True)}
    guard, held = walk([rec(1, time=T0 + 5 * W), rec(2, email="x{n}@yahoo.com"), rec(3, category="quota-issues")],
                       states)
    assert held == [1] and not guard.trips


def test_switched_off_it_holds_and_counts_nothing():
    guard, held = walk([rec(n) for n in range(20)], settings=GuardSettings(enabled=False, minimum=1))
    assert held == [] and not guard.added


def test_same_decisions_compares_what_was_held_and_tripped():
    first, _ = walk([rec(n) for n in range(1, 7)])
    again, _ = walk([rec(n) for n in range(1, 7)])
    moved, _ = walk([rec(n) for n in range(1, 7)], {"gmail.com": DomainState(counts={T0: 2})})
    assert first.same_decisions(again) and not first.same_decisions(moved)


def test_in_the_walk_a_held_record_writes_nothing_and_the_rest_apply():
    candidates = [Candidate(f"a{n}@gmail.com", 100 + n, 3) for n in range(1, 8)]
    guard = GuardBatch(SMALL, {})
    plan = plan_batch([rec(n) for n in range(1, 8)], policy=Policy(), guard=guard,
                      reads=BatchReads(known=(), candidates=candidates, bounce_rows=(),
                                       stats_tables={42: "newsletters"}))
    assert [o.outcome for o in plan.outcomes] == ["disabled"] * 4 + ["held"] * 3
    assert sorted(plan.disable) == [101, 102, 103, 104] and len(plan.bounce_rows) == 4
    assert plan.stats[("newsletters", 42)]["bouncecount_hard"] == 4


def test_a_duplicate_is_not_counted_again():
    first = rec(1)
    guard = GuardBatch(SMALL, {})
    plan_batch([first, first, rec(2)], policy=Policy(),
               reads=BatchReads(known=(), candidates=(), bounce_rows=(), stats_tables={}), guard=guard)
    assert guard.added == {("gmail.com", T0): 2}


def test_the_trip_message_names_the_counts_and_the_undo_command():
    guard, _ = walk([rec(n) for n in range(1, 6)])
    text = guard.trips["gmail.com"].message(SMALL, Policy().hard)
    assert "gmail.com tripped: 5 hard bounces" in text and "bar of 5" in text
    assert ("pmtabounce undo --domain gmail.com --since 2023-11-14T22:20:00Z --until 2023-11-14T22:20:00Z "
            "--category bad-domain --category bad-mailbox --category inactive-mailbox --dry-run") in text


@pytest.mark.parametrize("later, stands", [
    ({}, True),  # nothing moved
    ({"gmail.com": DomainState(counts={T0: 1})}, True),  # moved, still below the minimum with ours
    ({"gmail.com": DomainState(counts={T0: 2})}, False),  # with ours it reaches the minimum: walk again
    ({"gmail.com": DomainState(tripped=True)}, False),  # tripped by someone meanwhile
])
def test_a_walk_stands_without_walking_again_only_when_no_bar_can_have_been_reached(later, stands):
    guard, held = walk([rec(1), rec(2), rec(3)])
    assert held == [] and guard.stands_with(later) is stands


def test_a_walk_that_held_or_tripped_is_always_walked_again():
    guard, held = walk([rec(n) for n in range(1, 6)])
    assert held == [5] and not guard.stands_with({})


@pytest.mark.parametrize(("given", "domain"), [
    ("gmail.com", "gmail.com"),
    ("Gmail.COM", "gmail.com"),
    ("@gmail.com", "gmail.com"),
    ("mx-1.example.co.uk", "mx-1.example.co.uk"),
    ("bücher.de", "xn--bcher-kva.de"),
    ("BÜCHER.de", "xn--bcher-kva.de"),
    ("xn--bcher-kva.de", "xn--bcher-kva.de"),
])
def test_valid_domain_accepts_host_names(given, domain):
    assert valid_domain(given) == domain


@pytest.mark.parametrize(("given", "says"), [
    ("gmail.com.", "did you mean 'gmail.com'?"),
    ("*.gmail.com", "is not a domain"),
    ("%", "is not a domain"),
    ('a"b', "is not a domain"),
    ("not a domain!", "is not a domain"),
    ("gmail", "is not a domain"),
    ("-gmail.com", "is not a domain"),
    ("gmail_com.net", "is not a domain"),
    ("a." * 127 + "com", "is not a domain"),
    ("", "is not a domain"),
    (".", "is not a domain"),
])
def test_valid_domain_refuses_what_is_not_a_domain(given, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        valid_domain(given)


def test_a_domain_written_in_unicode_and_as_its_a_label_is_one_domain_to_the_guard():
    records = [rec(n, "a{n}@bücher.example" if n % 2 else "a{n}@xn--bcher-kva.example") for n in range(1, 7)]
    guard, held = walk(records)
    assert held == [5, 6]
    assert guard.added == {("xn--bcher-kva.example", T0): 6}
    assert walk([rec(1, "a@bücher.example")], {"xn--bcher-kva.example": DomainState(tripped=True)})[1] == [1]
