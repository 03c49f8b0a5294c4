"""One webhook call, sent as IEM 6.5.1 sends it through PHP's curl: the same request bytes, plus a timeout.

Spec: iem-webhooks.md, "The request". The request is written here byte for byte (request line, then
Host, Authorization only for a URL with user:password@, Accept: */*, Content-Type: application/json,
Content-Length), as libcurl writes it for IEM's curl_setopt calls; http.client's HTTPResponse reads
the answer. An HTTP library (requests, httpx, urllib) adds headers of its own (User-Agent,
Accept-Encoding, Connection) and percent-encodes what curl sends raw: see docs/webhooks.md.
"""

from __future__ import annotations

import base64
import http.client
import re
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

MAX_BODY = 65536  # bytes of an answer kept; the log keeps 255 characters of it
DEFAULT_PORTS = {"http": 80, "https": 443}
_BAD_IN_URL = re.compile(r"[\x00-\x20\x7f]")  # a space or a control character: curl refuses the URL


@dataclass(frozen=True)
class WebhookAnswer:
    """What one call got: `status` (the HTTP status, None when none came), `body` (the answer's body decoded
    as UTF-8, bad bytes replaced, at most MAX_BODY bytes of it; None when the answer did not arrive whole)
    and `error` (why not, in an operator's words; None when it did)."""

    status: int | None
    body: str | None
    error: str | None


class WebhookURLError(ValueError):
    """A webhook URL that curl would refuse too (IEM then logs '0'): not http(s), no host, a bad port."""


def post(url: str, body: bytes, timeout: float, *, context: ssl.SSLContext | None = None) -> WebhookAnswer:
    """POST `body` (JSON bytes) to `url` with exactly IEM/curl's headers; never raises for a failure
    of the network, the receiver or the URL (the answer's `error` says what happened).

    `timeout` (seconds) bounds the connection, the TLS handshake and each wait for the receiver, and
    reading stops at `timeout` after the request was sent. IEM sets none (curl's 300 s to connect,
    then no limit). The status is not judged here (IEM ignores it); redirects are not followed (as
    curl without FOLLOWLOCATION). `context`: TLS settings for https (default: the system's CAs,
    certificate and host name verified, as curl does)."""
    try:
        request, address, tls_host = curl_request(url, body)
    except WebhookURLError as exc:
        return WebhookAnswer(None, None, f"webhook URL not usable: {exc}")
    status: int | None = None
    sock: socket.socket | None = None
    try:
        sock = socket.create_connection(address, timeout=timeout)
        if tls_host is not None:
            sock = (context or ssl.create_default_context()).wrap_socket(sock, server_hostname=tls_host)
        sock.sendall(request)
        deadline = time.monotonic() + timeout
        response = http.client.HTTPResponse(sock, method="POST")
        try:
            response.begin()
            status = response.status
            answer = _read_body(response, sock, deadline)
        finally:
            response.close()
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return WebhookAnswer(status, None, _describe(exc, timeout))
    finally:
        if sock is not None:
            sock.close()
    return WebhookAnswer(status, answer.decode("utf-8", errors="replace"), None)


def curl_request(url: str, body: bytes) -> tuple[bytes, tuple[str, int], str | None]:
    """The request bytes libcurl sends for IEM's call, the (host, port) to connect to, and the host name
    to verify for https (None for http). Raises WebhookURLError for a URL curl refuses."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise WebhookURLError(f"{scheme or 'no'} scheme (http and https only)")
    try:
        port = parts.port
    except ValueError as exc:
        raise WebhookURLError(f"bad port ({exc})") from None
    host = parts.hostname
    if not host:
        raise WebhookURLError("no host")
    # curl's Host: the host as written in the URL, with its port unless that is the scheme's default.
    written = parts.netloc.rpartition("@")[2]
    written = written.rstrip(":") if port is None else written[: written.rindex(":")]
    host_header = written if port in (None, DEFAULT_PORTS[scheme]) else f"{written}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _BAD_IN_URL.search(target) or _BAD_IN_URL.search(host_header):
        raise WebhookURLError("a space or a control character in it")  # curl: "URL using bad/illegal format"
    lines = [f"POST {target} HTTP/1.1", f"Host: {host_header}"]
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        lines.append(f"Authorization: Basic {base64.b64encode(credentials).decode('ascii')}")
    lines += ["Accept: */*", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")  # curl sends a non-ASCII path as raw UTF-8
    return head + body, (host, port or DEFAULT_PORTS[scheme]), host if scheme == "https" else None


def _read_body(response: http.client.HTTPResponse, sock: socket.socket, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < MAX_BODY:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer's body took too long")
        sock.settimeout(left)
        chunk = response.read1(MAX_BODY - size)
        if not chunk:
            if response.length:  # read1 does not raise for a body cut short
                raise http.client.IncompleteRead(b"".join(chunks), response.length)
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the receiver running?)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {exc.verify_message}"
    if isinstance(exc, socket.gaierror):
        return f"host name not found ({exc.strerror})"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the receiver"
    if isinstance(exc, http.client.IncompleteRead):
        return f"the answer was cut short ({len(exc.partial)} bytes of its body came)"
    if isinstance(exc, http.client.HTTPException):
        return f"not an HTTP answer ({type(exc).__name__}: {exc})"
    return f"{type(exc).__name__}: {exc}"
