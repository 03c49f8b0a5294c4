"""RabbitMQ connections and the topology declaration, shared by every role."""

from __future__ import annotations

import logging
import os
import socket
from urllib.parse import quote

import pika

from .topology import Topology

log = logging.getLogger("pmtabounce.broker")


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
