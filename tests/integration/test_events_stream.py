"""Issue 18: the decision stream on RabbitMQ, and the worker's relay thread sending both targets."""

from __future__ import annotations

import json

from iem_seed import T0
from storm_world import pmtabounce
from webhook_receiver import WebhookReceiver
from webhook_world import BOUNCE_BODY, UNSUBSCRIBE_BODY, bodies, outbox_rows, records, world
from worker_fleet import Fleet, drain, free_port, http_get, produce_once, wait_for, worker_env


def bound_queue(vhost, *keys: str) -> str:
    """An operator's own queue on the decision stream, bound for `keys`."""
    connection, channel = vhost.channel()
    try:
        channel.queue_declare("crm", durable=True)
        for key in keys:
            channel.queue_bind("crm", vhost.topology.events_exchange, routing_key=key)
    finally:
        connection.close()
    return "crm"


def taken(vhost, queue: str) -> list[tuple]:
    """(routing key, properties, CloudEvent) of every message in `queue` (the key is also the AMQP `type`)."""
    return [(properties.type, properties, json.loads(body)) for properties, body in drain(vhost.url, queue)]


def test_the_worker_sends_the_webhooks_and_one_stream_event_per_decision(iem_db, vhost, tmp_path):
    receiver = WebhookReceiver().up()
    ids = world(iem_db, receiver)
    env = worker_env(iem_db.url, vhost.url, event_stream="on", webhooks="on")
    pmtabounce(iem_db, "setup", amqp_url=vhost.url)
    queue = bound_queue(vhost, "bounce.#", "complaint.*")
    produce_once(env, records(tmp_path), tmp_path / "producer.log")

    with Fleet(env, tmp_path) as fleet:
        worker = fleet.start()
        wait_for(lambda: vhost.queue_depth(queue) == 3 and len(receiver.requests) == 2,
                 "three stream events and two webhook calls")
        assert fleet.terminate(worker) == 0

    assert bodies(receiver) == [BOUNCE_BODY, UNSUBSCRIBE_BODY]
    events = taken(vhost, queue)
    assert [key for key, _, _ in events] == ["bounce.hard.disabled", "bounce.soft.recorded", "complaint.unsubscribed"]
    ids_sent = {row[1] for row in outbox_rows(iem_db, "stream")}
    for key, properties, event in events:
        assert properties.content_type == "application/cloudevents+json" and properties.delivery_mode == 2
        assert properties.message_id == event["id"] and event["id"] in ids_sent
        assert (event["specversion"], event["type"], event["source"]) == ("1.0", f"org.pmtabounce.{key}", "/pmtabounce")
        assert event["dataschema"] == "urn:pmtabounce:events:1"
    hard, soft, unsubscribed = (event["data"] for _, _, event in events)
    assert (hard["email"], hard["subscriberid"], hard["listid"], hard["category"], hard["time_logged"]) == (
        "ann@example.com", ids["ann"], 3, "bad-mailbox", T0)
    assert (soft["email"], soft["outcome"], soft["decision"]) == ("bob@example.com", "applied", "soft")
    assert unsubscribed["unsubscribed"] == [{"subscriberid": ids["cat"], "listid": 3, "unsubscribetime": T0 + 5}]
    assert (unsubscribed["feedback_type"], unsubscribed["source_line"]) == ("abuse", 4)


def test_an_event_no_queue_is_bound_for_waits_in_the_unrouted_queue(iem_db, vhost, tmp_path):
    pmtabounce(iem_db, "setup", amqp_url=vhost.url)
    bound_queue(vhost, "bounce.#")

    pmtabounce(iem_db, "guard", "trip", "example.org", event_stream="on")
    pmtabounce(iem_db, "relay", "--once", "10", amqp_url=vhost.url, event_stream="on")

    [(key, _, event)] = taken(vhost, vhost.topology.unrouted_queue)
    assert key == "guard.tripped" and event["data"]["domain"] == "example.org"
    assert taken(vhost, "crm") == []


def test_a_worker_whose_relay_stopped_says_so_on_readyz(iem_db, vhost, tmp_path):
    # The decision stream's exchange is gone (a broker set up again by hand, say): the relay thread meets a
    # fatal refusal and ends. The worker goes on applying bounces, and must not look healthy meanwhile.
    receiver = WebhookReceiver().up()
    world(iem_db, receiver)
    port = free_port()
    env = worker_env(iem_db.url, vhost.url, event_stream="on", webhooks="on", metrics_port=port)
    pmtabounce(iem_db, "setup", amqp_url=vhost.url)
    connection, channel = vhost.channel()
    try:
        channel.exchange_delete(vhost.topology.events_exchange)
    finally:
        connection.close()
    produce_once(env, records(tmp_path), tmp_path / "producer.log")

    with Fleet(env, tmp_path) as fleet:
        worker = fleet.start()
        wait_for(lambda: "relay stops" in fleet.log(), "the relay thread to stop")
        status, text = http_get(port, "/readyz")
        assert status == 503 and "relay" in text and "does not exist" in text, text
        assert fleet.terminate(worker) == 0
    assert [row[4] for row in outbox_rows(iem_db, "stream")] == ["waiting"] * 3  # nothing lost
