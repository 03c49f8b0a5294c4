"""What RabbitMQ says about our queues: messages ready, unacked, consumers, dead letters.

Ready counts and consumers come from a passive declare over AMQP (it never
creates anything). RabbitMQ tells unacked counts only through the management
HTTP API, so those need PMTABOUNCE_RABBITMQ_API_URL. Failures come out as our
error types: TransientError when a service cannot be reached, FatalError when
it answers that something is missing or refused.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import pika

from .common import broker
from .common.errors import FatalError, TransientError
from .common.topology import Topology

API_TIMEOUT = 5.0


@dataclass(frozen=True)
class QueueCounts:
    name: str
    ready: int
    consumers: int


@dataclass(frozen=True)
class ApiCounts:
    """One queue as the management API sees it (its statistics lag by a few seconds)."""

    ready: int
    unacked: int
    consumers: int


def read_queues(amqp_url: str, topology: Topology) -> tuple[QueueCounts, QueueCounts]:
    """(work queue, dead-letter queue) from passive declares on a short-lived connection."""
    connection = broker.connect(amqp_url, "status")
    try:
        with broker.translated(amqp_url):
            return _passive(connection, topology.queue), _passive(connection, topology.dead_queue)
    finally:
        broker.close_quietly(connection)


def delete_queues(amqp_url: str, topology: Topology) -> None:
    """Delete the work and dead-letter queues (messages included): only for the demo's own names."""
    connection = broker.connect(amqp_url, "demo")
    try:
        with broker.translated(amqp_url):
            channel = connection.channel()
            for queue in (topology.queue, topology.dead_queue):
                channel.queue_delete(queue)
    finally:
        broker.close_quietly(connection)


def _passive(connection: pika.BlockingConnection, queue: str) -> QueueCounts:
    channel = connection.channel()
    ok = channel.queue_declare(queue, passive=True).method  # a missing queue: NOT_FOUND, fatal
    channel.close()
    return QueueCounts(queue, ok.message_count, ok.consumer_count)


def vhost_of(amqp_url: str) -> str:
    return broker.plain_parameters(amqp_url).virtual_host


def read_api_counts(api_url: str, vhost: str, queue: str) -> ApiCounts:
    """GET /api/queues/VHOST/QUEUE of the management plugin."""
    data = _get_json(api_url, f"/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}")
    return ApiCounts(
        ready=int(data.get("messages_ready", 0)),
        unacked=int(data.get("messages_unacknowledged", 0)),
        consumers=int(data.get("consumers", 0)),
    )


def management_available(api_url: str) -> bool:
    """Does the management API answer (and accept our login)?"""
    try:
        _get_json(api_url, "/api/overview")
        return True
    except (TransientError, FatalError):
        return False


def console_url(api_url: str) -> str:
    """The management console's address, for people: the API URL without credentials."""
    parts = urlsplit(api_url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/"


def default_api_url(amqp_url: str) -> str:
    """Where the management API usually is for this broker: same host and login, port 15672."""
    params = broker.plain_parameters(amqp_url)
    user = quote(params.credentials.username, safe="")
    password = quote(params.credentials.password, safe="")
    return f"http://{user}:{password}@{params.host}:15672"


def put_policy(api_url: str, vhost: str, name: str, body: dict) -> None:
    """PUT /api/policies/VHOST/NAME: create or replace a policy (the user needs the policymaker tag).

    `body` holds pattern, definition, priority and apply-to, as the management API takes them.
    Raises FatalError when the API refuses, TransientError when it does not answer.
    """
    _request_json(api_url, f"/api/policies/{quote(vhost, safe='')}/{quote(name, safe='')}", "PUT", body)


def effective_policy(api_url: str, vhost: str, queue: str) -> dict:
    """The policy definition the broker applies to `queue` right now ({} if none), from the management API."""
    data = _get_json(api_url, f"/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}")
    return dict(data.get("effective_policy_definition") or {})


def vhost_description(api_url: str, vhost: str) -> str | None:
    """The description of virtual host `vhost` ('' if it has none), None if there is no such virtual host."""
    try:
        return str(_get_json(api_url, f"/api/vhosts/{quote(vhost, safe='')}").get("description") or "")
    except FatalError as exc:
        if "(404)" in str(exc):
            return None
        raise


def make_vhost(api_url: str, vhost: str, description: str, user: str) -> None:
    """PUT /api/vhosts/VHOST with a description, then full permissions on it for `user` (the API's user needs
    the administrator tag). Raises FatalError when refused, TransientError when the API does not answer."""
    _request_json(api_url, f"/api/vhosts/{quote(vhost, safe='')}", "PUT", {"description": description})
    _request_json(api_url, f"/api/permissions/{quote(vhost, safe='')}/{quote(user, safe='')}", "PUT",
                  {"configure": ".*", "write": ".*", "read": ".*"})


def delete_vhost(api_url: str, vhost: str) -> None:
    """DELETE /api/vhosts/VHOST, with everything in it (queues, messages, policies)."""
    _request_json(api_url, f"/api/vhosts/{quote(vhost, safe='')}", "DELETE")


def _get_json(api_url: str, path: str) -> dict:
    return _request_json(api_url, path)


def _request_json(api_url: str, path: str, method: str = "GET", body: dict | None = None) -> dict:
    parts = urlsplit(api_url)
    base = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "") + parts.path.rstrip("/")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={"Accept": "application/json"})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if parts.username is not None:
        login = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(login).decode())
    where = console_url(api_url)
    try:
        with urllib.request.urlopen(request, timeout=API_TIMEOUT) as response:
            text = response.read()
            return json.loads(text) if text.strip() else {}
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise FatalError(f"the management API at {where} has no {path.rsplit('/', 1)[-1]} (404)") from None
        raise FatalError(f"the management API at {where} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransientError(f"cannot reach the management API at {where} ({reason})") from None

