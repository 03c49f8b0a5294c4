"""Every step and branch of the spec's five steps, applied by BatchApplier to a real MariaDB."""

from __future__ import annotations

import random

import pytest
from iem_seed import T0, Seed, bounce, ledger_rows, snapshot
from pmtabounce.common.config import parse_mysql_url
from pmtabounce.common.errors import FatalError
from pmtabounce.common.policy import Policy
from pmtabounce.store.db import Tables
from pmtabounce.worker.apply import BatchApplier

DEFAULT = Policy()


def apply(db, records, *, tables=None, policy=DEFAULT, batch_size=500):
    """Apply in batches of `batch_size`; returns [(outcome, subscriberid, listid)]."""
    applier = BatchApplier(db.target, tables or db.tables, policy, retry_max_wait=0.5, give_up_after=60)
    try:
        outcomes = []
        for start in range(0, len(records), batch_size):
            result = applier.apply(records[start:start + batch_size])
            assert result.failed == []
            outcomes += [(o.outcome, o.subscriberid, o.listid) for o in result.outcomes]
        return outcomes
    finally:
        applier.close()


def changes(before: dict, after: dict) -> dict:
    """Per table: (rows gone, rows new) of IEM tables only."""
    diff = {}
    for name in before:
        if name == "ledger":
            continue
        gone = sorted(set(before[name]) - set(after[name]))
        new = sorted(set(after[name]) - set(before[name]))
        if gone or new:
            diff[name] = (gone, new)
    return diff


def subscriber(db, subscriberid) -> tuple:
    return db.query("SELECT listid, confirmed, bounced, unsubscribed FROM {t.subscribers} WHERE subscriberid = %s",
                    (subscriberid,))[0]


def list_counts(db, listid) -> tuple:
    return db.query("SELECT subscribecount, unsubscribecount, bouncecount FROM {t.lists} WHERE listid = %s",
                    (listid,))[0]


def stats(db, statid, table="stats_newsletters") -> tuple:
    return db.query(f"SELECT bouncecount_soft, bouncecount_hard, bouncecount_unknown FROM {{t.{table}}} "
                    "WHERE statid = %s", (statid,))[0]


def bounce_rows(db, subscriberid=None) -> list[tuple]:
    where, params = ("WHERE subscriberid = %s", (subscriberid,)) if subscriberid else ("", ())
    return db.query("SELECT subscriberid, statid, listid, bouncetime, bouncetype, bouncerule, bouncemessage "
                    f"FROM {{t.bounces}} {where} ORDER BY bounceid", params)


@pytest.fixture
def seed(iem_db):
    s = Seed(iem_db)
    s.lists(3, 5, 7, 8, 9)
    s.newsletter(42)
    s.newsletter(43)
    s.autoresponder(77)
    return s


def test_lowest_active_list_id_wins_and_nothing_else_changes(iem_db, seed):
    on3 = seed.subscriber("ann@example.com", 3, unsubscribed=T0 - 99)
    on5 = seed.subscriber("ann@example.com", 5, bounced=T0 - 98)
    on7 = seed.subscriber("ann@example.com", 7, confirmed="0")  # unconfirmed is still bounced
    on8 = seed.subscriber("ann@example.com", 8)
    on9 = seed.subscriber("ann@example.com", 9)  # not named by the record
    other = seed.subscriber("bob@example.com", 7)
    before = snapshot(iem_db)
    assert apply(iem_db, [bounce("hard", "ann@example.com", (8, 3, 5, 7), time=T0 + 1)]) == [("disabled", on7, 7)]
    diff = changes(before, snapshot(iem_db))
    assert set(diff) == {"subscribers", "lists", "bounces", "newsletters"}
    assert [row[0] for row in diff["subscribers"][1]] == [on7]
    assert subscriber(iem_db, on7) == (7, "0", T0 + 1, 0)
    for untouched, state in ((on3, (3, "1", 0, T0 - 99)), (on5, (5, "1", T0 - 98, 0)), (on8, (8, "1", 0, 0)),
                             (on9, (9, "1", 0, 0)), (other, (7, "1", 0, 0))):
        assert subscriber(iem_db, untouched) == state
    assert [row[0] for row in diff["lists"][1]] == [7]
    assert list_counts(iem_db, 7) == (99, 7, 1)
    assert list_counts(iem_db, 3) == list_counts(iem_db, 8) == (100, 7, 0)


