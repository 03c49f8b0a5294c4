"""The dead-letter queue session against the real RabbitMQ: browsing keeps a long queue in order,
removing takes exactly the chosen messages, and two dlq commands never work the queue at once."""

from __future__ import annotations

import pika
import pytest
from pmtabounce.common.config import Settings
from pmtabounce.common.errors import FatalError
from worker_fleet import drain

from pmtabounce.dlq.session import DeadLetterQueue
from pmtabounce.queue_policy import setup_rabbitmq

MESSAGES = 120  # more than 32: RabbitMQ returns small sets in order whatever one does


@pytest.fixture
def settings(vhost) -> Settings:
    settings = Settings(amqp_url=vhost.url)
    setup_rabbitmq(settings)
    return settings


def _dead_letter(vhost, count: int) -> None:
    """`count` messages rejected off the work queue: RabbitMQ dead-letters them in this order."""
    connection, channel = vhost.channel()
    channel.confirm_delivery()
    topology = vhost.topology
    for n in range(count):
        channel.basic_publish(topology.exchange, topology.routing_key, f"message {n}".encode(),
                              pika.BasicProperties(delivery_mode=2, message_id=f"m-{n:05d}"), mandatory=True)
    for _ in range(count):
        method, _, _ = channel.basic_get(topology.queue)
        channel.basic_reject(method.delivery_tag, requeue=False)
    connection.close()


def _drain(vhost) -> list[str]:
    """Take everything out of the dead-letter queue, in the order RabbitMQ hands it out."""
    return [properties.message_id for properties, _ in drain(vhost.url, vhost.topology.dead_queue)]


def test_browsing_and_removing_keep_the_rest_in_order(settings, vhost):
    _dead_letter(vhost, MESSAGES)
    expected = [f"m-{n:05d}" for n in range(MESSAGES)]
    with DeadLetterQueue.open(settings) as queue:
        assert [letter.id for letter in queue.browse()] == expected
        queue.release()
        letters = queue.browse()
        assert [letter.id for letter in letters] == expected
        for letter in letters[10:20] + letters[70:71]:
            queue.remove(letter)
        assert vhost.queue_depth(vhost.topology.dead_queue) == 0  # all held, none visible to others
    kept = expected[:10] + expected[20:70] + expected[71:]
    assert _drain(vhost) == kept


def test_a_second_dlq_command_waits_for_the_first_and_then_gives_up(settings):
    with DeadLetterQueue.open(settings):
        with pytest.raises(FatalError, match="another `pmtabounce dlq` command"):
            with DeadLetterQueue.open(settings, lock_wait=1.0):
                pass
    with DeadLetterQueue.open(settings, lock_wait=0) as queue:  # free again once the first is gone
        assert queue.depth() == 0


def test_without_setup_it_says_what_to_run(vhost):
    with DeadLetterQueue.open(Settings(amqp_url=vhost.url)) as queue:
        with pytest.raises(FatalError, match="pmtabounce setup"):
            queue.browse()
