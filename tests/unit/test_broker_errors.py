"""pika's exceptions, built as pika raises them, translated into our kinds (common/broker.py)."""

import ssl

import pytest
from pika import exceptions as amqp
from pika.adapters.utils import connection_workflow as bring_up
from pmtabounce.common.broker import inequivalent_argument, masked_url, translate
from pmtabounce.common.errors import FatalError, TransientError

URL = "amqp://pmtabounce:s3cret@mq.example:5672/bounces"
LOGIN_REFUSED = ("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
                 "For details see the broker logfile.")


def probable(kind, code: int, text: str) -> amqp.AMQPConnectionError:
    """pika wraps the broker's close during the handshake as text (connection.py, _on_stream_terminated)."""
    return kind(repr(amqp.ConnectionClosedByBroker(code, text)))


def handshake_timeout() -> bring_up.AMQPConnectorStackTimeout:
    """What BlockingConnection raises when RabbitMQ accepts TCP but never completes the AMQP handshake."""
    return bring_up.AMQPConnectorStackTimeout("Timeout during AMQP handshake'127.0.0.1'/(2, 1, 6, '', "
                                              "('127.0.0.1', 5672)); ssl=False")


def inequivalent(received: str, current: str, argument: str = "x-delivery-limit") -> amqp.ChannelClosedByBroker:
    return amqp.ChannelClosedByBroker(
        406, f"PRECONDITION_FAILED - inequivalent arg '{argument}' for queue 'pmtabounce.bounces' in vhost "
             f"'bounces': received {received} but current is {current}")