def test_an_unsubscribed_or_already_disabled_row_is_not_found_and_nothing_is_written(iem_db, seed):
    seed.subscriber("ann@example.com", 3, unsubscribed=T0 - 5)
    seed.subscriber("bob@example.com", 3, bounced=T0 - 5)
    before = snapshot(iem_db)
    assert apply(iem_db, [bounce("hard", "ann@example.com"), bounce("ignore", "bob@example.com")]) == [
        ("not_found", None, None), ("not_found", None, None)]
    assert changes(before, snapshot(iem_db)) == {}


def test_the_address_matches_case_insensitively(iem_db, seed):
    sid = seed.subscriber("pieter.jansen@example.nl", 3)
    assert apply(iem_db, [bounce("hard", " Pieter.Jansen@Example.NL".strip())]) == [("disabled", sid, 3)]


def test_already_bounced_for_this_campaign_skips_even_statistics(iem_db, seed):
    kinds = ["hard", "soft", "ignore"]
    sids = [seed.subscriber(f"{kind}@example.com", 3) for kind in kinds]
    for sid in sids:
        seed.bounce_row(sid, 42, 3)
    before = snapshot(iem_db)
    assert apply(iem_db, [bounce(kind, f"{kind}@example.com", statid=42) for kind in kinds]) == [
        ("already_bounced", sid, 3) for sid in sids]
    assert changes(before, snapshot(iem_db)) == {}


def test_a_bounce_for_the_campaign_on_another_list_is_not_already_bounced(iem_db, seed):
    sid = seed.subscriber("ann@example.com", 3)
    seed.bounce_row(sid, 42, 7)
    seed.bounce_row(sid, 43, 3)
    assert apply(iem_db, [bounce("soft", statid=42)]) == [("applied", sid, 3)]
    assert stats(iem_db, 42) == (11, 20, 30)


# category, then (soft, hard, unknown) of a newsletter (from 10, 20, 30) and an autoresponder (from 1, 2, 3)
STATS_CASES = [
    ("bad-mailbox", (10, 21, 30), (1, 3, 3)), ("quota-issues", (11, 20, 30), (2, 2, 3)),
    ("policy-related", (10, 20, 31), (1, 2, 4)), ("some-new-category", (10, 20, 31), (1, 2, 4)),
    ("", (10, 20, 31), (1, 2, 4)),
]


def test_campaign_statistics_by_decision_newsletter_and_autoresponder(iem_db, seed):
    for n, (category, newsletter, autoresponder) in enumerate(STATS_CASES):
        seed.newsletter(1000 + n)
        seed.autoresponder(2000 + n)
        seed.subscriber(f"n{n}@example.com", 3)
        seed.subscriber(f"a{n}@example.com", 3)
        apply(iem_db, [bounce(category, f"n{n}@example.com", statid=1000 + n),
                       bounce(category, f"a{n}@example.com", statid=2000 + n)])
        assert stats(iem_db, 1000 + n) == newsletter, category
        assert stats(iem_db, 2000 + n, "stats_autoresponders") == autoresponder, category
    assert stats(iem_db, 42) == stats(iem_db, 43) == (10, 20, 30)
    assert stats(iem_db, 77, "stats_autoresponders") == (1, 2, 3)


