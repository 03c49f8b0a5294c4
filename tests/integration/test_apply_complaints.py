"""Every step and branch of iem-complaints.md, applied by BatchApplier to a real MariaDB."""

from __future__ import annotations

import json

import pytest
from iem_seed import T0, Seed, bounce, complaint, iem_link, ledger_rows, snapshot
from pmtabounce.common.policy import Policy
from pmtabounce.worker.apply import BatchApplier

ALL, CAMPAIGN, ROW = Policy(), Policy(complaint_scope="campaign"), Policy(complaint_scope="row")


def apply(db, records, *, policy=ALL):
    """One batch; returns [(outcome, subscriberid, listid)]."""
    applier = BatchApplier(db.target, db.tables, policy, retry_max_wait=0.5, give_up_after=60)
    try:
        result = applier.apply(records)
        assert result.failed == []
        return [(o.outcome, o.subscriberid, o.listid) for o in result.outcomes]
    finally:
        applier.close()


def changes(before: dict, after: dict) -> dict:
    """Per IEM table: (rows gone, rows new)."""
    diff = {}
    for name in before:
        gone = sorted(set(before[name]) - set(after[name]))
        new = sorted(set(after[name]) - set(before[name]))
        if (gone or new) and name != "ledger":
            diff[name] = (gone, new)
    return diff


def row_state(db, subscriberid) -> tuple:
    return db.query("SELECT listid, confirmed, bounced, unsubscribed, unsubscribeconfirmed FROM {t.subscribers} "
                    "WHERE subscriberid = %s", (subscriberid,))[0]


def list_counts(db, listid) -> tuple:
    return db.query("SELECT subscribecount, unsubscribecount, bouncecount FROM {t.lists} WHERE listid = %s",
                    (listid,))[0]


def unsubscribe_rows(db) -> list[tuple]:
    """(subscriberid, listid, unsubscribetime, unsubscribeip, requesttime, requestip, statid, area)"""
    return db.query("SELECT subscriberid, listid, unsubscribetime, unsubscribeip, unsubscriberequesttime, "
                    "unsubscriberequestip, statid, unsubscribearea FROM {t.unsubscribes} "
                    "ORDER BY subscriberid, listid")


def campaign_unsubscribes(db, statid, table="stats_newsletters") -> int:
    return db.query(f"SELECT unsubscribecount FROM {{t.{table}}} WHERE statid = %s", (statid,))[0][0]


@pytest.fixture
def seed(iem_db):
    s = Seed(iem_db)
    s.lists(3, 5, 7, 8, 9)
    s.newsletter(42)
    s.autoresponder(77)
    return s


@pytest.fixture
def ann(seed):
    """ann@example.com on five lists: 3, 8 and 9 active, 5 unsubscribed, 7 bounced; bob on 3."""
    rows = {
        3: seed.subscriber("ann@example.com", 3),
        5: seed.subscriber("ann@example.com", 5, unsubscribed=T0 - 50),
        7: seed.subscriber("ann@example.com", 7, bounced=T0 - 60),
        8: seed.subscriber("ann@example.com", 8, confirmed="0"),  # unconfirmed is unsubscribed too
        9: seed.subscriber("ann@example.com", 9),
    }
    rows["bob"] = seed.subscriber("bob@example.com", 3)
    return rows


