"""Two OS processes applying bounces for the same subscribers at the same moment: no lost update."""

from __future__ import annotations

import multiprocessing

from iem_seed import T0, Seed, bounce, ledger_rows
from pmtabounce.common.policy import Policy
from pmtabounce.worker.apply import BatchApplier

ROUNDS = 25
CAMPAIGNS = (41, 42, 43, 44, 45)


def apply_rounds(target, tables, rounds: list[list], barrier, one_batch_every: int) -> None:
    """In a child process: for each round, wait for the other process, then apply this side's records."""
    applier = BatchApplier(target, tables, Policy(), retry_max_wait=0.2, give_up_after=120)
    try:
        for number, records in enumerate(rounds):
            barrier.wait(timeout=120)
            batches = [records] if number % one_batch_every == 0 else [[r] for r in records]
            for batch in batches:
                result = applier.apply(batch)
                assert not result.failed, result.failed
    finally:
        applier.close()


def run_side_by_side(db, left: list[list], right: list[list]) -> None:
    """Two forked processes, one per side, in lockstep round by round; both must exit cleanly."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    processes = [context.Process(target=apply_rounds, args=(db.target, db.tables, side, barrier, every))
                 for side, every in ((left, 2), (right, 3))]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join(timeout=300)
            assert process.exitcode == 0
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()


def seed_rounds(db) -> dict[int, tuple[int, int]]:
    """One address per round on lists 1 and 2; returns round -> (row on list 1, row on list 2)."""
    seed = Seed(db)
    seed.lists(1, 2, subscribecount=1000)
    for statid in CAMPAIGNS:
        seed.newsletter(statid)
    return {n: (seed.subscriber(f"r{n}@example.com", 1), seed.subscriber(f"r{n}@example.com", 2))
            for n in range(ROUNDS)}


def test_five_soft_bounces_split_across_two_processes_disable_exactly_once(iem_db):
    rows = seed_rounds(iem_db)
    rounds = [[bounce("soft", f"r{n}@example.com", (1, 2), statid, T0 + statid) for statid in CAMPAIGNS]
              for n in range(ROUNDS)]
    run_side_by_side(iem_db, [r[0::2] for r in rounds], [r[1::2] for r in rounds])

    bounced = dict(iem_db.query("SELECT subscriberid, bounced FROM {t.subscribers}"))
    per_subscriber = dict(iem_db.query("SELECT subscriberid, COUNT(*) FROM {t.bounces} GROUP BY subscriberid"))
    for first, second in rows.values():
        assert per_subscriber[first] == 5  # one row per campaign, none lost, none doubled
        assert bounced[first] in {T0 + s for s in CAMPAIGNS}
        assert second not in per_subscriber and bounced[second] == 0  # the address's other list: untouched
    assert iem_db.query("SELECT listid, subscribecount, bouncecount FROM {t.lists} ORDER BY listid") == [
        (1, 1000 - ROUNDS, ROUNDS), (2, 1000, 0)]
    assert iem_db.query("SELECT DISTINCT bouncecount_soft FROM {t.stats_newsletters}") == [(10 + ROUNDS,)]
    outcomes = [row["outcome"] for row in ledger_rows(iem_db)]
    assert (outcomes.count("disabled"), outcomes.count("applied"), len(outcomes)) == (ROUNDS, 4 * ROUNDS, 5 * ROUNDS)


def test_the_same_records_applied_by_two_processes_at_once_count_once(iem_db):
    rows = seed_rounds(iem_db)
    rounds = [[bounce("soft", f"r{n}@example.com", (1, 2), 41), bounce("ignore", f"r{n}@example.com", (1, 2), 42),
               bounce("hard", f"r{n}@example.com", (1, 2), 43)] for n in range(ROUNDS)]
    run_side_by_side(iem_db, rounds, rounds)

    ledger = ledger_rows(iem_db)
    assert len(ledger) == 3 * ROUNDS and {row["seen_count"] for row in ledger} == {2}
    per_subscriber = dict(iem_db.query("SELECT subscriberid, COUNT(*) FROM {t.bounces} GROUP BY subscriberid"))
    assert {per_subscriber.get(first) for first, _ in rows.values()} == {2}  # the soft and the hard row
    assert not any(second in per_subscriber for _, second in rows.values())
    assert iem_db.query("SELECT statid, bouncecount_soft, bouncecount_hard, bouncecount_unknown "
                        "FROM {t.stats_newsletters} WHERE statid IN (41, 42, 43) ORDER BY statid") == [
        (41, 10 + ROUNDS, 20, 30), (42, 10, 20, 30 + ROUNDS), (43, 10, 20 + ROUNDS, 30)]
    assert iem_db.query("SELECT listid, subscribecount, bouncecount FROM {t.lists} ORDER BY listid") == [
        (1, 1000 - ROUNDS, ROUNDS), (2, 1000, 0)]
