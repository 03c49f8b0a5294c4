"""RabbitMQ connections, the topology declaration, and pika's exceptions translated into ours.

Every pika failure becomes one of our error types here, and only here (as
Dramatiq's RabbitMQ broker module does): FatalError when an operator must act
(login, virtual host, permissions, a queue declared with other arguments),
TransientError when trying again can help. Retries key off those types.
"""

from __future__ import annotations

import logging
import random
import re
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pika
from pika import exceptions as amqp
from pika.adapters.utils import connection_workflow as bring_up

from . import queue_migration
from .config import Settings
from .errors import FatalError, PmtaBounceError, TransientError
from .instance import consumer_tag
from .service_urls import (  # AMQP_OPTIONS: ours, pika never sees them
    AMQP_OPTIONS,
    AMQP_SEPARATORS,
    amqp_urls,
    host_port,
    masked,
)
from .topology import Topology

setup_log = logging.getLogger("pmtabounce.setup")
log = logging.getLogger("pmtabounce.broker")
T = TypeVar("T")

# AMQP 0-9-1 reply codes (the spec's constants); RESOURCE_LOCKED is the dlq lock's "in use", INTERNAL_ERROR
# what RabbitMQ answers a basic.get on a quorum queue below quorum ("nodedown").
ACCESS_REFUSED, NOT_FOUND, RESOURCE_LOCKED, PRECONDITION_FAILED, NOT_ALLOWED = 403, 404, 405, 406, 530
INTERNAL_ERROR = 541
# Which of our settings decides a queue argument, for the message when an existing queue differs.
ARGUMENT_SETTINGS = {
    "x-delivery-limit": "PMTABOUNCE_DELIVERY_LIMIT",
    "x-dead-letter-exchange": "PMTABOUNCE_QUEUE_PREFIX",
}
_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<argument>[^']+)' for (?P<kind>queue|exchange) '(?P<name>[^']+)' "
    r"in vhost '(?P<vhost>[^']*)': received (?P<received>.+?) but current is (?P<current>.+)$"
)
_NOT_FOUND = re.compile(r"no (?P<kind>queue|exchange) '(?P<name>[^']+)'")
# OpenSSL's reasons that no retry can fix: an untrusted certificate, or TLS spoken to a plain port.
TLS_REFUSALS = ("CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER")
# How long a stopping process waits for RabbitMQ to answer a cancel or a close. Nothing is lost by not
# waiting longer: what was not acked goes back to the queue, what was not confirmed is published again.
ANSWER_SECONDS = 3.0


def parameters(url: str, role: str) -> pika.URLParameters:
    """Connection parameters from PMTABOUNCE_AMQP_URL, named so the console shows who is who.

    `amqps://` verifies the broker's certificate and host name (Python's default
    context; `cacertfile` for a private CA, `certfile`/`keyfile` for a client certificate).
    """
    params = plain_parameters(url)
    if urlsplit(url).scheme == "amqps":
        params.ssl_options = _tls(params.host, dict(parse_qsl(urlsplit(url).query)))
    params.client_properties = {"connection_name": consumer_tag(role)}
    params.heartbeat = 30
    params.blocked_connection_timeout = 120
    params.connection_attempts = 1
    params.socket_timeout = 10
    return params


def plain_parameters(url: str) -> pika.URLParameters:
    """pika's reading of PMTABOUNCE_AMQP_URL (host, port, vhost, login) without our TLS options."""
    parts = urlsplit(url)
    options = [(k, v) for k, v in parse_qsl(parts.query) if k not in AMQP_OPTIONS]
    return pika.URLParameters(urlunsplit(parts._replace(query=urlencode(options))))


def _tls(host: str, options: dict[str, str]) -> pika.SSLOptions:
    context = ssl.create_default_context(cafile=options.get("cacertfile"))
    if "certfile" in options:
        context.load_cert_chain(options["certfile"], options.get("keyfile"))
    return pika.SSLOptions(context, server_hostname=options.get("server_name_indication", host))


