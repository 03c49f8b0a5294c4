"""One small HTTP server per process: /metrics (Prometheus), /healthz (alive), /readyz (ready)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

log = logging.getLogger("pmtabounce.http")


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # scrapes every few seconds are not events
        pass


def serve(port: int, ready: Callable[[], bool], host: str = "0.0.0.0") -> WSGIServer | None:
    """Start the server in a daemon thread; port 0 means "no server"."""
    if not port:
        return None
    metrics_app = make_wsgi_app()

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            ok = _safe(ready)
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ready\n" if ok else b"not ready\n"]
        return metrics_app(environ, start_response)

    server = make_server(host, port, app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="pmtabounce-http", daemon=True).start()
    log.info("metrics on :%d/metrics, health on /healthz and /readyz", server.server_port)
    return server


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False