def test_no_campaign_writes_the_bounce_row_but_no_statistics(iem_db, seed):
    """statid 0 (no header) or a deleted campaign's statid."""
    ann, bob = seed.subscriber("ann@example.com", 3), seed.subscriber("bob@example.com", 3)
    before = snapshot(iem_db)
    assert apply(iem_db, [bounce("soft", "ann@example.com", statid=0, time=T0 + 7),
                          bounce("soft", "bob@example.com", statid=999, time=T0 + 8)]) == [
        ("applied", ann, 3), ("applied", bob, 3)]
    assert set(changes(before, snapshot(iem_db))) == {"bounces"}
    assert bounce_rows(iem_db) == [(ann, 0, 3, T0 + 7, "soft", "quota_issues", ""),
                                   (bob, 999, 3, T0 + 8, "soft", "quota_issues", "")]


ROW_CASES = [("bad-mailbox", "hard", "bad_mailbox"), ("inactive-mailbox", "hard", "inactive_mailbox"),
             ("bad-domain", "hard", "bad_domain"), ("quota-issues", "soft", "quota_issues"),
             ("no-answer-from-host", "soft", "no_answer_from_host"), ("relaying-issues", "soft", "relaying_issues"),
             ("routing-errors", "soft", "routing_errors"), ("Bad-Mailbox", "hard", "bad_mailbox")]


def test_the_bounce_row_of_every_hard_and_soft_category(iem_db, seed):
    sids = [seed.subscriber(f"s{n}@example.com", 3) for n in range(len(ROW_CASES))]
    apply(iem_db, [bounce(category, f"s{n}@example.com", time=T0 + n)
                   for n, (category, _, _) in enumerate(ROW_CASES)])
    expected = [(sid, 42, 3, T0 + n, bouncetype, rule, "")
                for n, (sid, (_, bouncetype, rule)) in enumerate(zip(sids, ROW_CASES, strict=True))]
    assert bounce_rows(iem_db) == expected  # IEM 6.x keeps no bouncemessage: the diagnostic is in the ledger


def test_ignore_writes_no_bounce_row_and_never_disables(iem_db, seed):
    sid = seed.subscriber("ann@example.com", 3)
    for statid in range(100, 106):
        seed.bounce_row(sid, statid, 3, "hard")
    before = snapshot(iem_db)
    assert apply(iem_db, [bounce("ignore")]) == [("applied", sid, 3)]
    assert set(changes(before, snapshot(iem_db))) == {"newsletters"}


def test_hard_disables_at_once(iem_db, seed):
    sid = seed.subscriber("ann@example.com", 3)
    assert apply(iem_db, [bounce("hard", time=T0 + 3)]) == [("disabled", sid, 3)]
    assert subscriber(iem_db, sid) == (3, "1", T0 + 3, 0)
    assert list_counts(iem_db, 3) == (99, 7, 1)


def test_the_fifth_soft_row_disables_counting_rows_of_any_type_statid_and_list(iem_db, seed):
    sid = seed.subscriber("ann@example.com", 3)
    seed.bounce_row(sid, 1, 9, "hard")  # history from another list, another campaign, another type
    seed.bounce_row(sid, 0, 3, "soft")
    seed.bounce_row(sid, 2, 3, "soft", bouncetime=T0 - 10 * 365 * 86400)  # no time window
    assert apply(iem_db, [bounce("soft", statid=43)]) == [("applied", sid, 3)]  # the 4th row
    assert subscriber(iem_db, sid)[2] == 0 and list_counts(iem_db, 3) == (100, 7, 0)
    assert apply(iem_db, [bounce("soft", statid=42, time=T0 + 9)]) == [("disabled", sid, 3)]  # the 5th
    assert subscriber(iem_db, sid)[2] == T0 + 9 and list_counts(iem_db, 3) == (99, 7, 1)
    assert len(bounce_rows(iem_db, sid)) == 5


def test_the_soft_threshold_is_the_operators(iem_db, seed):
    sid = seed.subscriber("ann@example.com", 3)
    policy = Policy(soft_threshold=2)
    assert apply(iem_db, [bounce("soft", statid=42)], policy=policy) == [("applied", sid, 3)]
    assert apply(iem_db, [bounce("soft", statid=43)], policy=policy) == [("disabled", sid, 3)]


