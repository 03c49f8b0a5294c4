"""The fleet against the inline result: one worker, four workers, and workers killed at random.

Each test loads one generated world into two fresh databases and writes its
files twice: `pmtabounce process` works one copy inline, `pmtabounce producer
--once` and the workers the other through RabbitMQ, and the two databases must
end identical (every IEM table a bounce touches, and the ledger).
"""

from __future__ import annotations

import random

import pytest
from conftest import drop_database, make_database
from fleet_world import assert_same_database, build
from worker_fleet import Fleet, drain, ledger_count, produce_once, wait_for, worker_env

from pmtabounce.demo.world import World


@pytest.fixture
def inline_db():
    db = make_database()
    yield db
    drop_database(db)


def assert_drained(vhost) -> None:
    assert vhost.queue_depth(vhost.topology.queue) == 0
    assert drain(vhost.url, vhost.topology.dead_queue) == []


def test_one_worker_gives_exactly_the_inline_result(iem_db, inline_db, vhost, tmp_path):
    world = World.generate(1, subscribers=1500, records=3000, files=4)
    directory, _ = build(world, iem_db, inline_db, tmp_path)
    env = worker_env(iem_db.url, vhost.url, batch_size=200)

    with Fleet(env, tmp_path) as fleet:
        fleet.wait_consuming(fleet.start("--exit-when-idle", "2"))
        produce_once(env, directory, tmp_path / "producer.log")
        assert fleet.finish() == [0], fleet.log()

    assert_same_database(iem_db, inline_db)
    assert_drained(vhost)


def test_four_workers_give_the_inline_result_when_order_does_not_matter(iem_db, inline_db, vhost, tmp_path):
    world = World.generate(2, subscribers=3000, records=2500, files=4, independent=True)
    directory, distinct = build(world, iem_db, inline_db, tmp_path)
    env = worker_env(iem_db.url, vhost.url, batch_size=50)

    with Fleet(env, tmp_path) as fleet:
        workers = [fleet.start() for _ in range(4)]
        for process in workers:
            fleet.wait_consuming(process)
        produce_once(env, directory, tmp_path / "producer.log")
        wait_for(lambda: ledger_count(iem_db) == distinct, "every record in the ledger")
        assert [fleet.terminate(process) for process in workers] == [0, 0, 0, 0], fleet.log()
        assert fleet.log().count(" records in ") == 4, "every worker should have had a share"

    assert_same_database(iem_db, inline_db)
    assert_drained(vhost)


def test_workers_killed_at_random_lose_nothing_and_apply_nothing_twice(iem_db, inline_db, vhost, tmp_path):
    world = World.generate(3, subscribers=3000, records=3000, files=4, independent=True)
    directory, distinct = build(world, iem_db, inline_db, tmp_path)
    env = worker_env(iem_db.url, vhost.url, batch_size=20)
    produce_once(env, directory, tmp_path / "producer.log")
    rng = random.Random(3)
    # Random moments, measured in progress rather than seconds, so that every kill lands mid-flow.
    kill_points = sorted(rng.sample(range(50, distinct - 300), 6))

    with Fleet(env, tmp_path) as fleet:
        for _ in range(2):
            fleet.start()
        kills = 0
        for point in kill_points:
            wait_for(lambda point=point: ledger_count(iem_db) >= point, f"{point} records applied")
            if ledger_count(iem_db) == distinct:
                break
            victim = rng.choice(fleet.consuming() or fleet.running())
            victim.kill()  # SIGKILL: no clean-up of any kind
            victim.wait()
            kills += 1
            fleet.start()
        assert kills >= 3, "the workers finished before enough of them were killed: give them more to do"
        last = fleet.start("--exit-when-idle", "2")
        for process in fleet.running():
            if process is not last:
                fleet.wait_consuming(process)
                assert fleet.terminate(process) == 0, fleet.log()
        assert last.wait(timeout=120) == 0, fleet.log()

    assert_same_database(iem_db, inline_db)
    assert_drained(vhost)
