"""The work queue without x-arguments: declared with its type only, an older one moved over with every message.

Queues declared before the policy carry `x-delivery-limit`, `x-dead-letter-*`
and `x-overflow` as arguments. A policy cannot replace them in place: for a
quorum queue RabbitMQ takes the smaller of argument and policy for
`delivery-limit`, and the argument for dead-lettering, so raising the limit or
changing the dead-letter target would never take effect. Arguments cannot be
changed either, only the queue re-created. So `setup`, when it meets such a
queue (RabbitMQ answers 406 to a declare without those arguments):

1. declares `<prefix>.bounces.migrating` and binds it to the work exchange,
   then unbinds the old queue, so the exchange always routes to one of them;
2. moves every message from the old queue into it (each acked only after
   RabbitMQ confirmed its copy), then deletes the old queue, now empty;
   copies travel through our own work exchange — the only one bound to the
   target at that moment — never the default exchange, which the shipped
   user (deploy/rabbitmq/definitions.json) may not write to; that write
   permission is checked before anything is unbound;
3. declares the work queue anew, binds it, unbinds the migration queue, moves
   the messages back the same way and deletes the migration queue.

It refuses while workers consume the old queue (their unacked messages would
return to a deleted queue). Interrupted at any point, running `setup` again
goes on from where it stopped. A message routed while both queues were bound
arrives twice; the ledger makes the second a `duplicate`.
"""

from __future__ import annotations

import logging

import pika
from pika.exceptions import ChannelClosedByBroker

from .errors import FatalError
from .topology import Topology

log = logging.getLogger("pmtabounce.setup")

# What older versions declared as x-arguments and the policy now sets.
LEGACY_ARGUMENTS = ("x-delivery-limit", "x-dead-letter-exchange", "x-dead-letter-routing-key",
                    "x-dead-letter-strategy", "x-overflow")
NOT_FOUND, PRECONDITION_FAILED = 404, 406
PROBE_ROUTING_KEY = "pmtabounce.permission-probe"  # bound to no queue: the exchange drops the probe


def declare_work_queue(connection: pika.BlockingConnection, topology: Topology) -> int:
    """Declare and bind the work queue with only its type, moving an older one over first.

    Returns the number of messages moved (0 when there was nothing to migrate).
    Raises FatalError when the old queue still has consumers, or exists with
    other arguments than ours; pika's AMQPError when the connection fails.
    """
    moved = 0
    if declare_queue(connection, topology.queue, topology):
        moved = _retire_legacy_queue(connection, topology)
        declare_queue(connection, topology.queue, topology)
    if _exists(connection, topology.migration_queue):
        channel = connection.channel()
        channel.queue_unbind(topology.migration_queue, topology.exchange, routing_key=topology.routing_key)
        back = move_messages(connection, topology.migration_queue, topology)
        channel.queue_delete(topology.migration_queue)
        channel.close()
        log.info("broker: %d messages moved back into %s; %s deleted", back, topology.queue,
                 topology.migration_queue)
        moved = back
    return moved


def declare_queue(connection: pika.BlockingConnection, queue: str, topology: Topology) -> bool:
    """Declare `queue` with only its type and bind it; True (and nothing declared) if it exists with an
    older version's x-arguments (LEGACY_ARGUMENTS: RabbitMQ answers 406, closing that channel only).

    Raises pika's ChannelClosedByBroker for any other refusal, AMQPError when the connection fails.
    """
    channel = connection.channel()
    try:
        channel.queue_declare(queue, durable=True, arguments=topology.queue_arguments())
    except ChannelClosedByBroker as exc:
        if exc.reply_code == PRECONDITION_FAILED and any(f"'{a}'" in exc.reply_text for a in LEGACY_ARGUMENTS):
            return True
        raise
    channel.queue_bind(queue, topology.exchange, routing_key=topology.routing_key)
    channel.close()
    return False


def _retire_legacy_queue(connection: pika.BlockingConnection, topology: Topology) -> int:
    """Steps 1 and 2: the old queue's messages into the migration queue, the old queue deleted."""
    channel = connection.channel()
    consumers = channel.queue_declare(topology.queue, passive=True).method.consumer_count
    if consumers:
        raise FatalError(
            f"queue {topology.queue} was declared with x-arguments (delivery limit, dead-lettering) that a "
            f"policy cannot override, so setup re-creates it, moving its messages; {consumers} consumers still "
            "use it: stop the workers (the producer may run), run `pmtabounce setup` again, then start them"
        )
    log.info("broker: %s has x-arguments from an older version; moving it to a policy, messages included",
             topology.queue)
    _check_can_publish(connection, topology)
    declare_queue(connection, topology.migration_queue, topology)
    channel.queue_unbind(topology.queue, topology.exchange, routing_key=topology.routing_key)
    moved = move_messages(connection, topology.queue, topology)
    left = channel.queue_declare(topology.queue, passive=True).method
    if left.message_count or left.consumer_count:
        raise FatalError(f"queue {topology.queue} was given new messages or consumers while setup emptied it; "
                         "run `pmtabounce setup` again")
    channel.queue_delete(topology.queue)
    channel.close()
    log.info("broker: %d messages moved into %s; the old %s deleted", moved, topology.migration_queue,
             topology.queue)
    return moved


def move_messages(connection: pika.BlockingConnection, source: str, topology: Topology) -> int:
    """Every message of `source` republished to the work exchange, each acked only once RabbitMQ confirmed its copy.

    The caller has bound exactly one queue (the target) to the exchange and
    unbound `source`, so the exchange routes every copy there; `mandatory`
    turns a copy routed nowhere into pika's UnroutableError instead of a loss.
    Properties and headers travel unchanged, but for `x-delivery-count`, which
    counts deliveries from the queue it leaves. Returns how many were moved.
    """
    take, put = connection.channel(), connection.channel()
    put.confirm_delivery()  # basic_publish returns once confirmed, raises NackError/UnroutableError otherwise
    moved = 0
    while True:
        method, properties, body = take.basic_get(source)
        if method is None:
            break
        headers = {k: v for k, v in (properties.headers or {}).items() if k != "x-delivery-count"}
        properties.headers = headers or None
        put.basic_publish(topology.exchange, topology.routing_key, body, properties, mandatory=True)
        take.basic_ack(method.delivery_tag)
        moved += 1
    take.close()
    put.close()
    return moved


def _check_can_publish(connection: pika.BlockingConnection, topology: Topology) -> None:
    """Refuse (FatalError) before unbinding anything when this login may not publish to the work exchange.

    RabbitMQ checks the write permission on every basic.publish (403 ACCESS_REFUSED
    closes the channel); a probe with a routing key bound to nothing is dropped
    by the exchange, so it changes no queue.
    """
    channel = connection.channel()
    channel.confirm_delivery()
    try:
        channel.basic_publish(topology.exchange, PROBE_ROUTING_KEY, b"")
    except ChannelClosedByBroker as exc:
        raise FatalError(
            f"queue {topology.queue} must be moved to a policy, through exchange {topology.exchange}, but "
            f"RabbitMQ refuses this login to publish there ({exc.reply_code} {exc.reply_text}): give the user "
            f"write permission on {topology.exchange} (deploy/rabbitmq/definitions.json), then run "
            "`pmtabounce setup` again; nothing was moved") from None
    channel.close()


def _exists(connection: pika.BlockingConnection, queue: str) -> bool:
    channel = connection.channel()
    try:
        channel.queue_declare(queue, passive=True)
    except ChannelClosedByBroker as exc:
        if exc.reply_code == NOT_FOUND:
            return False
        raise
    channel.close()
    return True