def test_an_operators_categories(iem_db, seed):
    sid = seed.subscriber("ann@example.com", 3)
    policy = Policy(hard=frozenset({"hardbnc"}), soft=frozenset())
    assert apply(iem_db, [bounce("bad-mailbox", statid=42)], policy=policy) == [("applied", sid, 3)]
    assert bounce_rows(iem_db) == [] and stats(iem_db, 42) == (10, 20, 31)
    assert apply(iem_db, [bounce("hardbnc", statid=43)], policy=policy) == [("disabled", sid, 3)]
    assert bounce_rows(iem_db)[0][4:6] == ("hard", "hardbnc")


def test_unroutable_and_not_found_write_only_the_ledger(iem_db, seed):
    seed.subscriber("ann@example.com", 3)
    before = snapshot(iem_db)
    assert apply(iem_db, [bounce("hard", lists=()), bounce("hard", "nobody@example.com")]) == [
        ("unroutable", None, None), ("not_found", None, None)]
    assert changes(before, snapshot(iem_db)) == {}
    assert [r["outcome"] for r in ledger_rows(iem_db)] == ["unroutable", "not_found"]


def test_the_same_record_applied_twice_changes_nothing_the_second_time(iem_db, seed):
    sid = seed.subscriber("ann@example.com", 3)
    seed.subscriber("ann@example.com", 7)
    record = bounce("soft", lists=(3, 7))
    assert apply(iem_db, [record]) == [("applied", sid, 3)]
    after_first = snapshot(iem_db)
    again = bounce("soft", lists=(3, 7), file="bounces-copied-back.csv", line=99)  # another file, same content
    assert apply(iem_db, [record]) == [("duplicate", None, None)]
    assert apply(iem_db, [again, record]) == [("duplicate", None, None), ("duplicate", None, None)]
    assert snapshot(iem_db) == after_first
    [row] = ledger_rows(iem_db)
    assert row["seen_count"] == 4
    assert (row["source_file"], row["source_line"]) == ("bounces-test.csv", 2)  # where it was first met


def test_an_ignored_record_applied_twice_counts_once(iem_db, seed):
    """The original counted `ignore` bounces again on every repeat."""
    seed.subscriber("ann@example.com", 3)
    record = bounce("ignore")
    apply(iem_db, [record, record])
    apply(iem_db, [record])
    assert stats(iem_db, 42) == (10, 20, 31)


def test_the_ledger_keeps_the_evidence(iem_db, seed):
    sid = seed.subscriber("ann@example.com", 7)
    record = bounce("quota-issues", "Ann@Example.com", (7, 9), 43, T0 + 5, file="bounces-2024-11-19-1000.csv",
                    line=17, diag='smtp;552 5.2.2 Mailbox full, "quota exceeded"\nsecond line')
    apply(iem_db, [record, bounce("bad-mailbox", "nobody@example.com", (3,), 0, T0 + 6, line=18)])
    first, second = ledger_rows(iem_db)
    assert {k: first[k] for k in ("fingerprint", "source_file", "source_line", "record_type", "time_logged", "email",
                                  "list_ids", "statid", "category", "dsn_status", "dsn_diag", "decision", "outcome",
                                  "subscriberid", "listid", "seen_count")} == {
        "fingerprint": record.fingerprint, "source_file": "bounces-2024-11-19-1000.csv", "source_line": 17,
        "record_type": "b", "time_logged": T0 + 5, "email": "Ann@Example.com", "list_ids": "7,9", "statid": 43,
        "category": "quota-issues", "dsn_status": "5.0.0 (test)",
        "dsn_diag": 'smtp;552 5.2.2 Mailbox full, "quota exceeded"\nsecond line', "decision": "soft",
        "outcome": "applied", "subscriberid": sid, "listid": 7, "seen_count": 1}
    assert first["applied_at"] is not None
    assert (second["outcome"], second["decision"], second["subscriberid"], second["listid"]) == (
        "not_found", "hard", None, None)


def test_an_unknown_category_is_kept_raw_in_the_ledger(iem_db, seed):
    seed.subscriber("ann@example.com", 3)
    apply(iem_db, [bounce("Some-New-Category")])
    [row] = ledger_rows(iem_db)
    assert (row["category"], row["decision"], row["outcome"]) == ("Some-New-Category", "ignore", "applied")


