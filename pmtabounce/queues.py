"""What RabbitMQ says about our queues: messages ready, unacked, consumers, dead letters.

Ready counts and consumers come from a passive declare over AMQP (it never
creates anything). RabbitMQ tells unacked counts only through the management
HTTP API (any node's: `ManagementApi` tries each), so those need it reachable. Failures come out as our
error types: TransientError when a service cannot be reached, FatalError when
it answers that something is missing or refused.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pika

from .common import broker
from .common.errors import ConfigError, FatalError, TransientError
from .common.service_urls import amqp_urls, host_port
from .common.topology import Topology

API_TIMEOUT = 5.0


@dataclass(frozen=True)
class QueueCounts:
    name: str
    ready: int
    consumers: int


@dataclass(frozen=True)
class ApiCounts:
    """One queue as the management API sees it (its statistics lag by a few seconds).

    For a quorum queue, also its Raft group: the leader's node, the member nodes and those online
    (RabbitMQ's `leader`, `members`, `online` queue fields). It takes new messages and confirms
    them only while more than half of its members are online.
    """

    ready: int
    unacked: int
    consumers: int
    leader: str | None = None
    members: tuple[str, ...] = ()
    online: tuple[str, ...] = ()

    @property
    def below_quorum(self) -> bool:
        """Fewer than a majority of the members online: publishes wait unconfirmed, nothing is delivered."""
        return bool(self.members) and len(self.online) <= len(self.members) // 2


@dataclass(frozen=True)
class ManagementApi:
    """The management API of each node of a cluster (any of them answers for all); tried in turn."""

    urls: tuple[str, ...]

    def request(self, path: str, method: str = "GET", body: dict | None = None) -> Any:
        """The first node's answer that can be reached; FatalError when one refuses (401, 403, 404),
        TransientError naming each address when none answers."""
        failures = []
        for url in self.urls:
            try:
                return _request_json(url, path, method, body)
            except TransientError as exc:
                failures.append(str(exc))
        raise TransientError("; ".join(failures))

    def node(self) -> str:
        """Which broker answers: `rabbit@host in cluster NAME` (GET /api/overview)."""
        data = self.request("/api/overview")
        return f"{data.get('node', '?')} in cluster {data.get('cluster_name', '?')}"


def read_queues(amqp_url: str, topology: Topology) -> tuple[QueueCounts, QueueCounts, str]:
    """(work queue, dead-letter queue, the node that answered) from passive declares on a short-lived
    connection to the first node of PMTABOUNCE_AMQP_URL that answers."""
    connection = broker.connect(amqp_url, "status")
    try:
        with broker.translated(amqp_url):
            counts = _passive(connection, topology.queue), _passive(connection, topology.dead_queue)
            return (*counts, broker.connected_node(connection))
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


def vhost_of(amqp_setting: str) -> str:
    """The virtual host of PMTABOUNCE_AMQP_URL (every node's entry names the same one, config checks)."""
    return broker.plain_parameters(amqp_urls(amqp_setting)[0]).virtual_host


def read_api_counts(api: ManagementApi, vhost: str, queue: str) -> ApiCounts:
    """GET /api/queues/VHOST/QUEUE of the management plugin, on the first node that answers."""
    data = api.request(f"/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}")
    return ApiCounts(
        ready=int(data.get("messages_ready", 0)),
        unacked=int(data.get("messages_unacknowledged", 0)),
        consumers=int(data.get("consumers", 0)),
        leader=data.get("leader"),
        members=tuple(data.get("members") or ()),
        online=tuple(data.get("online") or ()),
    )


@dataclass(frozen=True)
class Client:
    """One of our processes' connections: who (the connection_name every role sets), on which node, since when."""

    process: str
    node: str
    connected_at: float  # Unix seconds


def read_clients(api: ManagementApi, vhost: str) -> list[Client]:
    """Our processes connected to the virtual host, by the management API's connection list (any node's
    answer covers the whole cluster); a process that moved shows its new node and when it got there."""
    data = api.request(f"/api/vhosts/{quote(vhost, safe='')}/connections")
    clients = [Client(name, entry.get("node", "?"), entry.get("connected_at", 0) / 1000)
               for entry in data
               if (name := (entry.get("client_properties") or {}).get("connection_name", "")).startswith(
                   "pmtabounce-") and not name.startswith("pmtabounce-status@")]
    return sorted(clients, key=lambda client: client.process)


def management_available(api: ManagementApi) -> bool:
    """Does the management API answer (and accept our login)?"""
    try:
        api.request("/api/overview")
        return True
    except (TransientError, FatalError):
        return False


def console_url(api_url: str) -> str:
    """The management console's address, for people: the API URL without credentials."""
    parts = urlsplit(api_url)
    return f"{parts.scheme}://{host_port(parts.hostname or '', parts.port)}/"


# The management plugin's usual port for each usual AMQP port: only there can one be told from the other.
API_PORTS = {("amqp", 5672): ("http", 15672), ("amqps", 5671): ("https", 15671)}


def default_api(amqp_setting: str) -> ManagementApi:
    """Where the management API usually is for each node of PMTABOUNCE_AMQP_URL: the node's host and login
    on port 15672 (15671 for amqps://).

    Raises ConfigError when a node is on another AMQP port: its management API may be anywhere (nodes on
    one host each have their own, and port 15672 would be another node's, or another broker's).
    """
    apis = []
    for url in amqp_urls(amqp_setting):
        params = broker.plain_parameters(url)
        scheme = "amqps" if urlsplit(url).scheme == "amqps" else "amqp"
        if (scheme, params.port) not in API_PORTS:
            raise ConfigError(f"the management API's address cannot be derived from PMTABOUNCE_AMQP_URL: "
                              f"{broker.safe_url(url)} is not on port {5671 if scheme == 'amqps' else 5672}; "
                              "set PMTABOUNCE_RABBITMQ_API_URL (each node's management API, separated by commas)")
        api_scheme, api_port = API_PORTS[(scheme, params.port)]
        user = quote(params.credentials.username, safe="")
        password = quote(params.credentials.password, safe="")
        apis.append(f"{api_scheme}://{user}:{password}@{host_port(params.host, api_port)}")
    return ManagementApi(tuple(apis))


def put_policy(api: ManagementApi, vhost: str, name: str, body: dict) -> None:
    """PUT /api/policies/VHOST/NAME: create or replace a policy (the user needs the policymaker tag).

    `body` holds pattern, definition, priority and apply-to, as the management API takes them.
    Raises FatalError when the API refuses, TransientError when it does not answer.
    """
    api.request(f"/api/policies/{quote(vhost, safe='')}/{quote(name, safe='')}", "PUT", body)


def effective_policy(api: ManagementApi, vhost: str, queue: str) -> dict:
    """The policy definition the broker applies to `queue` right now ({} if none), from the management API."""
    data = api.request(f"/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}")
    return dict(data.get("effective_policy_definition") or {})


def vhost_description(api: ManagementApi, vhost: str) -> str | None:
    """The description of virtual host `vhost` ('' if it has none), None if there is no such virtual host."""
    try:
        return str(api.request(f"/api/vhosts/{quote(vhost, safe='')}").get("description") or "")
    except FatalError as exc:
        if "(404)" in str(exc):
            return None
        raise


def make_vhost(api: ManagementApi, vhost: str, description: str, user: str) -> None:
    """PUT /api/vhosts/VHOST with a description, then full permissions on it for `user` (the API's user needs
    the administrator tag). Raises FatalError when refused, TransientError when the API does not answer."""
    api.request(f"/api/vhosts/{quote(vhost, safe='')}", "PUT", {"description": description})
    api.request(f"/api/permissions/{quote(vhost, safe='')}/{quote(user, safe='')}", "PUT",
                {"configure": ".*", "write": ".*", "read": ".*"})


def delete_vhost(api: ManagementApi, vhost: str) -> None:
    """DELETE /api/vhosts/VHOST, with everything in it (queues, messages, policies)."""
    api.request(f"/api/vhosts/{quote(vhost, safe='')}", "DELETE")


def _request_json(api_url: str, path: str, method: str = "GET", body: dict | None = None) -> Any:
    parts = urlsplit(api_url)
    base = f"{parts.scheme}://{host_port(parts.hostname or '', parts.port)}" + parts.path.rstrip("/")
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

