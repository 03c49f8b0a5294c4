"""undo's pure parts: the filter as SQL, what a ledger record wrote, when a row changed since, times."""

import re

import click
import pytest
from pmtabounce.common.record import parse_time
from pmtabounce.store.effects import Unsubscribed
from pmtabounce.store.undo import UndoCounts, _changed_since, _unsubscribed_since, effect_of
from pmtabounce.store.undo_filter import UndoFilter

from pmtabounce.commands import parse_when


def row(**changes) -> dict:
    base = {"id": 7, "email": "a@x.com", "subscriberid": 100, "listid": 3, "statid": 42, "time_logged": 1000,
            "decision": "hard", "category": "Bad-Mailbox", "outcome": "disabled"}
    return base | changes


@pytest.mark.parametrize("changes, bounce_row, campaign, disabled", [
    ({}, (100, 42, 3, 1000, "hard", "bad_mailbox"), (42, "bouncecount_hard", None), (100, 3, 1000)),
    ({"decision": "soft", "category": "quota-issues", "outcome": "applied"},
     (100, 42, 3, 1000, "soft", "quota_issues"), (42, "bouncecount_soft", None), None),
    ({"decision": "soft", "category": "quota-issues"}, (100, 42, 3, 1000, "soft", "quota_issues"),
     (42, "bouncecount_soft", None), (100, 3, 1000)),  # the threshold'th soft bounce
    ({"decision": "ignore", "category": "policy-related", "outcome": "applied"}, None,
     (42, "bouncecount_unknown", None), None),  # statistics only
    ({"statid": 0}, (100, 0, 3, 1000, "hard", "bad_mailbox"), None, (100, 3, 1000)),  # no campaign
    # recorded by the ledger (store/effects.py's shape): taken as written, the stats table included
    ({"effects": '{"bounce_row": [100, 42, 3, 999, "hard", "bad_mailbox"], '
                 '"campaign": ["autoresponders", 42, "bouncecount_hard"], "disabled": [100, 3, 999]}'},
     (100, 42, 3, 999, "hard", "bad_mailbox"), (42, "bouncecount_hard", "autoresponders"), (100, 3, 999)),
    ({"effects": '{"campaign": ["newsletters", 42, "bouncecount_unknown"]}', "decision": "ignore"},
     None, (42, "bouncecount_unknown", "newsletters"), None),
])
def test_what_a_record_wrote(changes, bounce_row, campaign, disabled):
    effect = effect_of(row(**changes))
    assert (effect.bounce_row, effect.campaign, effect.disabled) == (bounce_row, campaign, disabled)


@pytest.mark.parametrize("now, why", [
    ((3, 1000, 0), None),  # as the record left it
    (None, "deleted since"),
    ((3, 0, 0), "re-activated since"),
    ((3, 2000, 0), "bounced again since"),
    ((3, 1000, 1500), "unsubscribed since"),
])
def test_a_row_changed_since_is_left_alone(now, why):
    assert _changed_since((100, 3, 1000), now) == why


def test_the_filter_as_sql():
    clause, params = UndoFilter(since=10, until=20, domains=("gmail.com", "a_b.com"), categories=("bad-mailbox",),
                                diag="does not EXIST 100%", files=("bounces-*.csv",), email="a@x.com",
                                outcomes=("disabled",)).clause()
    assert clause == ("undo_run IS NULL AND outcome IN (%s) AND time_logged >= %s AND time_logged <= %s AND "
                      "email = %s AND dsn_diag LIKE %s AND (email LIKE %s OR email LIKE %s) AND "
                      "(source_file REGEXP %s) AND category IN (%s)")
    glob = params.pop(7)  # a whole-name pattern for MariaDB's REGEXP (PCRE), which Python's re reads alike here
    assert params == ["disabled", 10, 20, "a@x.com", "%does not EXIST 100\\%%", "%@gmail.com", "%@a\\_b.com",
                      "bad-mailbox"]
    assert [bool(re.search(glob, name)) for name in ("bounces-2020.csv", "x-bounces-1.csv", "bounces-1.csv.done")] \
        == [True, False, False]