def test_records_of_one_subscriber_in_one_batch_match_one_by_one(iem_db):
    """Batch size 500 and batch size 1 over the same records give the same database, in two prefixes."""
    rng = random.Random(7)
    one_by_one = Seed(iem_db, Tables("single_")).create_tables()
    batched = Seed(iem_db)
    emails = ["ann@example.com", "bob@example.com", "cy@example.com"]
    for s in (batched, one_by_one):
        s.lists(1, 2, 3, 4)
        for statid in (41, 42, 43):
            s.newsletter(statid)
        s.autoresponder(77)
        for number, (email, listid) in enumerate((e, li) for e in emails for li in (1, 2, 3)):
            s.subscriber(email, listid, subscriberid=number + 1)
        s.bounce_row(1, 41, 1, "hard")
        s.bounce_row(4, 0, 1, "soft")
    kinds = ["hard", "soft", "soft", "soft", "soft", "ignore", "message-expired"]
    records = [bounce(rng.choice(kinds), rng.choice(emails), rng.sample([1, 2, 3, 4], rng.randint(1, 3)),
                      rng.choice([0, 41, 42, 43, 77, 99]), T0 + rng.randint(0, 20), line=n) for n in range(120)]
    records += [records[n] for n in rng.sample(range(120), 10)]
    batch_outcomes = apply(iem_db, records)
    single_outcomes = apply(iem_db, records, tables=one_by_one.t, batch_size=1)
    assert batch_outcomes == single_outcomes
    assert {o for o, _, _ in batch_outcomes} >= {"applied", "disabled", "already_bounced", "not_found", "duplicate"}
    assert snapshot(iem_db) == snapshot(iem_db, one_by_one.t)


def test_a_non_default_prefix_touches_only_its_own_tables(iem_db):
    other = Seed(iem_db, Tables("iem2_")).create_tables()
    default = Seed(iem_db)
    for s in (other, default):
        s.lists(3)
        s.newsletter(42)
        s.subscriber("ann@example.com", 3)
    before = snapshot(iem_db)
    assert apply(iem_db, [bounce("hard")], tables=other.t) == [("disabled", 1, 3)]
    assert snapshot(iem_db) == before
    assert snapshot(iem_db, other.t)["subscribers"][0][12] == T0


def test_a_missing_table_is_fatal_and_names_the_prefix(iem_db):
    with pytest.raises(FatalError, match="PMTABOUNCE_TABLE_PREFIX"):
        apply(iem_db, [bounce("hard")], tables=Tables("missing_"))


@pytest.mark.parametrize("url", ["mysql://nobody_pmtt:wrong@127.0.0.1:3306/{db}", "mysql://root@127.0.0.1:3306/nodb_pmtt"])
def test_a_database_that_refuses_us_is_fatal_never_a_bad_record(iem_db, url):
    """Access denied or an unknown database is the settings' fault: no record may be rejected for it."""
    applier = BatchApplier(parse_mysql_url(url.format(db=iem_db.name)), iem_db.tables, Policy(), give_up_after=10)
    with pytest.raises(FatalError, match="PMTABOUNCE_MYSQL_URL"):
        applier.apply([bounce("hard"), bounce("soft")])


def test_an_interrupt_mid_batch_rolls_back_and_stays_an_interrupt(iem_db, seed):
    """Ctrl-C or a shutdown signal during a batch must not turn into another error, nor commit half."""

    class Interrupted(BatchApplier):
        def _write_shared_counters(self, cursor, plan):
            super()._write_shared_counters(cursor, plan)
            raise KeyboardInterrupt

    seed.subscriber("ann@example.com", 3)
    before = snapshot(iem_db)
    applier = Interrupted(iem_db.target, iem_db.tables, Policy())
    with pytest.raises(KeyboardInterrupt):
        applier.apply([bounce("hard")])
    applier.close()
    assert snapshot(iem_db) == before
