"""The classification policy: the spec's default map, and an operator's own."""

import pytest
from pmtabounce.common.policy import Policy, bounce_rule, parse_categories

DEFAULT_MAP = {
    "bad-mailbox": "hard",
    "inactive-mailbox": "hard",
    "bad-domain": "hard",
    "quota-issues": "soft",
    "no-answer-from-host": "soft",
    "relaying-issues": "soft",
    "routing-errors": "soft",
    "bad-connection": "ignore",
    "bad-configuration": "ignore",
    "content-related": "ignore",
    "invalid-sender": "ignore",
    "message-expired": "ignore",
    "other": "ignore",
    "policy-related": "ignore",
    "protocol-errors": "ignore",
    "spam-related": "ignore",
    "virus-related": "ignore",
    # not PowerMTA's: operators' own, empty, or nonsense
    "hardbnc": "ignore",
    "invalid-mailbox": "ignore",
    "": "ignore",
    "   ": "ignore",
    "bad_mailbox": "ignore",
    "bad-mailbox-ish": "ignore",
    # written in another case or with spaces around it: still PowerMTA's category
    "Bad-Mailbox": "hard",
    " quota-issues ": "soft",
}


@pytest.mark.parametrize(("category", "decision"), sorted(DEFAULT_MAP.items()))
def test_default_map(category, decision):
    assert Policy().classify(category) == decision


@pytest.mark.parametrize(
    ("category", "decision"),
    [("hardbnc", "hard"), ("bad-mailbox", "hard"), ("quota-issues", "ignore"), ("policy-related", "soft"),
     ("bad-domain", "ignore"), ("unknown-thing", "ignore")],
)
def test_an_operators_map(category, decision):
    policy = Policy(hard=parse_categories("bad-mailbox, HARDBNC"), soft=parse_categories("policy-related"))
    assert policy.classify(category) == decision


@pytest.mark.parametrize(
    ("decision", "rows", "threshold", "disables"),
    [
        ("hard", 1, 5, True),
        ("hard", 0, 5, True),
        ("soft", 1, 5, False),
        ("soft", 4, 5, False),
        ("soft", 5, 5, True),
        ("soft", 9, 5, True),
        ("soft", 2, 3, False),
        ("soft", 3, 3, True),
        ("soft", 1, 1, True),
        ("ignore", 5, 5, False),
        ("ignore", 100, 1, False),
    ],
)
def test_disables(decision, rows, threshold, disables):
    assert Policy(soft_threshold=threshold).disables(decision, rows) is disables


def test_the_default_threshold_is_iems_five():
    assert Policy().soft_threshold == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hard": frozenset({"a", "b"}), "soft": frozenset({"b"})}, "both hard and soft"),
        ({"soft_threshold": 0}, "at least 1"),
        ({"soft_threshold": -5}, "at least 1"),
    ],
)
def test_an_impossible_policy_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Policy(**kwargs)


@pytest.mark.parametrize(
    ("category", "rule"),
    [("bad-mailbox", "bad_mailbox"), ("no-answer-from-host", "no_answer_from_host"), ("Quota-Issues", "quota_issues"),
     (" bad-domain ", "bad_domain"), ("hardbnc", "hardbnc")],
)
def test_bounce_rule(category, rule):
    assert bounce_rule(category) == rule


@pytest.mark.parametrize(
    ("text", "categories"),
    [("bad-mailbox, hardbnc", {"bad-mailbox", "hardbnc"}), ("", set()), (" , ,", set()),
     ("Bad-Mailbox,bad-mailbox", {"bad-mailbox"})],
)
def test_parse_categories(text, categories):
    assert parse_categories(text) == categories


def test_a_map_written_in_another_case_still_matches():
    policy = Policy(hard=frozenset({"HardBnc"}), soft=frozenset({" Quota-Issues "}))
    assert (policy.classify("hardbnc"), policy.classify("quota-issues")) == ("hard", "soft")
