"""RabbitMQ connections and the topology declaration, shared by every role."""

from __future__ import annotations

import logging
import os
import socket
from urllib.parse import quote

import pika

from .config import Settings
from .errors import FatalError
from .topology import Topology

log = logging.getLogger("pmtabounce.broker")
setup_log = logging.getLogger("pmtabounce.setup")


def parameters(url: str, role: str) -> pika.URLParameters:
    """Connection parameters from PMTABOUNCE_AMQP_URL, named so the console shows who is who."""
    params = pika.URLParameters(url)
    params.client_properties = {"connection_name": f"pmtabounce-{role}@{socket.gethostname()}:{os.getpid()}"}
    params.heartbeat = 30
    params.blocked_connection_timeout = 120
    params.connection_attempts = 1
    params.socket_timeout = 10
    return params


def connect(url: str, role: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(parameters(url, role))


def safe_url(url: str) -> str:
    """For logs: host, port and vhost, never the credentials."""
    p = pika.URLParameters(url)
    return f"amqp://{p.host}:{p.port}/{quote(p.virtual_host, safe='')}"


def declare_topology(channel, topology: Topology) -> None:
    """Durable exchanges and quorum queues. Idempotent; safe while workers run."""
    channel.exchange_declare(topology.dead_exchange, exchange_type="direct", durable=True)
    channel.queue_declare(topology.dead_queue, durable=True, arguments=topology.dead_queue_arguments())
    channel.queue_bind(topology.dead_queue, topology.dead_exchange, routing_key=topology.routing_key)
    channel.exchange_declare(topology.exchange, exchange_type="direct", durable=True)
    channel.queue_declare(topology.queue, durable=True, arguments=topology.queue_arguments())
    channel.queue_bind(topology.queue, topology.exchange, routing_key=topology.routing_key)


def setup_broker(settings: Settings) -> None:
    """`pmtabounce setup`, its RabbitMQ half: declare the exchanges and queues of `settings.topology`.

    Idempotent; safe to run while workers run. Raises FatalError when RabbitMQ cannot be reached
    (ConfigError when PMTABOUNCE_AMQP_URL is not set).
    """
    topology = settings.topology
    try:
        connection = connect(settings.amqp, "setup")
    except pika.exceptions.AMQPError as exc:
        raise FatalError(
            f"cannot reach RabbitMQ at {safe_url(settings.amqp)}: {exc!r} (check PMTABOUNCE_AMQP_URL)"
        ) from None
    try:
        declare_topology(connection.channel(), topology)
    finally:
        connection.close()
    setup_log.info(
        "broker ready at %s: exchange %s -> quorum queue %s (delivery limit %d), dead letters in %s",
        safe_url(settings.amqp), topology.exchange, topology.queue,
        topology.delivery_limit, topology.dead_queue,
    )
