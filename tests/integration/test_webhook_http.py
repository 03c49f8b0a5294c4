"""worker/webhook_http.post() against a loopback receiver: IEM/curl's exact request, and every way a call fails.

The expected request bytes are what PHP's curl (libcurl 7.88) sent for IEM's curl_setopt calls
(spec iem-webhooks.md, "The request": Host and Accept: */* from curl, Content-Type and Content-Length
from IEM, nothing else).
"""

from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest
from pmtabounce.worker.webhook_http import MAX_BODY, WebhookAnswer, curl_request, post
from webhook_receiver import WebhookReceiver

BODY = b'{"event":"Bounce","listname":"L\\/1","emailaddress":"a@b.c","bounced":1,"bouncedate":1732010733}'


@pytest.fixture
def receiver():
    receiver = WebhookReceiver().up()
    yield receiver
    receiver.down()


def expected_request(port: int, target: bytes, body: bytes, auth: bytes = b"") -> bytes:
    return (b"POST " + target + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port + auth
            + b"Accept: */*\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def test_the_request_is_curls_byte_for_byte(receiver):
    answer = post(receiver.url("/hooks/iem?key=a%2Fb&x=1#part"), BODY, 5)
    assert answer.status == 200 and answer.body == "ok" and answer.error is None
    assert receiver.wait_for(1) == [expected_request(receiver.port, b"/hooks/iem?key=a%2Fb&x=1", BODY)]


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("", b"/"),  # no path: curl asks for /
        ("?x=1", b"/?x=1"),
        ("/a%20b/c?q=\u00e9", b"/a%20b/c?q=\xc3\xa9"),  # non-ASCII goes raw, as UTF-8, as curl sends it
    ],
)
def test_request_target(receiver, path, target):
    assert post(receiver.url(path), b"{}", 5).status == 200
    assert receiver.wait_for(1) == [expected_request(receiver.port, target, b"{}")]


def test_user_and_password_in_the_url_become_basic_authorization_as_curl_sends_it(receiver):
    url = f"http://u%40x:p%3Aw@127.0.0.1:{receiver.port}/"
    assert post(url, b"{}", 5).status == 200
    assert receiver.wait_for(1) == [
        expected_request(receiver.port, b"/", b"{}", auth=b"Authorization: Basic dUB4OnA6dw==\r\n")]


def test_an_error_status_is_an_answer_with_its_body(receiver):
    receiver.answer(500, b"database down \xc3\xa9\xff")
    answer = post(receiver.url(), BODY, 5)
    assert answer == WebhookAnswer(500, "database down \u00e9\ufffd", None)  # bad UTF-8 replaced


def test_an_empty_body(receiver):
    receiver.answer(204, b"")
    assert post(receiver.url(), BODY, 5) == WebhookAnswer(204, "", None)


def test_a_chunked_answer(receiver):
    receiver.answer_raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert post(receiver.url(), BODY, 5) == WebhookAnswer(200, "abcde", None)


def test_a_long_answer_is_kept_up_to_max_body(receiver):
    receiver.answer(200, b"x" * (MAX_BODY + 1000))
    answer = post(receiver.url(), BODY, 5)
    assert answer.status == 200 and answer.body == "x" * MAX_BODY and answer.error is None


def test_a_hanging_receiver_times_out(receiver):
    receiver.hang()
    answer = post(receiver.url(), BODY, 0.5)
    assert answer.status is None and answer.body is None
    assert answer.error == "no answer within 0.5 s"
    assert len(receiver.wait_for(1)) == 1


def test_a_receiver_that_sends_headers_then_stops_times_out(receiver):
    receiver.answer_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")  # and closes: 7 bytes missing
    answer = post(receiver.url(), BODY, 2)
    # IEM: curl_exec returns false and '0' is logged; the status that came is kept
    assert answer == WebhookAnswer(200, None, "the answer was cut short (3 bytes of its body came)")


def test_down_then_back_up_on_the_same_port(receiver):
    port = receiver.port
    receiver.down()
    answer = post(receiver.url(), BODY, 2)
    assert answer == WebhookAnswer(None, None, "connection refused (is the receiver running?)")
    receiver.up()
    assert receiver.port == port
    assert post(receiver.url(), BODY, 2) == WebhookAnswer(200, "ok", None)
    assert receiver.wait_for(1) == [expected_request(port, b"/hook", BODY)]


def test_a_reset_connection(receiver):
    receiver.reset()
    assert post(receiver.url(), BODY, 2) == WebhookAnswer(None, None, "connection reset by the receiver")


def test_not_http(receiver):
    receiver.answer_raw(b"SSH-2.0-OpenSSH_9.2\r\n")
    answer = post(receiver.url(), BODY, 2)
    assert answer.status is None and answer.error.startswith("not an HTTP answer")


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("", "webhook URL not usable: no scheme (http and https only)"),
        ("0", "webhook URL not usable: no scheme (http and https only)"),
        ("ftp://127.0.0.1/x", "webhook URL not usable: ftp scheme (http and https only)"),
        ("http:///path", "webhook URL not usable: no host"),
        ("http://127.0.0.1:99999/", "webhook URL not usable: bad port (Port out of range 0-65535)"),
        ("http://127.0.0.1:1/a b", "webhook URL not usable: a space or a control character in it"),
        ("http://127.0.0.1:1/a\r\nX-Injected: 1", "webhook URL not usable: a space or a control character in it"),
    ],
)
def test_unusable_urls_are_answers_not_exceptions(url, error):
    assert post(url, BODY, 1) == WebhookAnswer(None, None, error)


def test_unknown_host_is_an_answer():
    answer = post("http://no-such-host.invalid/hook", BODY, 2)
    assert answer.status is None and answer.error.startswith("host name not found")


@pytest.fixture
def certificate(tmp_path):
    openssl = shutil.which("openssl")
    assert openssl, "openssl (the command) is needed to make a test certificate"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def test_https(certificate):
    cert, key = certificate
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    receiver = WebhookReceiver(tls=server).up()
    try:
        answer = post(receiver.url(), BODY, 5, context=ssl.create_default_context(cafile=str(cert)))
        assert answer == WebhookAnswer(200, "ok", None)
        assert receiver.wait_for(1) == [expected_request(receiver.port, b"/hook", BODY)]
        # Verified as curl does: a certificate no CA of the system signed is refused, and that is an answer.
        refused = post(receiver.url(), BODY, 5)
        assert refused.status is None and refused.error.startswith("TLS certificate not accepted")
        # https to a plain-HTTP port
        assert post(receiver.url(scheme="http"), BODY, 5).status is None
    finally:
        receiver.down()


def test_the_default_port_is_left_out_of_host():  # as libcurl 7.88 writes Host
    assert curl_request("http://crm.example:80/h", b"")[0].startswith(b"POST /h HTTP/1.1\r\nHost: crm.example\r\n")
    assert curl_request("https://crm.example/h", b"")[1:] == (("crm.example", 443), "crm.example")
    assert curl_request("https://crm.example:8443", b"")[0].startswith(b"POST / HTTP/1.1\r\nHost: crm.example:8443\r\n")
    request, address, tls_host = curl_request("http://[::1]:8080/x", b"{}")
    assert request.startswith(b"POST /x HTTP/1.1\r\nHost: [::1]:8080\r\n") and address == ("::1", 8080)
    assert tls_host is None
