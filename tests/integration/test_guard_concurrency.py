"""The domain guard under N processes at once: every hard record counted once, one trip, exactly the rest held."""

from __future__ import annotations

import multiprocessing

from iem_seed import T0, Seed, bounce
from pmtabounce.common import metrics
from pmtabounce.common.guard import GuardSettings
from pmtabounce.common.policy import Policy
from pmtabounce.worker.apply import BatchApplier

PROCESSES, ROUNDS, PER_BATCH = 4, 6, 10
GUARD = GuardSettings(minimum=100, factor=3, window=600)


def apply_rounds(target, tables, batches: list[list], barrier, rewalks) -> None:
    """In a child process: one batch per round, all processes released together."""
    applier = BatchApplier(target, tables, Policy(), retry_max_wait=0.2, give_up_after=120, guard=GUARD)
    try:
        for batch in batches:
            barrier.wait(timeout=120)
            assert not applier.apply(batch).failed
    finally:
        applier.close()
        rewalks.put(metrics.GUARD_REWALKS._value.get())


def test_four_processes_count_every_hard_bounce_once_and_trip_once(iem_db):
    seed = Seed(iem_db)
    seed.lists(1, subscribecount=1000)
    total = PROCESSES * ROUNDS * PER_BATCH
    emails = [f"u{n}@gmail.example" for n in range(total)]
    for email in emails:
        seed.subscriber(email, 1)
    records = [bounce("hard", email, (1,), 0, T0 - T0 % 600 + n % 600, line=n) for n, email in enumerate(emails)]
    sides = [[records[(r * PROCESSES + p) * PER_BATCH:][:PER_BATCH] for r in range(ROUNDS)] for p in range(PROCESSES)]

    context = multiprocessing.get_context("fork")
    barrier, rewalks = context.Barrier(PROCESSES), context.Queue()
    processes = [context.Process(target=apply_rounds, args=(iem_db.target, iem_db.tables, side, barrier, rewalks))
                 for side in sides]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
        assert process.exitcode == 0

    bar = GUARD.minimum
    assert iem_db.query("SELECT domain, hard_count, tripped FROM {t.guard_windows}") == [
        ("gmail.example", total, 1)]
    assert iem_db.query("SELECT trips, trip_count, held, tripped_at IS NOT NULL FROM {t.guard_domains}") == [
        (1, bar, total - bar + 1, 1)]
    outcomes = dict(iem_db.query("SELECT outcome, COUNT(*) FROM {t.ledger} GROUP BY outcome"))
    assert outcomes == {"disabled": bar - 1, "held": total - bar + 1}
    assert iem_db.query("SELECT COUNT(*) FROM {t.subscribers} WHERE bounced > 0") == [(bar - 1,)]
    assert iem_db.query("SELECT bouncecount, subscribecount FROM {t.lists}") == [(bar - 1, 1000 - bar + 1)]
    print("batches walked again with the guard's rows locked:", sum(rewalks.get() for _ in processes))
