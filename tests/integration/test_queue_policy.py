"""`setup` sets delivery limit, dead-lettering and overflow as a policy, changes it in place,
and moves a queue declared with them as x-arguments over without losing a message."""

from __future__ import annotations

import json
import subprocess
import sys

import pika
from pmtabounce.common.topology import Topology
from rabbit_management import ensure_management_api
from worker_fleet import drain, wait_for, worker_env

from pmtabounce import queues

# What versions before the policy declared.
LEGACY_ARGUMENTS = {"x-queue-type": "quorum", "x-delivery-limit": 20,
                    "x-dead-letter-exchange": "pmtabounce.dead-letter", "x-dead-letter-routing-key": "bounce",
                    "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


def setup(vhost, *args: str, **settings) -> subprocess.CompletedProcess:
    env = worker_env("mysql://unused@127.0.0.1/unused", vhost.url, **settings)
    return subprocess.run([sys.executable, "-m", "pmtabounce", "setup", "--no-database", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def queue_info(vhost, name: str) -> dict:
    return queues.ManagementApi((ensure_management_api(),)).request(f"/api/queues/{vhost.name}/{name}")


def effective(vhost, name: str) -> dict:
    return queues.effective_policy(queues.ManagementApi((ensure_management_api(),)), vhost.name, name)


def wait_effective(vhost, name: str, key: str, expected) -> None:
    """The management API shows the broker's queue record a few seconds late."""
    wait_for(lambda: effective(vhost, name).get(key) == expected, f"{name}'s effective {key} to be {expected}", 30)


def queue_names(vhost) -> set[str]:
    return {q["name"] for q in queues.ManagementApi((ensure_management_api(),)).request(f"/api/queues/{vhost.name}")}


def publish_numbered(vhost, queue_or_exchange: str, count: int, *, exchange: bool = True) -> None:
    connection, channel = vhost.channel()
    channel.confirm_delivery()
    for n in range(count):
        channel.basic_publish(queue_or_exchange if exchange else "", "bounce" if exchange else queue_or_exchange,
                              str(n).encode(), pika.BasicProperties(message_id=f"m{n}", delivery_mode=2,
                                                                    headers={"x-keep": n}))
    connection.close()


def test_a_changed_delivery_limit_takes_effect_on_the_next_setup(vhost):
    first = setup(vhost, delivery_limit=20)
    assert first.returncode == 0, first.stderr
    topology = vhost.topology
    assert queue_info(vhost, topology.queue)["arguments"] == {"x-queue-type": "quorum"}
    wait_effective(vhost, topology.queue, "delivery-limit", 20)
    assert effective(vhost, topology.queue) == topology.policy_definition()

    publish_numbered(vhost, topology.exchange, 3)
    again = setup(vhost, delivery_limit=7)
    assert again.returncode == 0, again.stderr  # a changed setting is no 406 and no new queue
    wait_effective(vhost, topology.queue, "delivery-limit", 7)
    assert vhost.queue_depth(topology.queue) == 3


def test_a_queue_declared_with_x_arguments_is_moved_to_the_policy_with_every_message(vhost):
    topology = vhost.topology
    connection, channel = vhost.channel()
    setup_first = setup(vhost)  # exchanges and the dead-letter queue, as an older setup left them
    assert setup_first.returncode == 0, setup_first.stderr
    channel.queue_delete(topology.queue)
    channel.queue_declare(topology.queue, durable=True, arguments=LEGACY_ARGUMENTS)
    channel.queue_bind(topology.queue, topology.exchange, routing_key=topology.routing_key)
    connection.close()
    publish_numbered(vhost, topology.exchange, 120)

    done = setup(vhost, delivery_limit=5)
    assert done.returncode == 0, done.stderr
    assert "moved" in done.stderr
    assert queue_info(vhost, topology.queue)["arguments"] == {"x-queue-type": "quorum"}
    wait_effective(vhost, topology.queue, "delivery-limit", 5)
    assert topology.migration_queue not in queue_names(vhost)
    assert setup(vhost, delivery_limit=5).returncode == 0  # and again: nothing left to move

    publish_numbered(vhost, topology.exchange, 1)  # the exchange routes to the new queue
    messages = drain(vhost.url, topology.queue)
    assert sorted(int(body) for _, body in messages) == sorted([*range(120), 0])
    first = next(p for p, body in messages if body == b"7")
    headers = {k: v for k, v in first.headers.items() if k != "x-delivery-count"}  # the queue's own, on delivery
    assert first.message_id == "m7" and first.delivery_mode == 2 and headers == {"x-keep": 7}


def test_an_interrupted_migration_is_finished_by_the_next_setup(vhost):
    topology = vhost.topology
    assert setup(vhost).returncode == 0
    connection, channel = vhost.channel()  # as if setup stopped after moving the messages aside
    channel.queue_declare(topology.migration_queue, durable=True, arguments=topology.queue_arguments())
    connection.close()
    publish_numbered(vhost, topology.migration_queue, 10, exchange=False)

    done = setup(vhost)
    assert done.returncode == 0, done.stderr
    assert topology.migration_queue not in queue_names(vhost)
    assert vhost.queue_depth(topology.queue) == 10


def test_setup_will_not_re_create_a_queue_that_workers_consume(vhost):
    topology = vhost.topology
    assert setup(vhost).returncode == 0
    connection, channel = vhost.channel()
    channel.queue_delete(topology.queue)
    channel.queue_declare(topology.queue, durable=True, arguments=LEGACY_ARGUMENTS)
    publish_numbered(vhost, topology.queue, 4, exchange=False)
    consumer = connection.channel()
    consumer.basic_qos(prefetch_count=1)
    consumer.basic_consume(topology.queue, lambda *a: None)
    try:
        done = setup(vhost)
        assert done.returncode == 1
        assert "stop the workers" in done.stderr and topology.queue in done.stderr
        assert vhost.queue_depth(topology.queue) == 3  # one held by the consumer, nothing moved or lost
    finally:
        connection.close()


def test_without_a_reachable_management_api_setup_says_how_to_set_the_policy_by_hand(vhost):
    done = setup(vhost, rabbitmq_api_url="http://guest:guest@127.0.0.1:1")
    assert done.returncode == 1
    assert f"rabbitmqctl set_policy -p {vhost.name} --apply-to" in done.stderr and "--no-policy" in done.stderr
    assert json.dumps(Topology().policy_definition()) in done.stderr
    assert "guest:guest" not in done.stderr
    by_hand = setup(vhost, "--no-policy", rabbitmq_api_url="http://guest:guest@127.0.0.1:1")
    assert by_hand.returncode == 0, by_hand.stderr


def test_a_new_producer_publishes_into_an_older_versions_queue_until_setup_moves_it(vhost, tmp_path):
    topology = vhost.topology
    assert setup(vhost).returncode == 0
    connection, channel = vhost.channel()
    channel.queue_delete(topology.queue)
    channel.queue_declare(topology.queue, durable=True, arguments=LEGACY_ARGUMENTS)
    channel.queue_bind(topology.queue, topology.exchange, routing_key=topology.routing_key)
    connection.close()
    (tmp_path / "bounces-1.csv").write_text(
        "type,timeLogged,rcpt,dsnStatus,dsnDiag,bounceCat,header_X-Mailer-LID,header_X-Mailer-SID\r\n"
        "b,1732000000,ann@example.com,5.1.1,smtp;550 unknown,bad-mailbox,1,0\r\n")
    env = worker_env("mysql://unused@127.0.0.1/unused", vhost.url, bounce_dir=tmp_path)
    done = subprocess.run([sys.executable, "-m", "pmtabounce", "producer", "--once"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr  # docs/upgrading.md: "stop the workers (the producer may run)"
    assert "older version" in done.stderr and (tmp_path / "bounces-1.csv.done").exists()
    assert vhost.queue_depth(topology.queue) == 1
    assert setup(vhost).returncode == 0 and vhost.queue_depth(topology.queue) == 1  # then moved, message and all