def test_scope_all_unsubscribes_every_active_row_the_campaigns_way_and_the_lists_way(iem_db, ann):
    before = snapshot(iem_db)
    record = complaint("ANN@example.com", lists=(3,), statid=42, time=T0 + 1)
    assert apply(iem_db, [record]) == [("unsubscribed", ann[3], 3)]
    assert set(changes(before, snapshot(iem_db))) == {"subscribers", "lists", "newsletters", "unsubscribes"}
    for listid in (3, 8, 9):
        assert row_state(iem_db, ann[listid])[2:] == (0, T0 + 1, "1")
    assert row_state(iem_db, ann[8])[1] == "0"  # confirmed untouched
    assert row_state(iem_db, ann[5])[2:] == (0, T0 - 50, "0")  # already unsubscribed: left alone
    assert row_state(iem_db, ann[7])[2:] == (T0 - 60, 0, "0")  # bounced: left alone
    assert row_state(iem_db, ann["bob"])[2:] == (0, 0, "0")
    for listid in (3, 8, 9):
        assert list_counts(iem_db, listid) == (99, 8, 0)
    assert list_counts(iem_db, 5) == list_counts(iem_db, 7) == (100, 7, 0)
    # In the campaign (list 3): statid 42, area 'n', counted once; elsewhere statid 0, area 'f'.
    assert unsubscribe_rows(iem_db) == [(ann[3], 3, T0 + 1, "", 0, "", 42, "n"),
                                        (ann[8], 8, T0 + 1, "", 0, "", 0, "f"),
                                        (ann[9], 9, T0 + 1, "", 0, "", 0, "f")]
    assert campaign_unsubscribes(iem_db, 42) == 1
    (entry,) = ledger_rows(iem_db)
    assert (entry["record_type"], entry["outcome"], entry["decision"], entry["feedback_type"],
            entry["feedback_format"], entry["user_agent"], entry["reporting_mta"]) == (
        "f", "unsubscribed", "all", "abuse", "arf", "Test-Feedback/1.0", "fbl.example.net")
    assert json.loads(entry["effects"]) == {"unsubscribed": [
        [ann[3], 3, T0 + 1, 42, "n", 0, "", True], [ann[8], 8, T0 + 1, 0, "f", 0, "", False],
        [ann[9], 9, T0 + 1, 0, "f", 0, "", False]]}


def test_scope_campaign_unsubscribes_the_active_rows_on_the_records_lists(iem_db, ann):
    assert apply(iem_db, [complaint(lists=(3, 7, 8), statid=42)], policy=CAMPAIGN) == [("unsubscribed", ann[3], 3)]
    assert [(r[0], r[6], r[7]) for r in unsubscribe_rows(iem_db)] == [(ann[3], 42, "n"), (ann[8], 42, "n")]
    assert campaign_unsubscribes(iem_db, 42) == 2  # one per unsubscribed row, as IEM's multi-list unsubscribe
    assert row_state(iem_db, ann[9])[3] == 0


def test_scope_row_without_a_link_takes_the_lowest_active_list_id(iem_db, ann):
    assert apply(iem_db, [complaint(lists=(7, 8, 9), statid=42)], policy=ROW) == [("unsubscribed", ann[8], 8)]
    assert [r[0] for r in unsubscribe_rows(iem_db)] == [ann[8]]


def test_scope_row_with_a_link_takes_the_links_row(iem_db, seed, ann):
    link = iem_link(ann[9], confirmcode=None, listid=9, statid=42)
    assert apply(iem_db, [complaint(lists=(3, 9), statid=42, link=link)], policy=ROW) == [("unsubscribed", ann[9], 9)]
    assert unsubscribe_rows(iem_db) == [(ann[9], 9, T0, "", 0, "", 42, "n")]


def test_scope_row_never_takes_another_addresss_row_from_a_link(iem_db, ann):
    link = iem_link(ann["bob"], listid=3)
    before = snapshot(iem_db)
    assert apply(iem_db, [complaint("ann@example.com", link=link)], policy=ROW) == [("not_found", None, None)]
    assert changes(before, snapshot(iem_db)) == {}


def code_of(db, subscriberid) -> str:
    return db.query("SELECT confirmcode FROM {t.subscribers} WHERE subscriberid = %s", (subscriberid,))[0][0]


@pytest.mark.parametrize("with_code", [True, False])
def test_a_redacted_rcpt_is_identified_by_the_links_subscriberid(iem_db, ann, with_code):
    code = code_of(iem_db, ann[9]) if with_code else None
    record = complaint("", lists=(9,), statid=42, link=iem_link(ann[9], code, 9, 42))
    assert apply(iem_db, [record]) == [("unsubscribed", ann[3], 3)]  # scope all: every active row of ann
    assert [r[0] for r in unsubscribe_rows(iem_db)] == [ann[3], ann[8], ann[9]]
    assert [r[6] for r in unsubscribe_rows(iem_db)] == [0, 0, 42]  # in the campaign only on list 9


@pytest.mark.parametrize(
    ("link", "outcome"),
    [
        ("wrong code", "not_found"),
        ("the code and more", "not_found"),
        ("an empty code", "not_found"),
        ("no such subscriber", "not_found"),
        ("", "unroutable"),
        ("<mailto:unsub@iem.example.com>", "unroutable"),
    ],
)
def test_a_redacted_rcpt_with_a_wrong_link_or_none_writes_nothing(iem_db, ann, link, outcome):
    header = {"wrong code": iem_link(ann[3], "0" * 32, 3, 42), "no such subscriber": iem_link(99999, None, 3, 42),
              "the code and more": iem_link(ann[3], code_of(iem_db, ann[3]) + "0", 3, 42),
              "an empty code": iem_link(ann[3], "", 3, 42)}
    before = snapshot(iem_db)
    assert apply(iem_db, [complaint("", link=header.get(link, link))]) == [(outcome, None, None)]
    assert changes(before, snapshot(iem_db)) == {}
    assert ledger_rows(iem_db)[0]["outcome"] == outcome


