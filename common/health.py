"""One small HTTP server per process: /metrics (Prometheus), /healthz (alive), /readyz (ready).

Each request gets a thread of its own and a socket timeout, so one idle or slow
client (a half-open probe, a stuck scraper) never holds up the liveness probe:
Kubernetes would otherwise kill a healthy pod.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from .errors import FatalError

log = logging.getLogger("pmtabounce.http")

REQUEST_TIMEOUT = 5.0  # seconds a client may take to send its request before we hang up

# Returns None when ready, else why not, in an operator's words.
ReadyCheck = Callable[[], "str | None"]


class _Quiet(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT  # socketserver.StreamRequestHandler applies it to the connection

    def log_message(self, *args) -> None:  # scrapes every few seconds are not events
        pass


class Readiness:
    """Runs the check for /readyz and logs each change of state once (not once per probe)."""

    def __init__(self, check: ReadyCheck) -> None:
        self.check = check
        self.last: str | None = ""  # "" = not checked yet
        self.lock = threading.Lock()

    def __call__(self) -> str | None:
        """None when ready, else the reason; a check that raises counts as not ready."""
        try:
            reason = self.check()
        except Exception as exc:
            reason = f"the readiness check failed ({type(exc).__name__}: {exc})"
        with self.lock:
            previous, self.last = self.last, reason
        if reason == previous:
            return reason
        if reason is not None:
            log.warning("not ready (/readyz answers 503): %s", reason)
        elif previous != "":  # ready at the first probe is no news
            log.info("ready (/readyz answers 200)")
        return reason


def serve(port: int, ready: ReadyCheck, registry: CollectorRegistry,
          host: str = "0.0.0.0") -> ThreadingWSGIServer | None:
    """Start the server in a daemon thread; port 0 means "no server".

    `ready` returns None when the process is ready, else the reason it is not;
    `registry` holds the series this role exports (see metrics.registry_for).
    Raises FatalError naming PMTABOUNCE_METRICS_PORT when the port cannot be bound (in use, or refused).
    """
    if not port:
        return None
    metrics_app = make_wsgi_app(registry)
    readiness = Readiness(ready)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            reason = readiness()
            if reason is None:
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"ready\n"]
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [f"not ready: {reason}\n".encode()]
        if path == "/metrics":
            return metrics_app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: this server answers /metrics, /healthz and /readyz\n"]

    try:
        server = make_server(host, port, app, server_class=ThreadingWSGIServer, handler_class=_Quiet)
    except OSError as exc:
        why = "is already in use by another process" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc})"
        raise FatalError(f"PMTABOUNCE_METRICS_PORT={port} {why}: choose a free port, or 0 for no server") from None
    threading.Thread(target=server.serve_forever, name="pmtabounce-http", daemon=True).start()
    log.info("metrics on :%d/metrics, health on /healthz and /readyz", server.server_port)
    return server