class Nodes:
    """The RabbitMQ nodes of PMTABOUNCE_AMQP_URL in this process's order, and the one in use.

    The order is shuffled once per process, so that a fleet given the same list spreads over the
    nodes. A connection goes to the first node that answers, starting from the one in use; after
    `lost()` it starts from the next one, at once, instead of waiting for the same node to come
    back (RabbitMQ's advice to clients of a cluster: know several endpoints, reconnect to another).
    """

    def __init__(self, setting: str, role: str, rng: random.Random | None = None) -> None:
        self.setting = setting
        self.role = role
        self.urls = list(amqp_urls(setting))
        (rng or random.Random()).shuffle(self.urls)
        self.current = 0
        self.used: str | None = None  # the node of the last connection, for the log line that says it moved

    def __len__(self) -> int:
        return len(self.urls)

    def in_turn(self) -> list[str]:
        """Every node once, the one in use first."""
        return self.urls[self.current:] + self.urls[: self.current]

    def lost(self) -> None:
        """The connection in use is gone: the next attempt starts with the next node."""
        if len(self.urls) > 1:
            self.current = (self.current + 1) % len(self.urls)

    def first_answering(self, attempt: Callable[[str], T]) -> T:
        """`attempt(url)` on each node in turn until one succeeds; its result.

        A node that cannot be reached (TransientError) passes the turn to the next one; a refusal
        an operator must fix (FatalError: login, vhost, permissions) stops at once. When no node
        answers, TransientError names each with its reason, and the caller backs off.
        """
        failures: list[TransientError] = []
        for url in self.in_turn():
            try:
                with translated(url):
                    result = attempt(url)
            except TransientError as exc:
                failures.append(exc)
                continue
            self._using(url)
            return result
        if len(failures) == 1:
            raise failures[0]
        raise TransientError(f"no RabbitMQ node answers: {'; '.join(str(f) for f in failures)}")

    def _using(self, url: str) -> None:
        self.current = self.urls.index(url)
        where = f"{safe_url(url)}" + (f" (node {self.current + 1} of {len(self)} in this process's order)"
                                      if len(self) > 1 else "")
        if self.used is None:
            if len(self) > 1:
                log.info("%s on RabbitMQ node %s", self.role, where,
                         extra={"event": "broker_node", "node": safe_url(url)})
        elif self.used != url:
            log.warning("%s moved from RabbitMQ node %s to %s", self.role, safe_url(self.used), where,
                        extra={"event": "broker_node_moved", "node": safe_url(url), "previous": safe_url(self.used)})
        self.used = url


def connect(target: str | Nodes, role: str) -> pika.BlockingConnection:
    """A blocking connection to the first node of `target` (PMTABOUNCE_AMQP_URL, or a process's `Nodes`)
    that answers; raises FatalError or TransientError (never a pika exception)."""
    nodes = target if isinstance(target, Nodes) else Nodes(target, role)
    return nodes.first_answering(lambda url: pika.BlockingConnection(parameters(url, role)))


def connected_node(connection: pika.BlockingConnection) -> str:
    """The node a blocking connection is on, for logs and status: amqp://host:port/vhost."""
    params = connection._impl.params
    scheme = "amqps" if params.ssl_options else "amqp"
    return f"{scheme}://{host_port(params.host, params.port)}/{quote(params.virtual_host, safe='')}"


def close_quietly(connection: pika.BlockingConnection) -> None:
    """Close if still open, waiting at most ANSWER_SECONDS for RabbitMQ; a connection already gone is fine
    (the broker returns unacked messages either way)."""
    try:
        if connection.is_open:
            with answered_within(connection):
                connection.close()
    except amqp.AMQPError:
        pass


@contextmanager
def answered_within(connection: pika.BlockingConnection, seconds: float = ANSWER_SECONDS) -> Iterator[None]:
    """Bound the blocking pika calls of the block (a cancel, a close): if RabbitMQ has not answered
    after `seconds`, the connection is dropped and the waiting call raises as on a lost connection.

    A broker that keeps the socket open but stops answering is otherwise noticed only by the
    heartbeat, after a minute, past the 30 s that deploy/ grants a stop. pika's own timers (its
    I/O loop's, which run while a blocking call waits) carry the deadline.
    """
    impl = connection._impl
    timer = impl.ioloop.call_later(seconds, lambda: abandon(impl, seconds))
    try:
        yield
    finally:
        impl.ioloop.remove_timeout(timer)


def abandon(connection: pika.connection.Connection, seconds: float) -> None:
    """Drop a connection RabbitMQ has not answered for `seconds`; its close callbacks run as on a lost one."""
    if connection.is_closing:
        log.warning("RabbitMQ did not answer the close within %.0f s; dropping the connection", seconds)
        connection._terminate_stream(None)  # what pika itself does when Connection.CloseOk arrives
    elif connection.is_open:
        log.warning("RabbitMQ did not answer within %.0f s; dropping the connection", seconds)
        connection._terminate_stream(amqp.StreamLostError(f"RabbitMQ did not answer within {seconds:.0f} s"))


def safe_url(setting: str) -> str:
    """For logs: host, port and vhost of each node of PMTABOUNCE_AMQP_URL, never the credentials."""
    urls = AMQP_SEPARATORS.split(setting.strip())
    if len(urls) > 1:
        return ", ".join(safe_url(url) for url in urls if url)
    p = plain_parameters(setting.strip())
    scheme = "amqps" if p.ssl_options else "amqp"
    return f"{scheme}://{host_port(p.host, p.port)}/{quote(p.virtual_host, safe='')}"