def test_an_empty_c_identifies_a_row_whose_confirmcode_is_empty(iem_db, seed):
    sid = seed.subscriber("nocode@example.com", 3, confirmcode="")
    record = complaint("", lists=(3,), link=iem_link(sid, "", 3))
    assert apply(iem_db, [record]) == [("unsubscribed", sid, 3)]


def test_an_address_with_no_active_row_is_not_found(iem_db, seed):
    seed.subscriber("gone@example.com", 3, unsubscribed=T0 - 5)
    seed.subscriber("gone@example.com", 5, bounced=T0 - 5)
    before = snapshot(iem_db)
    assert apply(iem_db, [complaint("gone@example.com"), complaint("nobody@example.com")]) == [
        ("not_found", None, None)] * 2
    assert changes(before, snapshot(iem_db)) == {}


@pytest.mark.parametrize(
    ("statid", "link_area", "expected_row", "newsletter", "autoresponder"),
    [
        (42, "N", (42, "n"), 1, 0),
        (77, "A", (77, "a"), 0, 1),
        (77, "", (77, "a"), 0, 1),  # no link: autoresponders first, then newsletters
        (0, "", (0, "f"), 0, 0),  # no campaign header
        (999, "", (0, "f"), 0, 0),  # a deleted campaign
    ],
)
def test_the_campaign_autoresponder_newsletter_or_none(iem_db, seed, statid, link_area, expected_row, newsletter,
                                                       autoresponder):
    sid = seed.subscriber("ann@example.com", 3)
    link = iem_link(sid, None, 3, statid, link_area) if link_area else ""
    assert apply(iem_db, [complaint(statid=statid, link=link)]) == [("unsubscribed", sid, 3)]
    assert [r[6:] for r in unsubscribe_rows(iem_db)] == [expected_row]
    assert campaign_unsubscribes(iem_db, 42) == newsletter
    assert campaign_unsubscribes(iem_db, 77, "stats_autoresponders") == autoresponder


def test_a_row_outside_the_campaigns_lists_is_written_with_statid_0(iem_db, ann):
    apply(iem_db, [complaint(lists=(9,), statid=42)])
    assert [(r[1], r[6], r[7]) for r in unsubscribe_rows(iem_db)] == [(3, 0, "f"), (8, 0, "f"), (9, 42, "n")]
    assert campaign_unsubscribes(iem_db, 42) == 1


@pytest.mark.parametrize("feedback_type", ["not-spam", "fraud", "virus", "other", "auth-failure", "something"])
def test_a_complaint_type_that_does_not_act_is_recorded_and_ignored(iem_db, ann, feedback_type):
    before = snapshot(iem_db)
    assert apply(iem_db, [complaint(feedback_type=feedback_type)]) == [("ignored", None, None)]
    assert changes(before, snapshot(iem_db)) == {}
    (entry,) = ledger_rows(iem_db)
    assert (entry["outcome"], entry["decision"], entry["feedback_type"], entry["effects"]) == (
        "ignored", "ignore", feedback_type, None)


def test_jmrp_with_no_feedback_type_acts_and_the_policy_can_say_otherwise(iem_db, ann):
    assert apply(iem_db, [complaint(feedback_type="")], policy=Policy(complaint_types={"abuse"})) == [
        ("ignored", None, None)]
    assert apply(iem_db, [complaint(feedback_type="", time=T0 + 1)]) == [("unsubscribed", ann[3], 3)]