CASES = [
    # (exception as pika raises it, our kind, words the message must hold)
    (probable(amqp.ProbableAuthenticationError, 403, LOGIN_REFUSED), FatalError,
     ["PMTABOUNCE_AMQP_URL=amqp://pmtabounce:****@mq.example:5672/bounces", "password", "Login was refused"]),
    (amqp.AuthenticationError("PLAIN"), FatalError, ["PMTABOUNCE_AMQP_URL", "password"]),
    (probable(amqp.ProbableAccessDeniedError, 530, "NOT_ALLOWED - vhost bounces not found"), FatalError,
     ["PMTABOUNCE_AMQP_URL=amqp://pmtabounce:****@", "virtual host", "vhost bounces not found"]),
    (amqp.ConnectionClosedByBroker(530, "NOT_ALLOWED - access to vhost 'bounces' refused for user 'x'"), FatalError,
     ["PMTABOUNCE_AMQP_URL", "access to vhost"]),
    (amqp.ChannelClosedByBroker(403, "ACCESS_REFUSED - access to queue 'pmtabounce.bounces' in vhost 'bounces' "
                                     "refused for user 'x'"), FatalError, ["permissions", "PMTABOUNCE_AMQP_URL"]),
    (amqp.ChannelClosedByBroker(404, "NOT_FOUND - no queue 'pmtabounce.bounces' in vhost 'bounces'"), FatalError,
     ["queue pmtabounce.bounces does not exist (run `pmtabounce setup`)"]),
    (inequivalent("'25'", "'20'"), FatalError,
     ["'pmtabounce.bounces'", "x-delivery-limit = '20'", "asks for '25'", "PMTABOUNCE_DELIVERY_LIMIT"]),
    (inequivalent("none", "the value '20' of type 'signedint'"), FatalError,
     ["'pmtabounce.bounces'", "x-delivery-limit", "PMTABOUNCE_DELIVERY_LIMIT"]),
    # An older version's queue, with what is now the policy as arguments: setup moves it over.
    (inequivalent("none", "the value 'reject-publish' of type 'longstr'", "x-overflow"), FatalError,
     ["'pmtabounce.bounces'", "x-overflow", "older pmtabounce", "Stop the workers and run `pmtabounce setup`"]),
    (inequivalent("'25'", "'20'", "x-queue-type"), FatalError, ["and this pmtabounce declares it with '25'"]),
    (inequivalent("'classic'", "'quorum'", "x-queue-type"), FatalError,
     ["'pmtabounce.bounces'", "x-queue-type = 'quorum'", "delete_queue"]),
    (amqp.ChannelClosedByBroker(406, "PRECONDITION_FAILED - something new"), FatalError, ["something new"]),
    (amqp.AMQPConnectionError("AMQPConnectorSocketConnectError: ConnectionRefusedError(111, 'Connection refused')"),
     TransientError, ["mq.example:5672", "Connection refused"]),
    (amqp.StreamLostError("Stream connection lost: ConnectionResetError(104, 'Connection reset by peer')"),
     TransientError, ["StreamLostError"]),
    (amqp.ConnectionClosedByBroker(320, "CONNECTION_FORCED - broker forced connection closure with reason "
                                        "'shutdown'"), TransientError, ["CONNECTION_FORCED"]),
    (amqp.AMQPHeartbeatTimeout("No activity or too many missed heartbeats in the last 60 seconds"), TransientError,
     ["heartbeats"]),
    (amqp.ChannelClosedByBroker(320, "CONNECTION_FORCED"), TransientError, ["CONNECTION_FORCED"]),
    (amqp.ConsumerCancelled("RabbitMQ cancelled the consumer"), TransientError, ["ConsumerCancelled"]),
    (ConnectionRefusedError(111, "Connection refused"), TransientError, ["Connection refused"]),
    (ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get "
                                     "local issuer certificate (_ssl.c:1006)"), FatalError,
     ["TLS", "cacertfile", "PMTABOUNCE_AMQP_URL=amqp://pmtabounce:****@"]),
    (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"), FatalError,
     ["TLS", "5671"]),
    (handshake_timeout(), TransientError, ["cannot reach", "mq.example:5672", "AMQP handshake"]),
    (bring_up.AMQPConnectorAMQPHandshakeError(handshake_timeout()), TransientError, ["cannot reach", "handshake"]),
    (bring_up.AMQPConnectorSocketConnectError(ConnectionRefusedError(111, "Connection refused")), TransientError,
     ["cannot reach", "Connection refused"]),
    (bring_up.AMQPConnectorTransportSetupError(ssl.SSLEOFError(8, "EOF occurred in violation of protocol")),
     TransientError, ["EOF"]),
    (bring_up.AMQPConnectionWorkflowFailed([bring_up.AMQPConnectorAMQPHandshakeError(handshake_timeout())]),
     TransientError, ["cannot reach", "handshake"]),
    (bring_up.AMQPConnectionWorkflowFailed([bring_up.AMQPConnectorAMQPHandshakeError(
        probable(amqp.ProbableAuthenticationError, 403, LOGIN_REFUSED))]), FatalError, ["password"]),
    (bring_up.AMQPConnectionWorkflowFailed([]), TransientError, ["cannot reach"]),
    (bring_up.AMQPConnectorAborted(), TransientError, ["cannot reach", "AMQPConnectorAborted"]),
    (ssl.SSLEOFError(8, "EOF occurred in violation of protocol (_ssl.c:2427)"), TransientError, ["EOF"]),
]


@pytest.mark.parametrize("raised, kind, words", CASES, ids=[f"{i}-{type(c[0]).__name__}" for i, c in enumerate(CASES)])
def test_pika_errors_become_our_kinds(raised, kind, words):
    error = translate(raised, URL)
    assert type(error) is kind
    for word in words:
        assert word in str(error)
    assert "s3cret" not in str(error)


@pytest.mark.parametrize("url, masked", [
    (URL, "amqp://pmtabounce:****@mq.example:5672/bounces"),
    ("amqps://u:p%40ss@mq:5671/%2F?cacertfile=/ca.pem", "amqps://u:****@mq:5671/%2F?cacertfile=/ca.pem"),
    ("amqp://mq.example/", "amqp://mq.example/"),
])
def test_masked_url_hides_only_the_password(url, masked):
    assert masked_url(url) == masked


def test_an_older_versions_queue_is_not_said_to_be_asked_for_none():
    text = inequivalent_argument("PRECONDITION_FAILED - inequivalent arg 'x-overflow' for queue 'pmtabounce.bounces' "
                                 "in vhost 'bounces': received none but current is the value 'reject-publish' of "
                                 "type 'longstr'")
    assert "none" not in text and "setup asks" not in text
