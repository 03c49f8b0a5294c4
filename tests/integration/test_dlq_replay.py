"""`dlq replay` with the real worker: after the fix each record applies exactly once, the loop guard
stops endless replays, and a replay interrupted (politely or with kill -9) and run again loses and
doubles nothing."""

from __future__ import annotations

import signal

import orjson
import pika
import pytest
from dlq_world import REFUSAL, REFUSING_LIST, address, hard_bounce, make_world
from worker_fleet import wait_for

REFUSED = "database_refused"


@pytest.fixture
def dead_lettered(iem_db, vhost, tmp_path):
    """A maker of worlds where the worker dead-lettered records; background dlq commands die with the test."""
    made = []

    def make(records: int):
        made.append(_dead_lettered_world(iem_db, vhost, tmp_path, records))
        return made[-1]

    yield make
    for world in made:
        world.kill_leftovers()


def _dead_lettered_world(iem_db, vhost, tmp_path, records: int):
    """`records` hard bounces for the refusing list, and one poison message, dead-lettered by the worker."""
    world = make_world(iem_db, vhost, tmp_path, subscribers=records)
    world.refuse_list_2()
    world.publish([hard_bounce(REFUSING_LIST, n, 2 + n) for n in range(records)])
    world.publish_raw([(b"not a bounce", pika.BasicProperties(delivery_mode=2))])
    world.run_worker()
    assert world.dlq_json()["counts"] == {REFUSED: records, "invalid_message": 1}
    return world


def _depths(world) -> tuple[int, int]:
    topology = world.vhost.topology
    return world.vhost.queue_depth(topology.dead_queue), world.vhost.queue_depth(topology.queue)


def _applied_once(records: int) -> list[tuple]:
    """Every subscriber bounced, with one bounce row and one ledger row (sorted as bounced() sorts)."""
    return sorted((address(REFUSING_LIST, n), 1, 1, 1) for n in range(records))


def test_replay_after_the_fix_applies_exactly_once_and_the_loop_guard_stops_repeats(dead_lettered):
    world = dead_lettered(3)

    dry = world.dlq("replay", "--reason", REFUSED, "--dry-run")
    assert "would replay: 3 messages" in dry.stdout and _depths(world) == (4, 0)

    # Replayed before the cause is fixed: the worker dead-letters them again, one replay counted.
    world.dlq("replay", "--reason", REFUSED, "--yes")
    assert _depths(world) == (1, 3)
    world.run_worker()
    again = [m for m in world.dlq_json("--reason", REFUSED)["messages"]]
    assert [(m["replays"], REFUSAL in m["reason"]) for m in again] == [(1, True)] * 3

    guarded = world.dlq("replay", "--reason", REFUSED, "--max-replays", "1", "--yes", check=False)
    assert "replayed 0 messages" in guarded.stdout and "3 refused by the loop guard" in guarded.stdout
    assert guarded.returncode == 4 and "nothing replayed: the loop guard refused all 3" in guarded.stderr
    asked = world.dlq("replay", "--reason", REFUSED, "--max-replays", "1", check=False)  # without --yes: no question
    assert asked.returncode == 4 and "nothing replayed" in asked.stderr
    assert world.dlq("replay", "--reason", REFUSED, "--max-replays", "1", "--dry-run").returncode == 0
    assert _depths(world) == (4, 0)

    world.accept_list_2()
    forced = world.dlq("replay", "--reason", REFUSED, "--max-replays", "1", "--force", "--yes")
    assert "replayed 3 messages" in forced.stdout
    world.run_worker()
    assert world.bounced(REFUSING_LIST) == _applied_once(3)
    assert world.dlq_json()["counts"] == {"invalid_message": 1}

    audit = [orjson.loads(line) for line in world.audit_file.read_bytes().splitlines()]
    assert [(a["action"], a["counts"]["replayed"], a["counts"]["refused"], a["counts"]["forced"])
            for a in audit] == [("dlq replay", 3, 0, False), ("dlq replay", 0, 3, False), ("dlq replay", 3, 0, True)]
    assert {a["target"]["filter"] for a in audit} == {f"--reason {REFUSED}"}


def test_an_interrupted_replay_run_again_loses_and_doubles_nothing(dead_lettered):
    records = 12
    world = dead_lettered(records)
    world.accept_list_2()

    # Ctrl-C: it stops between two messages; each one is either replayed or still dead.
    polite = world.spawn_dlq("replay", "--reason", REFUSED, "--rate", "4", "--yes")
    _wait_until_replayed(world, 2)
    polite.send_signal(signal.SIGINT)
    assert polite.wait(timeout=30) == 130  # not done: a script must not take it for a finished replay
    dead, work = _depths(world)
    assert dead - 1 + work == records and 2 <= work < records
    assert "SIGINT received: stopping after the message in hand" in polite.log_path.read_text()
    audited = orjson.loads(world.audit_file.read_bytes().splitlines()[-1])  # written on the clean stop
    assert (audited["action"], audited["counts"]["replayed"], audited["counts"]["completed"]) == (
        "dlq replay", work, False)

    # kill -9: held messages go back to the queue; at most the one in flight is in both queues.
    brutal = world.spawn_dlq("replay", "--reason", REFUSED, "--rate", "4", "--yes")
    _wait_until_replayed(world, work + 2)
    brutal.kill()
    brutal.wait(timeout=30)
    dead, work = _depths(world)
    assert records <= dead - 1 + work <= records + 1 and work < records + 1

    world.dlq("replay", "--reason", REFUSED, "--yes")
    dead, work = _depths(world)
    assert dead == 1 and records <= work <= records + 1
    world.run_worker()
    assert world.bounced(REFUSING_LIST) == _applied_once(records)
    assert _depths(world) == (1, 0)


def _wait_until_replayed(world, count: int) -> None:
    """Until the work queue holds `count` replayed messages (no worker runs meanwhile)."""
    wait_for(lambda: _depths(world)[1] >= count, f"{count} messages replayed", timeout=30)
