"""`pmtabounce undo` of complaints (issues 11 and 12): the rows a complaint unsubscribed and nobody changed since
are active again, the counters back, the unsubscribe rows as they were; a row changed since is left alone."""

from __future__ import annotations

import subprocess
import time

from iem_model import differences, state_of
from iem_seed import T0, Seed, bounce, complaint, iem_link, snapshot
from pmtabounce.common.complaint import ComplaintRecord
from pmtabounce.common.policy import Policy
from pmtabounce.worker.apply import BatchApplier
from storm_world import command, expected, json_of, load, pmtabounce

from pmtabounce.demo.world import World


def apply(db, *records) -> list[str]:
    applier = BatchApplier(db.target, db.tables, Policy())
    try:
        return [o.outcome for o in applier.apply(list(records)).outcomes]
    finally:
        applier.close()


def without(state: dict, subscriberid: int, listid: int) -> dict:
    """The snapshot without one subscriber's rows and its list's row (the row a test changed by hand)."""
    keep = {
        "subscribers": lambda row: row[0] != subscriberid,
        "unsubscribes": lambda row: row[0] != subscriberid,
        "lists": lambda row: row[0] != listid,
    }
    return {name: [row for row in rows if keep.get(name, lambda _r: True)(row)] for name, rows in state.items()}


def test_undo_of_complaints_gives_the_database_without_them_and_leaves_a_row_changed_since(iem_db):
    seed = Seed(iem_db)
    seed.lists(3, 5, 7, 9)
    seed.newsletter(42)
    seed.autoresponder(77)
    ann = {listid: seed.subscriber("ann@example.com", listid) for listid in (3, 5, 7)}
    bob = seed.subscriber("bob@example.com", 3)
    seed.unsubscribe_request(bob, 3, T0 - 100, "10.1.2.3")  # a pending request the complaint keeps
    carl = seed.subscriber("carl@example.com", 9)
    seed.subscriber("dave@example.com", 3)
    assert apply(iem_db, bounce("hard", "dave@example.com")) == ["disabled"]
    without_complaints = snapshot(iem_db, ledger=False)

    assert apply(iem_db,
                 complaint("ANN@example.com", time=T0 + 10),  # scope all: list 3 in the campaign, 5 and 7 outside
                 complaint("", statid=77, time=T0 + 20, link=iem_link(bob, listid=3, statid=77, area="A")),
                 complaint("carl@example.com", lists=(9,), statid=0, time=T0 + 30),
                 ) == ["unsubscribed"] * 3
    assert iem_db.query("SELECT unsubscribecount FROM {t.stats_newsletters} WHERE statid = 42") == [(1,)]
    # carl unsubscribed again since, by another way: undo must leave his row alone and say so.
    iem_db.query("UPDATE {t.subscribers} SET unsubscribed = %s WHERE subscriberid = %s", (T0 + 500, carl))
    carl_now = without(snapshot(iem_db, ledger=False), carl, 9)
    carl_rows = {name: [row for row in rows if row not in carl_now[name]]
                 for name, rows in snapshot(iem_db, ledger=False).items()}

    dry = json_of(pmtabounce(iem_db, "undo", "--outcome", "unsubscribed", "--dry-run", "--json"))
    done = json_of(pmtabounce(iem_db, "undo", "--outcome", "unsubscribed", "--yes", "--json"))

    for counts in (dry, done):
        assert (counts["records"], counts["subscribers_resubscribed"], counts["resubscribed_per_list"],
                counts["unsubscribe_rows_removed"], counts["unsubscribe_requests_restored"],
                counts["bounce_rows_removed"], counts["subscribers_reenabled"]) == (3, 4, {"3": 2, "5": 1, "7": 1},
                                                                                   4, 1, 0, 0)
        assert counts["campaign_counters"] == {"42": {"unsubscribecount": -1}, "77": {"unsubscribecount": -1}}
        assert [(s["email"], s["what"], s["why"]) for s in counts["skipped"]] == [
            ("carl@example.com", f"subscriber {carl} on list 9", "unsubscribed again since")]
    after = snapshot(iem_db, ledger=False)
    assert without(after, carl, 9) == without(without_complaints, carl, 9)
    assert {name: [row for row in rows if row not in without(after, carl, 9)[name]]
            for name, rows in after.items()} == carl_rows  # carl's rows as he was left
    assert iem_db.query("SELECT unsubscribeconfirmed FROM {t.subscribers} WHERE subscriberid IN (%s, %s) "
                        "ORDER BY subscriberid", (ann[3], bob)) == [("0",), ("0",)]

    again = json_of(pmtabounce(iem_db, "undo", "--outcome", "unsubscribed", "--yes", "--json"))
    assert again["records"] == 0 and snapshot(iem_db, ledger=False) == after
    # the same complaint met again is a duplicate: it does not unsubscribe again
    assert apply(iem_db, complaint("ANN@example.com", time=T0 + 10)) == ["duplicate"]