def masked_url(setting: str) -> str:
    """PMTABOUNCE_AMQP_URL as an operator wrote it (each node's URL), with the passwords replaced by `****`."""
    return re.sub(r"[^\s,]+", lambda entry: masked(entry[0]), setting)


@contextmanager
def translated(url: str | None = None) -> Iterator[None]:
    """Run pika calls; any pika (or socket) failure comes out as our error type, from `translate`."""
    try:
        yield
    except (amqp.AMQPError, bring_up.AMQPConnectorException, OSError) as exc:
        raise translate(exc, url) from exc


def translate(exc: BaseException, url: str | None = None) -> PmtaBounceError:
    """What a pika failure means for us: FatalError when retrying cannot help, TransientError otherwise.

    Input: the exception pika raised (or passed to a callback), and PMTABOUNCE_AMQP_URL to name in the
    message (password masked). Login and virtual host failures are told apart by pika's
    ProbableAuthenticationError / ProbableAccessDeniedError, raised when the broker closes during the
    handshake (RabbitMQ sends 403 or 530 there, see pika's connection.py `_on_connection_closed`).
    pika's connection workflow errors (adapters/utils/connection_workflow.py: a handshake that never
    completes, a socket that does not connect) derive from Exception, not AMQPError; the cause they
    wrap is judged, and without one they mean an unreachable broker.
    """
    if isinstance(exc, PmtaBounceError):
        return exc
    cause = _bring_up_cause(exc)
    if cause is not None:
        return translate(cause, url)
    setting = f"PMTABOUNCE_AMQP_URL={masked_url(url)}" if url else "PMTABOUNCE_AMQP_URL"
    if isinstance(exc, (amqp.ProbableAuthenticationError, amqp.AuthenticationError)):
        return FatalError(f"RabbitMQ refused the login ({_reply_text(exc)}): check the user name and password "
                          f"in {setting}")
    if isinstance(exc, amqp.ProbableAccessDeniedError):
        return FatalError(f"RabbitMQ refused the virtual host ({_reply_text(exc)}): it does not exist, or the "
                          f"user has no permissions on it; check {setting}")
    if any(reason in str(exc) for reason in TLS_REFUSALS):
        return FatalError(f"TLS with RabbitMQ failed ({describe(exc)}): check that the port takes amqps:// "
                          f"(5671), the certificate and `cacertfile` in {setting}")
    if isinstance(exc, (amqp.ConnectionClosedByBroker, amqp.ChannelClosedByBroker)):
        refusal = _refusal(exc.reply_code, exc.reply_text, setting)
        if refusal is not None:
            return refusal
    where = f"RabbitMQ at {safe_url(url)}" if url else "RabbitMQ"
    if isinstance(exc, (amqp.AMQPConnectionError, bring_up.AMQPConnectorException, OSError)):
        return TransientError(f"cannot reach {where} ({describe(exc)})")
    return TransientError(f"{where}: {describe(exc)}")


def _bring_up_cause(exc: BaseException) -> BaseException | None:
    """The error inside one of pika's connection workflow wrappers (the last attempt's), if any."""
    if isinstance(exc, bring_up.AMQPConnectionWorkflowFailed) and exc.exceptions:
        return exc.exceptions[-1]
    if isinstance(exc, bring_up.AMQPConnectorPhaseErrorBase):
        return exc.exception
    return None


def _refusal(code: int, text: str, setting: str) -> FatalError | None:
    if code == PRECONDITION_FAILED:
        return FatalError(inequivalent_argument(text))
    if code in (ACCESS_REFUSED, NOT_ALLOWED):
        return FatalError(f"RabbitMQ refused: {text}; check the user's permissions and {setting}")
    if code == NOT_FOUND:
        missing = _NOT_FOUND.search(text)
        what = f"{missing['kind']} {missing['name']} does not exist" if missing else f"RabbitMQ: {text}"
        return FatalError(f"{what} (run `pmtabounce setup`)")
    return None


def inequivalent_argument(reply_text: str) -> str:
    """The operator's version of a 406 PRECONDITION_FAILED: which queue, which argument, what to do.

    RabbitMQ never changes an existing queue's arguments; the reply text names the queue and the
    argument ("inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/': received '25' but
    current is '20'"), which this parses. Unknown wording is passed on as it came.
    """
    match = _INEQUIVALENT.search(reply_text)
    if match is None:
        return f"RabbitMQ refused a declaration: {reply_text}"
    kind, name, argument = match["kind"], match["name"], match["argument"]
    setting = ARGUMENT_SETTINGS.get(argument)
    if argument in queue_migration.LEGACY_ARGUMENTS:
        return (
            f"the {kind} {name!r} (vhost {match['vhost']!r}) was declared by an older pmtabounce with "
            f"{argument} = {match['current']}, which is now the queue's policy"
            f"{f' (from {setting})' if setting else ''}"
            f"{'' if match['received'] == 'none' else '; this declaration asks for ' + match['received']}. "
            "Stop the workers and run `pmtabounce setup`: it re-creates the queue without its old arguments "
            "and moves its messages "
            "(docs/operations.md, \"The queue's policy\")"
        )
    back = (f"set {setting} back to the {kind}'s value" if setting
            else "use the pmtabounce version that declared it")
    return (
        f"the {kind} {name!r} (vhost {match['vhost']!r}) already exists with {argument} = {match['current']}, "
        f"and this pmtabounce declares it with {match['received']}. RabbitMQ never changes an existing {kind}'s "
        "arguments: "
        f"either {back}, or let the {kind} empty, delete it (rabbitmqctl delete_{kind} {name} "
        f"-p {match['vhost']!r}) and run `pmtabounce setup` again"
    )