def test_without_outcomes_it_takes_every_record_that_wrote_to_iem():
    clause, params = UndoFilter(email="a@x.com").clause()
    assert clause.startswith("undo_run IS NULL AND outcome IN (%s, %s, %s)")
    assert params[:3] == ["applied", "disabled", "unsubscribed"]
    assert UndoFilter().empty and not UndoFilter(since=0).empty


def test_feedback_types_select_complaints_and_empty_means_none_given():
    clause, params = UndoFilter(feedback_types=("abuse", "empty")).clause()
    assert clause.endswith("AND record_type = 'f' AND feedback_type IN (%s, %s)") and params[-2:] == ["abuse", ""]
    assert not UndoFilter(feedback_types=("abuse",)).empty


def test_ledger_ids_name_records_exactly():
    clause, params = UndoFilter(ledger_ids=(7, 9)).clause()
    assert clause.endswith("AND id IN (%s, %s)") and params[-2:] == [7, 9]
    assert not UndoFilter(ledger_ids=(7,)).empty


def test_what_a_complaint_wrote_every_row_with_the_stats_table_of_the_counted_ones():
    effect = effect_of(row(outcome="unsubscribed", decision="all", effects=(
        '{"unsubscribed": [[100, 3, 1000, 42, "n", 0, "", true], [101, 5, 1000, 0, "f", 900, "10.0.0.1", false], '
        '[102, 6, 1000, 77, "a", 0, "", true]]}')))
    assert (effect.bounce_row, effect.campaign, effect.disabled) == (None, None, None)
    assert effect.unsubscribed == (Unsubscribed(100, 3, 1000, 42, "n", 0, "", True, "newsletters"),
                                   Unsubscribed(101, 5, 1000, 0, "f", 900, "10.0.0.1", False, None),
                                   Unsubscribed(102, 6, 1000, 77, "a", 0, "", True, "autoresponders"))


@pytest.mark.parametrize("now, why", [
    ((3, 0, 1000), None),  # as the complaint left it
    (None, "deleted since"),
    ((3, 0, 0), "re-subscribed since"),
    ((3, 2000, 1000), "bounced since"),
    ((3, 0, 1500), "unsubscribed again since"),
])
def test_a_row_a_complaint_unsubscribed_that_changed_since_is_left_alone(now, why):
    assert _unsubscribed_since(Unsubscribed(100, 3, 1000, 42, "n", 0, "", True), now) == why


@pytest.mark.parametrize("text, seconds", [
    ("1608000000", 1608000000),
    ("2020-12-15T02:40:00Z", 1608000000),
    ("2020-12-15T03:40:00+01:00", 1608000000),
    ("2020-12-15 02:40:00", 1608000000),  # no offset: UTC
    ("2020-12-14 18:40:00-0800", 1608000000),  # PowerMTA's `iso-times yes` form, which 3.10's fromisoformat refuses
    ("2020-12-15 03:40:00.5+0100", 1608000000),
    ("2020-12-15T02:40:00.000Z", 1608000000),
])
def test_times_are_unix_or_iso(text, seconds):
    assert parse_when(text) == seconds


@pytest.mark.parametrize("text", ["2020-12-14 18:40:00-0800", "2020-12-15T02:40:00Z", "2020-12-15T03:40:00+01:00",
                                  "1608000000"])
def test_the_command_line_reads_a_time_as_the_accounting_file_does(text):
    # One parser (common/record.py) for files and --since/--until: what PowerMTA writes can be pasted.
    assert parse_when(text) == parse_time(text)


def test_a_time_that_is_neither_is_refused():
    with pytest.raises(click.BadParameter, match="neither"):
        parse_when("yesterday")


def test_undo_counts_list_their_counters_in_one_order_whatever_the_records_order():
    def counts(columns):
        made = UndoCounts()
        for statid, column in columns:
            made.campaigns[statid][column] -= 1
        return made.as_dict()["campaign_counters"]

    met = [(42, "bouncecount_hard"), (7, "unsubscribecount"), (42, "unsubscribecount"), (42, "bouncecount_soft")]
    one, other = counts(met), counts(met[::-1])
    assert [(s, list(c)) for s, c in one.items()] == [(s, list(c)) for s, c in other.items()] == [
        ("7", ["unsubscribecount"]), ("42", ["bouncecount_hard", "bouncecount_soft", "unsubscribecount"])]
