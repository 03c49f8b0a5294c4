"""Issue 18: a worker's relay thread holds its events while bounces flow (PMTABOUNCE_EVENT_HOLD), and lets them go
as soon as they stop: no message for a while, the worker exiting when idle, or its RabbitMQ connection lost.

Each test sets a hold of 60 s and waits far less for the calls: a worker that kept holding fails it."""

from __future__ import annotations

import threading
import time

import pytest
from iem_seed import Seed
from tcp_proxy import TcpProxy
from webhook_receiver import WebhookReceiver
from webhook_world import BOUNCE
from worker_fleet import (
    Fleet,
    add_subscribers,
    hard_bounces,
    ledger_count,
    publish,
    publish_on,
    publisher,
    wait_for,
    worker_env,
)

HOLD = 60  # seconds: longer than any wait below


def hooked_list(db, receiver, count: int) -> list[str]:
    """List 1 with `count` subscribers and a Bounce webhook to `receiver`: one call per hard bounce."""
    emails = add_subscribers(db, count)
    Seed(db).webhook(1, BOUNCE, receiver.url())
    return emails


def waiting_calls(db) -> int:
    return db.query("SELECT COUNT(*) FROM {t.outbox} WHERE target = 'webhook' AND state = 'waiting'")[0][0]


@pytest.fixture
def receiver():
    hooks = WebhookReceiver().up()
    yield hooks
    hooks.down()


def test_a_bursts_calls_go_once_the_bounces_stop_flowing(iem_db, vhost, tmp_path, receiver):
    emails = hooked_list(iem_db, receiver, 40)
    publish(vhost.url, vhost.topology, hard_bounces(emails))
    env = worker_env(iem_db.url, vhost.url, webhooks="on", event_hold=HOLD)
    with Fleet(env, tmp_path) as fleet:
        worker = fleet.start()
        wait_for(lambda: ledger_count(iem_db) == 40, "the burst applied")
        applied = time.monotonic()
        receiver.wait_for(40, timeout=15)  # the worker is quiet 0.5 s after the last message: not after the hold
        assert time.monotonic() - applied < 15
        assert fleet.terminate(worker) == 0
    assert waiting_calls(iem_db) == 0


def test_a_worker_exiting_when_idle_first_sends_what_it_held(iem_db, vhost, tmp_path, receiver):
    # --exit-when-idle 0.3: idle before the 0.5 s that makes a worker quiet; its relay must still send first.
    emails = hooked_list(iem_db, receiver, 40)
    publish(vhost.url, vhost.topology, hard_bounces(emails))
    env = worker_env(iem_db.url, vhost.url, webhooks="on", event_hold=HOLD)
    with Fleet(env, tmp_path) as fleet:
        fleet.start("--exit-when-idle", "0.3")
        started = time.monotonic()
        assert fleet.finish(timeout=30) == [0]
        assert time.monotonic() - started < 30
    assert ledger_count(iem_db) == 40
    assert waiting_calls(iem_db) == 0 and len(receiver.requests) == 40


def test_a_worker_holds_its_calls_while_bounces_trickle_in_and_sends_them_when_it_loses_rabbitmq(
        iem_db, vhost, tmp_path, receiver):
    # Bounces trickle in (never 0.5 s apart): the worker applies them and its relay sends none of their calls.
    # Then its RabbitMQ connection is cut: no bounce flows through it any more, so the calls go while it tries
    # to reconnect.
    emails = hooked_list(iem_db, receiver, 60)
    proxy = TcpProxy("127.0.0.1", 5672)
    stop = threading.Event()

    def trickle() -> None:  # one connection, each message confirmed: no pause but the 0.1 s
        connection, channel = publisher(vhost.url, vhost.topology)
        try:
            for record in hard_bounces(emails):
                if stop.is_set():
                    return
                publish_on(channel, vhost.topology, record)
                time.sleep(0.1)
        finally:
            connection.close()

    env = worker_env(iem_db.url, proxy.url_for(vhost.url), webhooks="on", event_hold=HOLD)
    feeder = threading.Thread(target=trickle, daemon=True)
    try:
        with Fleet(env, tmp_path) as fleet:
            fleet.start()
            feeder.start()
            wait_for(lambda: ledger_count(iem_db) >= 20, "bounces applied while they trickle in")
            assert receiver.requests == []  # held: the bounces flow
            proxy.cut()
            cut = time.monotonic()
            applied = ledger_count(iem_db)
            wait_for(lambda: len(receiver.requests) >= applied, "the calls of the bounces applied", timeout=15)
            assert time.monotonic() - cut < 15
    finally:
        stop.set()
        feeder.join(10)
        proxy.close()


def test_a_stop_request_is_not_held_up_by_the_relay_of_a_worker_exiting_when_idle(iem_db, vhost, tmp_path,
                                                                                  receiver):
    # Exiting when idle, the worker lets its relay send what is due; the receiver hangs, so that takes long.
    # A SIGTERM then ends the wait: the worker exits within the grace of the call in hand, not FINISH_SECONDS.
    emails = hooked_list(iem_db, receiver, 40)
    receiver.hang()
    publish(vhost.url, vhost.topology, hard_bounces(emails))
    env = worker_env(iem_db.url, vhost.url, webhooks="on", event_hold=HOLD, webhook_timeout=30)
    with Fleet(env, tmp_path) as fleet:
        worker = fleet.start("--exit-when-idle", "0.3")
        wait_for(lambda: "exiting as asked" in fleet.log() and receiver.requests, "the relay sending as it exits")
        asked = time.monotonic()
        assert fleet.terminate(worker) == 0
        assert time.monotonic() - asked < 7  # the call in hand's grace (3 s), then gone
    assert ledger_count(iem_db) == 40
    assert waiting_calls(iem_db) == 40  # left for the next worker or relay: nothing lost