def test_undo_selects_complaints_by_feedback_type_and_never_by_bounce_category(iem_db):
    seed = Seed(iem_db)
    seed.lists(3)
    seed.newsletter(42)
    for name in ("ann", "bob", "carl"):
        seed.subscriber(f"{name}@example.com", 3)
    assert apply(iem_db, complaint("ann@example.com"), complaint("bob@example.com", feedback_type=""),
                 bounce("hard", "carl@example.com")) == ["unsubscribed", "unsubscribed", "disabled"]

    def matched(*filters: str) -> int:
        return json_of(pmtabounce(iem_db, "undo", *filters, "--dry-run", "--json"))["records"]

    assert matched("--feedback-type", "ABUSE") == 1 and matched("--feedback-type", "empty") == 1
    assert matched("--category", "bad-mailbox") == 1  # carl's bounce only
    assert matched("--domain", "example.com") == 3 and matched("--outcome", "unsubscribed") == 2


def test_undo_of_complaints_killed_mid_run_then_run_again_is_undo_once(iem_db):
    seed = Seed(iem_db)
    seed.lists(3, 5)
    seed.newsletter(42)
    people = [f"p{i}@example.com" for i in range(60)]
    for i, email in enumerate(people):
        seed.subscriber(email, 3)
        seed.subscriber(email, 5)
        if i % 3 == 0:
            seed.unsubscribe_request(seed.subscriber(email.replace("@", ".x@"), 3), 3, T0 - i, f"10.0.0.{i}")
    without_complaints = snapshot(iem_db, ledger=False)
    assert apply(iem_db, *[complaint(email, time=T0 + i) for i, email in enumerate(people)]) == [
        "unsubscribed"] * len(people)
    assert apply(iem_db, *[complaint(email.replace("@", ".x@"), time=T0) for email in people[::3]]) == [
        "unsubscribed"] * len(people[::3])

    def undone() -> int:
        return iem_db.query("SELECT COUNT(*) FROM {t.ledger} WHERE undo_run IS NOT NULL")[0][0]

    argv, env = command(iem_db, "undo", "--feedback-type", "abuse", "--yes", batch_size="2")
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while undone() < 20 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        child.kill()  # SIGKILL: mid-batch, no clean-up
        child.wait(timeout=30)
    assert 0 < undone() < len(people) + len(people[::3]), "the kill did not land mid-run"

    pmtabounce(iem_db, "undo", "--feedback-type", "abuse", "--yes")

    assert snapshot(iem_db, ledger=False) == without_complaints
    assert undone() == len(people) + len(people[::3])


def test_undo_of_a_generated_worlds_complaints_gives_the_models_database_without_them(iem_db, tmp_path):
    # independent: every address is met at most once, so leaving the complaints out changes no other record's effect
    world = World.generate(44, subscribers=1500, records=1500, files=3, independent=True)
    before, records = load(iem_db, world, tmp_path / "bounces")
    pmtabounce(iem_db, "process", str(tmp_path / "bounces"))
    complaints = {r.fingerprint for r in records if isinstance(r, ComplaintRecord)}
    applied = iem_db.query("SELECT COUNT(*) FROM {t.ledger} WHERE outcome = 'unsubscribed'")[0][0]
    assert applied > 20, "the world has too few complaints that unsubscribed someone"

    done = json_of(pmtabounce(iem_db, "undo", "--outcome", "unsubscribed", "--yes", "--json"))

    assert done["records"] == applied and done["skipped"] == []
    problems = differences(expected(before, records, complaints), state_of(iem_db), ledger=False)
    assert not problems, "\n".join(problems)
