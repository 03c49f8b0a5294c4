"""The expected-state model is the oracle for the world tests: check it against the spec's own cases."""

from __future__ import annotations

from collections import Counter

import pytest
from iem_model import BounceModel, IemState, Subscriber, differences
from pmtabounce.common.record import BounceRecord

T = 1732010733


def state() -> IemState:
    """anna on lists 2 (sid 10) and 1 (sid 11, unconfirmed); ben with four earlier bounce rows of mixed type;
    carl unsubscribed on 1 and active on 3; dora already bounced. Statid 7 is a newsletter, 8 an autoresponder."""
    return IemState(
        subscribers={
            10: Subscriber(2, "anna@example.com", "1", 0, 0),
            11: Subscriber(1, "Anna@Example.com", "0", 0, 0),
            20: Subscriber(1, "ben@example.com", "1", 0, 0),
            30: Subscriber(1, "carl@example.com", "1", 0, T - 99),
            31: Subscriber(3, "carl@example.com", "1", 0, 0),
            40: Subscriber(1, "dora@example.com", "1", T - 50, 0),
        },
        bounces=Counter({
            (10, 7, 2, T - 900, "soft", "quota_issues", ""): 1,
            (20, 1, 1, T - 800, "soft", "quota_issues", ""): 3,
            (20, 2, 1, T - 700, "hard", "bad_mailbox", ""): 1,
        }),
        lists={1: [100, 5, 9], 2: [50, 1, 2], 3: [10, 0, 0]},
        newsletters={7: [1, 2, 3]},
        autoresponders={8: [0, 0, 0]},
    )


def bounce(rcpt: str, category: str, lists=(1, 2), statid: int = 7, line: int = 2, time: int = T) -> BounceRecord:
    return BounceRecord("b", time, rcpt, "5.0.0", "smtp;550 no", category, tuple(lists), statid, "f.csv", line)


def apply(*records: BounceRecord) -> tuple[IemState, list[str]]:
    model = BounceModel(state())
    return model.state, [model.apply(r) for r in records]


def test_lowest_list_wins_and_unconfirmed_rows_are_still_bounced():
    after, outcomes = apply(bounce("ANNA@example.com", "bad-mailbox"))
    assert outcomes == ["disabled"]
    assert after.subscribers[11].bounced == T and after.subscribers[10].bounced == 0
    assert after.lists[1] == [99, 5, 10] and after.lists[2] == [50, 1, 2]
    assert after.newsletters[7] == [1, 3, 3]
    assert after.ledger[("f.csv", 2)].subscriberid == 11


def test_already_bounced_for_the_campaign_changes_nothing_not_even_statistics():
    after, outcomes = apply(bounce("anna@example.com", "quota-issues", lists=(2,)))
    assert outcomes == ["already_bounced"]
    assert not differences(state(), after, ledger=False)


def test_statid_zero_writes_a_bounce_row_but_no_statistics():
    after, outcomes = apply(bounce("carl@example.com", "quota-issues", lists=(1, 3), statid=0))
    assert outcomes == ["applied"]
    assert after.bounces[(31, 0, 3, T, "soft", "quota_issues", "")] == 1
    assert after.newsletters == state().newsletters and after.autoresponders == state().autoresponders


def test_autoresponder_statistics_and_ignored_categories_count_as_unknown():
    after, outcomes = apply(bounce("carl@example.com", "spam-related", lists=(3,), statid=8),
                            bounce("carl@example.com", "hardbnc", lists=(3,), statid=8, line=3))
    assert outcomes == ["applied", "applied"]
    assert after.autoresponders[8] == [0, 0, 2]
    assert after.bounces == state().bounces


def test_the_fifth_row_of_any_type_disables_and_later_bounces_find_nobody():
    after, outcomes = apply(bounce("ben@example.com", "no-answer-from-host", lists=(1,), statid=7),
                            bounce("ben@example.com", "bad-mailbox", lists=(1,), statid=8, line=3))
    assert outcomes == ["disabled", "not_found"]
    assert after.subscribers[20].bounced == T
    assert after.lists[1] == [99, 5, 10]


def test_a_record_met_again_is_a_duplicate_and_changes_nothing():
    model = BounceModel(state())
    model.apply(bounce("carl@example.com", "quota-issues", lists=(3,)))
    once = IemState(**{k: v.copy() for k, v in vars(model.state).items()})
    outcome = model.apply(bounce("carl@example.com", "quota-issues", lists=(3,), line=40))
    assert outcome == "duplicate"
    assert not differences(once, model.state)
    assert model.state.seen[("f.csv", 2)] == 2


@pytest.mark.parametrize(
    ("record", "outcome"),
    [
        (bounce("dora@example.com", "bad-mailbox", lists=(1,)), "not_found"),  # already bounced row
        (bounce("carl@example.com", "bad-mailbox", lists=(1,)), "not_found"),  # unsubscribed row
        (bounce("nobody@example.com", "bad-mailbox"), "not_found"),
        (bounce("anna@example.com", "bad-mailbox", lists=()), "unroutable"),
    ],
)
def test_records_that_touch_no_iem_table(record, outcome):
    after, outcomes = apply(record)
    assert outcomes == [outcome]
    assert not differences(state(), after, ledger=False)
    assert after.ledger[("f.csv", 2)].outcome == outcome