def test_an_earlier_pending_request_keeps_its_time_and_ip_and_its_rows_give_way(iem_db, seed, ann):
    seed.unsubscribe_request(ann[3], 3, T0 - 900, "192.0.2.7")
    seed.unsubscribe_request(ann[3], 3, T0 - 800, "192.0.2.8")  # a second request: only the first is kept
    seed.unsubscribe_request(ann[3], 5, T0 - 700, "192.0.2.9")  # another list: not this row's
    apply(iem_db, [complaint(lists=(3,), statid=42)], policy=ROW)
    assert unsubscribe_rows(iem_db) == [(ann[3], 3, T0, "", T0 - 900, "192.0.2.7", 42, "n"),
                                        (ann[3], 5, 0, None, T0 - 700, "192.0.2.9", 0, None)]
    effects = json.loads(ledger_rows(iem_db)[0]["effects"])
    assert effects == {"unsubscribed": [[ann[3], 3, T0, 42, "n", T0 - 900, "192.0.2.7", True]]}


def test_the_same_complaint_twice_counts_once(iem_db, ann):
    record = complaint(statid=42)
    assert apply(iem_db, [record, complaint(statid=42, line=7)]) == [("unsubscribed", ann[3], 3),
                                                                     ("duplicate", None, None)]
    after = snapshot(iem_db)
    assert apply(iem_db, [complaint(statid=42, file="copied-back.csv")]) == [("duplicate", None, None)]
    assert snapshot(iem_db) == after | {"ledger": after["ledger"]}
    (entry,) = ledger_rows(iem_db)
    assert entry["seen_count"] == 3
    assert list_counts(iem_db, 3) == (99, 8, 0) and campaign_unsubscribes(iem_db, 42) == 1


def test_a_bounce_then_a_complaint_for_one_row_in_one_batch(iem_db, seed):
    sid = seed.subscriber("ann@example.com", 3)
    other = seed.subscriber("ann@example.com", 8)
    assert apply(iem_db, [bounce("hard", lists=(3,), time=T0), complaint(lists=(3,), time=T0 + 1)]) == [
        ("disabled", sid, 3), ("unsubscribed", other, 8)]  # the bounced row is no longer active
    assert row_state(iem_db, sid)[2:] == (T0, 0, "0")
    assert row_state(iem_db, other)[2:] == (0, T0 + 1, "1")
    assert list_counts(iem_db, 3) == (99, 7, 1) and list_counts(iem_db, 8) == (99, 8, 0)


def test_a_complaint_then_a_bounce_for_one_row_in_one_batch(iem_db, seed):
    sid = seed.subscriber("ann@example.com", 3)
    assert apply(iem_db, [complaint(lists=(3,), time=T0), bounce("hard", lists=(3,), time=T0 + 1)]) == [
        ("unsubscribed", sid, 3), ("not_found", None, None)]  # an unsubscribed row is not bounced
    assert row_state(iem_db, sid)[2:] == (0, T0, "1")
    assert list_counts(iem_db, 3) == (99, 8, 0)
    assert iem_db.query("SELECT COUNT(*) FROM {t.bounces}") == [(0,)]


def test_a_bounces_effects_are_in_the_ledger(iem_db, seed):
    sid = seed.subscriber("ann@example.com", 3)
    other = seed.subscriber("bob@example.com", 3)
    apply(iem_db, [bounce("hard", time=T0 + 2), bounce("policy-related", "bob@example.com"),
                   bounce("soft", "bob@example.com", statid=0, time=T0 + 3), bounce("hard", "nobody@example.com")])
    assert [json.loads(e["effects"]) if e["effects"] else None for e in ledger_rows(iem_db)] == [
        {"bounce_row": [sid, 42, 3, T0 + 2, "hard", "bad_mailbox"], "campaign": ["newsletters", 42, "bouncecount_hard"],
         "disabled": [sid, 3, T0 + 2]},
        {"campaign": ["newsletters", 42, "bouncecount_unknown"]},
        {"bounce_row": [other, 0, 3, T0 + 3, "soft", "quota_issues"]},
        None,
    ]


def test_the_metrics_count_complaints_by_outcome_apart_from_bounces(iem_db, ann):
    from pmtabounce.common import metrics

    def count(outcome, record):
        return metrics.RECORDS_PROCESSED.labels(outcome, record)._value.get()

    before = {key: count(*key) for key in [("unsubscribed", "complaint"), ("ignored", "complaint"),
                                           ("not_found", "complaint"), ("not_found", "bounce")]}
    apply(iem_db, [complaint(), complaint(feedback_type="not-spam"), complaint("nobody@example.com"),
                   bounce("hard", "nobody@example.com")])
    assert {key: count(*key) - n for key, n in before.items()} == {
        ("unsubscribed", "complaint"): 1, ("ignored", "complaint"): 1, ("not_found", "complaint"): 1,
        ("not_found", "bounce"): 1}
