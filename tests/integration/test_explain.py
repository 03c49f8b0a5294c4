"""`pmtabounce explain ADDRESS` (issue 12): an address with a bounce, a record undone and a record held."""

from __future__ import annotations

from iem_seed import T0, Seed, bounce, complaint
from pmtabounce.common.guard import GuardSettings
from pmtabounce.common.policy import Policy
from pmtabounce.worker.apply import BatchApplier
from storm_world import json_of, pmtabounce


def apply(db, *records) -> list[str]:
    applier = BatchApplier(db.target, db.tables, Policy(), guard=GuardSettings())
    try:
        return [o.outcome for o in applier.apply(list(records)).outcomes]
    finally:
        applier.close()


def test_explain_shows_every_record_in_time_order_its_undo_its_hold_and_the_rows_now(iem_db):
    seed = Seed(iem_db)
    seed.lists(3, 4)
    seed.newsletter(42)
    ann = seed.subscriber("Ann@Gmail.example", 3)
    other = seed.subscriber("ann@gmail.example", 4, unsubscribed=T0 - 50)
    soft, hard, later = (bounce("soft", "ann@gmail.example", time=T0, line=2),
                         bounce("hard", "ann@gmail.example", statid=43, time=T0 + 10, line=3),
                         bounce("hard", "ann@gmail.example", statid=44, time=T0 + 20, line=4))
    assert apply(iem_db, soft, hard) == ["applied", "disabled"]
    undo = json_of(pmtabounce(iem_db, "undo", "--email", "ANN@gmail.example", "--outcome", "disabled", "--yes",
                              "--json"))
    assert undo["records"] == 1 and undo["subscribers_reenabled"] == 1
    pmtabounce(iem_db, "guard", "trip", "gmail.example")
    assert apply(iem_db, later) == ["held"]

    report = json_of(pmtabounce(iem_db, "explain", "ANN@GMAIL.EXAMPLE", "--json"))

    assert [(r["time_logged"], r["source_line"], r["category"], r["decision"], r["outcome"], r["subscriberid"],
             r["undone"], r["held"]) for r in report["records"]] == [
        (T0, 2, "quota-issues", "soft", "applied", ann, False, False),
        (T0 + 10, 3, "bad-mailbox", "hard", "disabled", ann, True, False),
        (T0 + 20, 4, "bad-mailbox", "hard", "held", None, False, True),
    ]
    assert report["records"][1]["undo_run"] == undo["run"] and "@" in report["records"][1]["undone_by"]
    assert report["records"][0]["dsn_diag"] == soft.dsn_diag and report["records"][0]["source_file"] == soft.source_file
    lists = [(r["listid"], r["subscriberid"], r["state"], [(b["statid"], b["type"]) for b in r["bounce_rows"]])
             for r in report["lists"]]
    assert lists == [(3, ann, "active", [(42, "soft")]),
                     (4, other, "unsubscribed since 2024-11-19T10:04:43Z", [])]
    assert report["guard"]["domain"] == "gmail.example" and report["guard"]["held"] == 1

    text = pmtabounce(iem_db, "explain", "ann@gmail.example").stdout
    assert f"undone by run {undo['run']}" in text and "held by the domain guard" in text
    assert "unsubscribed since" in text and "the domain guard holds gmail.example" in text


def test_explain_shows_a_complaints_report_and_the_rows_it_unsubscribed(iem_db):
    seed = Seed(iem_db)
    seed.lists(3, 5)
    seed.newsletter(42)
    on_3, on_5 = seed.subscriber("ann@example.com", 3), seed.subscriber("ann@example.com", 5)
    seed.unsubscribe_request(on_5, 5, T0 - 100, "10.1.2.3")
    assert apply(iem_db, complaint("ann@example.com", time=T0)) == ["unsubscribed"]

    report = json_of(pmtabounce(iem_db, "explain", "ANN@example.com", "--json"))

    [record] = report["records"]
    assert (record["record_type"], record["outcome"], record["decision"]) == ("f", "unsubscribed", "all")
    assert record["complaint"] == {
        "feedback_type": "abuse", "format": "arf", "user_agent": "Test-Feedback/1.0",
        "reporting_mta": "fbl.example.net",
        "unsubscribed": [
            {"subscriberid": on_3, "listid": 3, "time": "2024-11-19T10:05:33Z", "statid": 42, "area": "n",
             "campaign_counted": True, "kept_request_time": None, "kept_request_ip": ""},
            {"subscriberid": on_5, "listid": 5, "time": "2024-11-19T10:05:33Z", "statid": 0, "area": "f",
             "campaign_counted": False, "kept_request_time": "2024-11-19T10:03:53Z", "kept_request_ip": "10.1.2.3"},
        ]}
    text = pmtabounce(iem_db, "explain", "ann@example.com").stdout
    assert ("complaint: feedback type abuse, format arf, user agent Test-Feedback/1.0, "
            "reporting MTA fbl.example.net") in text
    assert f"unsubscribed subscriber {on_5} on list 5" in text
    assert "kept request 2024-11-19T10:03:53Z from 10.1.2.3" in text