def _reply_text(exc: BaseException) -> str:
    """The broker's words inside pika's Probable…Error (it wraps the ConnectionClosedByBroker as text)."""
    text = str(exc.args[0]) if exc.args else ""
    found = re.search(r"\((\d+)\) ['\"](.*)['\"]$", text)
    return f"{found[1]} {found[2]}" if found else (text or type(exc).__name__)


def describe(exc: BaseException) -> str:
    """`Class: text`, for log lines about a broker failure."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def declare_topology(channel, topology: Topology, *, work_queue: bool = True) -> None:
    """Durable exchanges and quorum queues with only their type as argument (the rest is the policy
    `setup` sets). Idempotent; safe while workers run. `work_queue=False` leaves the work queue to
    `setup`'s migration (queue_migration).

    Raises FatalError (a queue exists with other arguments, as one an older version declared; no
    permission) or TransientError.
    """
    with translated():
        channel.exchange_declare(topology.dead_exchange, exchange_type="direct", durable=True)
        channel.queue_declare(topology.dead_queue, durable=True, arguments=topology.dead_queue_arguments())
        channel.queue_bind(topology.dead_queue, topology.dead_exchange, routing_key=topology.routing_key)
        channel.exchange_declare(topology.exchange, exchange_type="direct", durable=True)
        if not work_queue:
            return
        channel.queue_declare(topology.queue, durable=True, arguments=topology.queue_arguments())
        channel.queue_bind(topology.queue, topology.exchange, routing_key=topology.routing_key)


def declare_events(channel, topology: Topology) -> None:
    """The decision stream: the topic exchange, its alternate exchange (fanout) and the quorum queue that
    keeps what no operator's binding takes (docs/events.md). Idempotent."""
    with translated():
        channel.exchange_declare(topology.unrouted_exchange, exchange_type="fanout", durable=True)
        channel.queue_declare(topology.unrouted_queue, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(topology.unrouted_queue, topology.unrouted_exchange, routing_key="")
        channel.exchange_declare(topology.events_exchange, exchange_type="topic", durable=True,
                                 arguments=topology.events_arguments())


def declare_dead_letter_side(settings: Settings) -> None:
    """Connect and declare both exchanges and the dead-letter queue: what `setup` may declare before the
    work queue's policy exists (the policy covers only the work queue). These names share the queue
    prefix, so a login without permissions on it is refused here (FatalError), before a policy is set
    for a queue it could never declare. Also TransientError, ConfigError as connect() raises them."""
    connection = connect(settings.amqp, "setup")
    try:
        declare_topology(connection.channel(), settings.topology, work_queue=False)
    finally:
        close_quietly(connection)


def setup_broker(settings: Settings) -> None:
    """`pmtabounce setup`, its RabbitMQ half: declare the exchanges and queues of `settings.topology`.

    Queues get only their type; delivery limit, dead-lettering and overflow are the work queue's
    policy, which the edge sets through the management API (pmtabounce/queue_policy.py). A work
    queue an older version declared with those as x-arguments is re-created without them, its
    messages moved (queue_migration). Idempotent; safe to run while workers run. Raises FatalError
    when RabbitMQ refuses (login, vhost, permissions, consumers on a queue to re-create),
    TransientError when it cannot be reached, ConfigError when PMTABOUNCE_AMQP_URL is not set.
    """
    topology = settings.topology
    connection = connect(settings.amqp, "setup")
    try:
        with translated(settings.amqp):
            declare_topology(connection.channel(), topology, work_queue=False)
            queue_migration.declare_work_queue(connection, topology)
            declare_events(connection.channel(), topology)
    finally:
        close_quietly(connection)
    setup_log.info(
        "broker ready at %s: exchange %s -> quorum queue %s (policy %s), dead letters in %s; decision stream "
        "%s (events no queue is bound for wait in %s)",
        safe_url(settings.amqp), topology.exchange, topology.queue, topology.policy_name, topology.dead_queue,
        topology.events_exchange, topology.unrouted_queue,
    )
