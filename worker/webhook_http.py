"""POST a webhook's body as IEM's curl does. Stand-in written against EVENTS-INTERFACE.md until the php
helper's module lands."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class WebhookAnswer:
    status: int | None
    body: str | None
    error: str | None


def post(url: str, body: bytes, timeout: float) -> WebhookAnswer:
    """POST with Host, Accept: */*, Content-Type: application/json, Content-Length; never raises for the network."""
    parts = urlsplit(url)
    try:
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = kind(parts.hostname or "", parts.port, timeout=timeout)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.putrequest("POST", path, skip_accept_encoding=True)
        connection.putheader("Accept", "*/*")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        answer = response.read().decode("utf-8", "replace")
        connection.close()
        return WebhookAnswer(response.status, answer, None)
    except (OSError, http.client.HTTPException) as exc:
        return WebhookAnswer(None, None, f"{type(exc).__name__}: {exc}")
